// CUDA twin of core/topk.cc: the q x n score matrix on the GPU (one thread per
// row; no FMA contraction: the build passes --fmad=false, and the products and
// sums below are the explicitly rounded intrinsics anyway), then the core's
// selection (topk_select) on the copied scores, so the order, the ties and the
// subset / mask handling are the CPU's by construction.
//   L2:            the CPU's l2sq: float32, 8 lanes, the same pairwise final sum.
//   inner product: the CPU's dot_f64: double, 4 lanes, the tail into lane 0.
// Scores are computed for every row even when a subset is given (simple; the
// selection skips the rest): a small subset of a large base is faster on the CPU.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "core/topk.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {

__global__ void l2_scores_kernel(const float* rows, size_t n, size_t d, const float* queries, size_t q, double* out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float* r = rows + i * d;
    for (size_t j = 0; j < q; ++j) {
      const float* a = queries + j * d;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t t = 0;
      for (; t + 8 <= d; t += 8) {
        for (int l = 0; l < 8; ++l) {
          const float u = __fsub_rn(a[t + l], r[t + l]);
          acc[l] = __fadd_rn(acc[l], __fmul_rn(u, u));
        }
      }
      for (; t < d; ++t) {
        const float u = __fsub_rn(a[t], r[t]);
        acc[t & 7] = __fadd_rn(acc[t & 7], __fmul_rn(u, u));
      }
      const float s = __fadd_rn(__fadd_rn(__fadd_rn(acc[0], acc[1]), __fadd_rn(acc[2], acc[3])),
                                __fadd_rn(__fadd_rn(acc[4], acc[5]), __fadd_rn(acc[6], acc[7])));
      out[j * n + i] = static_cast<double>(s);
    }
  }
}

__global__ void ip_scores_kernel(const float* rows, size_t n, size_t d, const float* queries, size_t q, double* out) {
  const size_t d4 = d - d % 4;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float* r = rows + i * d;
    for (size_t j = 0; j < q; ++j) {
      const float* a = queries + j * d;
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t t = 0;
      for (; t < d4; t += 4) {
        s0 = __dadd_rn(s0, __dmul_rn(static_cast<double>(r[t]), static_cast<double>(a[t])));
        s1 = __dadd_rn(s1, __dmul_rn(static_cast<double>(r[t + 1]), static_cast<double>(a[t + 1])));
        s2 = __dadd_rn(s2, __dmul_rn(static_cast<double>(r[t + 2]), static_cast<double>(a[t + 2])));
        s3 = __dadd_rn(s3, __dmul_rn(static_cast<double>(r[t + 3]), static_cast<double>(a[t + 3])));
      }
      for (; t < d; ++t) s0 = __dadd_rn(s0, __dmul_rn(static_cast<double>(r[t]), static_cast<double>(a[t])));
      out[j * n + i] = __dadd_rn(__dadd_rn(__dadd_rn(s0, s1), s2), s3);
    }
  }
}

Status topk_search_host(const float* rows, size_t n, size_t d, const float* queries, size_t q, size_t k, TopkMetric metric,
                        const TopkCandidates& cand, int32_t* idx, double* score, std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  if (d == 0) {
    *error = "rows must have at least one dimension";
    return Status::kInvalidArgument;
  }
  if (n == 0 || q == 0) return topk_select(nullptr, n, q, k, metric, cand, idx, score, error);  // nothing to score
  DeviceBuffer dr(n * d * sizeof(float)), dq(q * d * sizeof(float)), ds(q * n * sizeof(double));
  cudaError_t e = dr.status() != cudaSuccess ? dr.status() : dq.status() != cudaSuccess ? dq.status() : ds.status();
  if (e == cudaSuccess) e = cudaMemcpy(dr.get(), rows, n * d * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dq.get(), queries, q * d * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    const float* r = static_cast<const float*>(dr.get());
    const float* qq = static_cast<const float*>(dq.get());
    double* s = static_cast<double*>(ds.get());
    if (metric == TopkMetric::kL2) l2_scores_kernel<<<static_cast<unsigned>(blocks), 256>>>(r, n, d, qq, q, s);
    else ip_scores_kernel<<<static_cast<unsigned>(blocks), 256>>>(r, n, d, qq, q, s);
    e = cudaGetLastError();
  }
  std::vector<double> all(q * n);
  if (e == cudaSuccess) e = cudaMemcpy(all.data(), ds.get(), q * n * sizeof(double), cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) {
    *error = std::string("CUDA top-k failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  return topk_select(all.data(), n, q, k, metric, cand, idx, score, error);
}

}  // namespace cuda
}  // namespace ragdiff
