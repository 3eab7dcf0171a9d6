// CUDA twin of core/trajectory_lookup.cc's exact top-k: the shared top-k's CUDA
// twin (cuda/topk.cu, squared L2 over every key), with the CPU's checks and its
// float distances.
#include <string>
#include <vector>

#include "core/topk.h"
#include "core/trajectory_lookup.h"
#include "cuda/cuda_api.h"

namespace ragdiff {
namespace cuda {

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
  std::vector<double> d2(q * k);
  const Status st = topk_search_host(keys, n, d, queries, q, k, TopkMetric::kL2, TopkCandidates{}, idx, d2.data(), error);
  if (st != Status::kOk) return st;
  for (size_t i = 0; i < q * k; ++i) dist[i] = static_cast<float>(d2[i]);
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
