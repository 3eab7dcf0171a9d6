// Device discovery and the device-resident benchmark of the step kernels.
#include <cuda_runtime.h>

#include <mutex>
#include <string>
#include <vector>

#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {
namespace {

struct DeviceInfo {
  bool ok = false;
  std::string reason, name;
  int sms = 0;
};

const DeviceInfo& info() {
  static DeviceInfo d;
  static std::once_flag once;
  std::call_once(once, [] {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      d.reason = std::string("no usable CUDA device: ") + cudaGetErrorString(e) + " (error " + std::to_string(static_cast<int>(e)) + ")";
      cudaGetLastError();  // clear the sticky-free error state
      return;
    }
    if (count == 0) {
      d.reason = "no CUDA device found";
      return;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess) {
      d.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(e);
      return;
    }
    d.ok = true;
    d.name = p.name;
    d.sms = p.multiProcessorCount;
  });
  return d;
}

__global__ void fill_kernel(float* p, size_t n, float v) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = v * static_cast<float>((i % 97) + 1) * 0.01f;
}

}  // namespace

bool available(std::string* reason) {
  const DeviceInfo& d = info();
  if (!d.ok && reason) *reason = d.reason;
  return d.ok;
}

std::string device_name() { return info().name; }

int device_sm_count() { return info().sms; }

Status bench(size_t len, size_t nb, int iters, BenchResult* r, std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  if (len == 0 || nb == 0 || nb > kMaxBranches || iters < 1) {
    *error = "bad benchmark size";
    return Status::kInvalidArgument;
  }
  const size_t bytes = len * sizeof(float);
  DeviceBuffer br(nb * bytes), x(bytes), h(bytes), x0(bytes), out(bytes), flag(sizeof(unsigned));
  for (const DeviceBuffer* b : {&br, &x, &h, &x0, &out, &flag}) {
    if (b->status() != cudaSuccess) {
      *error = std::string("cudaMalloc failed: ") + cudaGetErrorString(b->status());
      return Status::kCudaError;
    }
  }
  fill_kernel<<<1024, 256>>>(static_cast<float*>(br.get()), nb * len, 1.0f);
  fill_kernel<<<1024, 256>>>(static_cast<float*>(x.get()), len, -0.5f);
  fill_kernel<<<1024, 256>>>(static_cast<float*>(h.get()), len, 0.25f);
  cudaMemset(flag.get(), 0, sizeof(unsigned));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  auto time_ms = [&](auto&& body) {
    body();  // warm-up
    cudaEventRecord(a);
    for (int i = 0; i < iters; ++i) body();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    return static_cast<double>(ms) / iters;
  };
  const double gb = 1e9;
  // copy: read + write len floats
  double ms = time_ms([&] { cudaMemcpyAsync(out.get(), x.get(), bytes, cudaMemcpyDeviceToDevice); });
  r->copy_gbs = 2.0 * bytes / (ms * 1e-3) / gb;
  double w1 = 1.0;
  // DDIM (deterministic, no clipping): read x, m; write out
  StepCoefficients ddim;
  ddim.cx = 0.98;
  ddim.cm = -0.1;
  FoldedStep f;
  fold_step(ddim, &w1, 1, &f);
  StepBuffers sb;
  sb.branches = static_cast<const float*>(br.get());
  sb.n_branches = 1;
  sb.sample = static_cast<const float*>(x.get());
  sb.out = static_cast<float*>(out.get());
  sb.len = len;
  cudaError_t e = cudaSuccess;
  ms = time_ms([&] { if (e == cudaSuccess) e = launch_step(f, sb, static_cast<unsigned*>(flag.get()), 0); });
  r->ddim_gbs = 3.0 * bytes / (ms * 1e-3) / gb;
  // DPM-Solver++ second order: read x, m, history; write out, x0
  StepCoefficients dpm;
  dpm.cx = 0.9;
  dpm.cm = -0.2;
  dpm.ch = 0.05;
  dpm.px = 1.1;
  dpm.pm = -0.3;
  dpm.uses_history = true;
  fold_step(dpm, &w1, 1, &f);
  StepBuffers sd = sb;
  sd.history = static_cast<const float*>(h.get());
  sd.x0_out = static_cast<float*>(x0.get());
  ms = time_ms([&] { if (e == cudaSuccess) e = launch_step(f, sd, static_cast<unsigned*>(flag.get()), 0); });
  r->dpmpp_gbs = 5.0 * bytes / (ms * 1e-3) / gb;
  // guided DDIM step with nb branches: read x and nb branches, write out
  std::vector<double> w(nb, 1.0 / static_cast<double>(nb));
  fold_step(ddim, w.data(), nb, &f);
  StepBuffers sg = sb;
  sg.n_branches = nb;
  ms = time_ms([&] { if (e == cudaSuccess) e = launch_step(f, sg, static_cast<unsigned*>(flag.get()), 0); });
  r->guided_bytes = static_cast<double>(nb + 2) * bytes;
  r->guided_gbs = r->guided_bytes / (ms * 1e-3) / gb;
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaError_t sync = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = sync;
  if (e != cudaSuccess) {
    *error = std::string("CUDA benchmark failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
