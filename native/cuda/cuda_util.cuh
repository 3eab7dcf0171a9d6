// Small CUDA helpers shared by the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/step_kernel.h"

namespace ragdiff {
namespace cuda {

// A device allocation freed on scope exit; zero bytes allocates nothing (get() == nullptr).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    if (bytes) status_ = cudaMalloc(&p_, bytes);
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  cudaError_t status() const { return status_; }

 private:
  void* p_ = nullptr;
  cudaError_t status_ = cudaSuccess;
};

// Multiprocessors of the current device (0 when unknown).
int device_sm_count();

// One step on device buffers, asynchronous on `stream` (step_kernel.cu).
cudaError_t launch_step(const FoldedStep& f, const StepBuffers& b, unsigned* bad_flag, cudaStream_t stream);

}  // namespace cuda
}  // namespace ragdiff
