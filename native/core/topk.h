// Exact top-k: one kernel for the trajectory lookup (squared L2 over latent
// keys) and the image store's exact search (inner product of normalised
// embeddings = cosine similarity, optionally over a subset of rows).
//
// Invariants:
// - Squared L2 is float32 with 8 independent lanes (l2sq), the order the
//   trajectory lookup has always used. The inner product is accumulated in
//   double over 4 lanes in the image store's JavaScript order (dot_f64): a
//   product of two floats is exact in double, so the result is bit-identical to
//   that JavaScript loop, with or without FMA contraction.
// - Order: best first (L2 ascending, inner product descending); equal scores
//   keep candidate order (the position in `subset`, else the row index); a NaN
//   score ranks after every number. The order is a strict total order, so the
//   result never depends on how the rows are split across threads.
// - Candidates are the rows 0..n-1, or `subset` (row indices, scanned in that
//   order; a repeated index is a repeated candidate), less the rows whose `mask`
//   byte is not 1. Fewer candidates than k: every candidate is returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace ragdiff {

enum class TopkMetric : int { kL2 = 0, kInnerProduct = 1 };

// Squared L2 distance of two d-float rows (float32, 8 lanes).
float l2sq(const float* a, const float* b, size_t d);

// Inner product of two d-float rows in double: lane i % 4 for the first d - d % 4 elements, the tail into
// lane 0, then ((l0 + l1) + l2) + l3.
double dot_f64(const float* a, const float* b, size_t d);

struct TopkCandidates {
  bool has_subset = false;          // false: rows 0..n-1; true: the subset_len rows of `subset` (possibly none)
  const int32_t* subset = nullptr;  // row indices in scan order
  size_t subset_len = 0;
  const uint8_t* mask = nullptr;  // n bytes; a row takes part only where its byte is 1; null: every row
};

// How many candidates take part (subset or all rows, after the mask); subset indices must be in range.
size_t topk_candidate_count(size_t n, const TopkCandidates& c);

// Exact top-k of q queries against n rows of d floats. Writes q x kk results, kk = min(k, candidate count):
// idx[j * kk + r] the row, score[j * kk + r] its squared L2 distance or inner product (as computed, in double).
// Threaded over candidates for large n. Fails on d = 0 or a subset index outside 0..n-1.
Status topk_search(const float* rows, size_t n, size_t d, const float* queries, size_t q, size_t k, TopkMetric metric,
                   const TopkCandidates& cand, int32_t* idx, double* score, std::string* error);

// The same selection over precomputed scores (q x n, row-major: scores[j * n + i] for query j and row i), for the
// CUDA twin, which computes the scores on the GPU.
Status topk_select(const double* scores, size_t n, size_t q, size_t k, TopkMetric metric, const TopkCandidates& cand, int32_t* idx,
                   double* score, std::string* error);

// The k smallest of n float distances (ties: lower id first, NaN last), ascending: idx[k], out[k].
// ids (optional) maps position -> record id and breaks ties. k <= n. Used by the IVF scan.
void select_topk(const float* dist, size_t n, size_t k, const int32_t* ids, int32_t* idx, float* out);

}  // namespace ragdiff
