// Host-side entry points of the CUDA twins (native/cuda/*.cu). Plain C++: the
// binding includes this only when the addon is built WITH_CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/context_fusion.h"
#include "core/status.h"
#include "core/step_kernel.h"
#include "core/topk.h"

namespace ragdiff {
namespace cuda {

// Whether a CUDA device is usable; `reason` says why not. Cached after the first call.
bool available(std::string* reason);
std::string device_name();

// The CUDA twin of apply_step on host buffers: copies them to the device, runs
// the kernel, copies `out` and `x0_out` back. *finite = false when an input held NaN/Inf.
Status step_host(const StepCoefficients& c, const StepBuffers& b, bool* finite, std::string* error);

// The CUDA twin of normal_fill, into a host buffer.
Status normal_fill_host(uint64_t seed, uint64_t offset, float* out, size_t n, std::string* error);

// The CUDA twin of topk_search (core/topk.h) on host buffers (topk.cu): scores on the GPU, the core's selection.
Status topk_search_host(const float* rows, size_t n, size_t d, const float* queries, size_t q, size_t k, TopkMetric metric,
                        const TopkCandidates& cand, int32_t* idx, double* score, std::string* error);

// The CUDA twin of topk_exact (core/trajectory_lookup.h) on host buffers: topk_search_host with the L2 metric.
Status topk_exact_host(const float* keys, size_t n, size_t d, const float* queries, size_t q, size_t k, int32_t* idx, float* dist,
                       std::string* error);

struct BenchResult {
  double copy_gbs, ddim_gbs, dpmpp_gbs, guided_gbs;  // bytes read + written per second / 1e9
  double guided_bytes;                               // bytes one guided step touches
};
// Times device-resident kernels on len floats (`branches` guidance branches).
Status bench(size_t len, size_t branches, int iterations, BenchResult* r, std::string* error);

// The CUDA twin of fuse_context on host buffers (context_fusion.cu): checks the
// call with check_context, copies the inputs to the device, runs the kernel and
// copies `out` back. Same statuses as fuse_context, plus the CUDA ones.
Status fuse_context_host(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                         const int32_t* neighbour_index, const float* weights, float* out, size_t* bad, std::string* error);

struct FusionBenchResult {
  double ms;        // one fusion, device-resident buffers
  double gbs;       // (bytes of out written + bytes read) per second / 1e9
  double copy_gbs;  // cudaMemcpyAsync device to device of out's size, same accounting
};
// Times the device-resident fusion for shape `s` (every row with a neighbour set, fractional weights).
Status fuse_context_bench(const ContextShape& s, int iterations, FusionBenchResult* r, std::string* error);

}  // namespace cuda
}  // namespace ragdiff
