// Trajectory retrieval (ReDi) lookup: exact top-k over stored keys, the
// least-squares neighbour weights, the weighted combination of the neighbours'
// values, and a coarse-quantised (IVF) approximate top-k for large bases.
//
// Keys, queries and values are float32 rows; distances are squared L2 in
// float32 (8 independent lanes, so the loop vectorises; the same order on every
// call). The exact top-k is the shared kernel of core/topk.h (the image store's
// exact search uses it too). Solves run in double. The CUDA twin
// (native/cuda/trajectory_lookup.cu) computes the same distances on the GPU and
// shares the selection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/topk.h"

namespace ragdiff {

// Exact top-k (squared L2, ascending; ties: lower index first) for a batch of queries: topk_search with
// the L2 metric over every key. idx / dist: q x k. Fails when k is 0 or above n.
Status topk_exact(const float* keys, size_t n, size_t d, const float* queries, size_t q, size_t k, int32_t* idx, float* dist,
                  std::string* error);

// w = argmin ||K^T w - q||^2 + ridge * (trace(K K^T) / k) * ||w||^2, K the k neighbour rows (k x d),
// solved by Cholesky of the k x k Gram matrix in double (the ridge is raised tenfold until the factorisation
// succeeds, from 1e-10 when ridge is 0). *residual = ||K^T w - q|| / ||q|| (0 when q is 0).
Status lsq_weights(const float* neighbours, size_t k, size_t d, const float* q, double ridge, double* w, double* residual,
                   std::string* error);

// out[i] = sum_j w[j] * values[j * len + i], accumulated in double; threaded. False on a non-finite result.
bool combine_weighted(const float* values, const double* w, size_t k, size_t len, float* out);

// IVF: k-means centroids (nlist x d) over the keys, Lloyd iterations from a deterministic pick of keys.
// assign[i] receives the list of key i. nlist <= n.
Status ivf_train(const float* keys, size_t n, size_t d, size_t nlist, int iterations, uint64_t seed, float* centroids,
                 int32_t* assign, std::string* error);

// Approximate top-k: the nprobe lists nearest to each query are scanned exhaustively. The keys are stored
// list by list (list_keys: n x d in list order, list_ids: their record ids, offsets: nlist + 1 starts).
// Fewer than k candidates: the remaining idx are -1 and dist +inf.
Status ivf_search(const float* list_keys, const int32_t* list_ids, const int64_t* offsets, const float* centroids, size_t nlist,
                  size_t d, const float* queries, size_t q, size_t k, size_t nprobe, int32_t* idx, float* dist, std::string* error);

}  // namespace ragdiff
