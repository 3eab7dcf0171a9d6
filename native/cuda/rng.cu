// CUDA twin of core/rng.cc: the same Philox4x32-10 + Box-Muller (core/philox.h).
#include <cuda_runtime.h>

#include <string>

#include "core/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {

__global__ void normal_fill_kernel(uint64_t seed, uint64_t offset, float* out, size_t n) {
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < n; j += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t idx = offset + j;
    float z[4];
    philox::block_normals(seed, idx >> 2, z);
    out[j] = z[idx & 3];
  }
}

Status normal_fill_host(uint64_t seed, uint64_t offset, float* out, size_t n, std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  if (n == 0) return Status::kOk;
  DeviceBuffer d(n * sizeof(float));
  cudaError_t e = d.status();
  if (e == cudaSuccess) {
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    normal_fill_kernel<<<static_cast<unsigned>(blocks), 256>>>(seed, offset, static_cast<float*>(d.get()), n);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaMemcpy(out, d.get(), n * sizeof(float), cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) {
    *error = std::string("CUDA normal_fill failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
