// CUDA twin of core/trajectory_lookup.cc's exact top-k: the distance matrix on
// the GPU (one thread per key, the CPU's 8-lane accumulation order, no FMA
// contraction: the build passes --fmad=false, so distances match the CPU's
// bit for bit), then the CPU's select_topk on the copied distances.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "core/trajectory_lookup.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {

__global__ void l2_matrix_kernel(const float* keys, size_t n, size_t d, const float* queries, size_t q, float* dist) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float* k = keys + i * d;
    for (size_t j = 0; j < q; ++j) {
      const float* a = queries + j * d;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t t = 0;
      for (; t + 8 <= d; t += 8) {
        for (int l = 0; l < 8; ++l) {
          const float u = a[t + l] - k[t + l];
          acc[l] = __fadd_rn(acc[l], __fmul_rn(u, u));
        }
      }
      for (; t < d; ++t) {
        const float u = a[t] - k[t];
        acc[t & 7] = __fadd_rn(acc[t & 7], __fmul_rn(u, u));
      }
      dist[j * n + i] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  }
}

Status topk_exact_host(const float* keys, size_t n, size_t d, const float* queries, size_t q, size_t k, int32_t* idx, float* dist,
                       std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  if (k == 0 || k > n || d == 0) {
    *error = "k must be in 1.." + std::to_string(n) + " and keys must have at least one dimension";
    return Status::kOutOfRange;
  }
  DeviceBuffer dk(n * d * sizeof(float)), dq(q * d * sizeof(float)), dd(q * n * sizeof(float));
  cudaError_t e = dk.status() != cudaSuccess ? dk.status() : dq.status() != cudaSuccess ? dq.status() : dd.status();
  if (e == cudaSuccess) e = cudaMemcpy(dk.get(), keys, n * d * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dq.get(), queries, q * d * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    l2_matrix_kernel<<<static_cast<unsigned>(blocks), 256>>>(static_cast<const float*>(dk.get()), n, d, static_cast<const float*>(dq.get()), q,
                                                             static_cast<float*>(dd.get()));
    e = cudaGetLastError();
  }
  std::vector<float> all(q * n);
  if (e == cudaSuccess) e = cudaMemcpy(all.data(), dd.get(), q * n * sizeof(float), cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) {
    *error = std::string("CUDA trajectory top-k failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  for (size_t j = 0; j < q; ++j) select_topk(all.data() + j * n, n, k, nullptr, idx + j * k, dist + j * k);
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
