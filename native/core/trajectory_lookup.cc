#include "core/trajectory_lookup.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"

namespace ragdiff {

Status topk_exact(const float* keys, size_t n, size_t d, const float* queries, size_t q, size_t k, int32_t* idx, float* dist,
                  std::string* error) {
  if (k == 0 || k > n) {
    *error = "k must be in 1.." + std::to_string(n) + " (the number of keys), got " + std::to_string(k);
    return Status::kOutOfRange;
  }
  if (d == 0) {
    *error = "keys must have at least one dimension";
    return Status::kInvalidArgument;
  }
  std::vector<double> d2(q * k);
  const Status st = topk_search(keys, n, d, queries, q, k, TopkMetric::kL2, TopkCandidates{}, idx, d2.data(), error);
  if (st != Status::kOk) return st;
  // The distances were computed in float32; the double copies convert back exactly.
  for (size_t i = 0; i < q * k; ++i) dist[i] = static_cast<float>(d2[i]);
  return Status::kOk;
}

namespace {

// Cholesky solve of the SPD system G x = b (k x k, row-major); false when G is not positive definite.
bool cholesky_solve(std::vector<double> G, size_t k, const double* b, double* x) {
  for (size_t j = 0; j < k; ++j) {
    double s = G[j * k + j];
    for (size_t p = 0; p < j; ++p) s -= G[j * k + p] * G[j * k + p];
    if (!(s > 0) || !std::isfinite(s)) return false;
    const double ljj = std::sqrt(s);
    G[j * k + j] = ljj;
    for (size_t i = j + 1; i < k; ++i) {
      double t = G[i * k + j];
      for (size_t p = 0; p < j; ++p) t -= G[i * k + p] * G[j * k + p];
      G[i * k + j] = t / ljj;
    }
  }
  std::vector<double> y(k);
  for (size_t i = 0; i < k; ++i) {
    double t = b[i];
    for (size_t p = 0; p < i; ++p) t -= G[i * k + p] * y[p];
    y[i] = t / G[i * k + i];
  }
  for (size_t ii = k; ii-- > 0;) {
    double t = y[ii];
    for (size_t p = ii + 1; p < k; ++p) t -= G[p * k + ii] * x[p];
    x[ii] = t / G[ii * k + ii];
  }
  return true;
}

}  // namespace

Status lsq_weights(const float* K, size_t k, size_t d, const float* q, double ridge, double* w, double* residual,
                   std::string* error) {
  if (k == 0 || d == 0) {
    *error = "lsq_weights needs at least one neighbour of at least one dimension";
    return Status::kInvalidArgument;
  }
  if (!(ridge >= 0) || !std::isfinite(ridge)) {
    *error = "ridge must be a finite non-negative number";
    return Status::kInvalidArgument;
  }
  std::vector<double> G(k * k), b(k);
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double s = 0;
      for (size_t t = 0; t < d; ++t) s += static_cast<double>(K[i * d + t]) * K[j * d + t];
      G[i * k + j] = G[j * k + i] = s;
    }
    double s = 0;
    for (size_t t = 0; t < d; ++t) s += static_cast<double>(K[i * d + t]) * q[t];
    b[i] = s;
  }
  double trace = 0;
  for (size_t i = 0; i < k; ++i) trace += G[i * k + i];
  const double scale = trace > 0 ? trace / static_cast<double>(k) : 1.0;
  double lambda = ridge > 0 ? ridge : 1e-10;
  bool ok = false;
  for (int attempt = 0; attempt < 12 && !ok; ++attempt, lambda *= 10) {
    std::vector<double> Gr = G;
    for (size_t i = 0; i < k; ++i) Gr[i * k + i] += lambda * scale;
    ok = cholesky_solve(Gr, k, b.data(), w);
  }
  if (!ok) {
    *error = "the neighbour keys are degenerate (the Gram matrix is not positive definite even with regularisation)";
    return Status::kInvalidArgument;
  }
  double rn = 0, qn = 0;
  for (size_t t = 0; t < d; ++t) {
    double s = 0;
    for (size_t j = 0; j < k; ++j) s += w[j] * K[j * d + t];
    const double r = s - q[t];
    rn += r * r;
    qn += static_cast<double>(q[t]) * q[t];
  }
  *residual = qn > 0 ? std::sqrt(rn / qn) : 0;
  return Status::kOk;
}

bool combine_weighted(const float* values, const double* w, size_t k, size_t len, float* out) {
  bool bad = false;
  parallel_for(len, 16384, [&](size_t b, size_t e) {
    bool local = false;
    for (size_t i = b; i < e; ++i) {
      double s = 0;
      for (size_t j = 0; j < k; ++j) s += w[j] * values[j * len + i];
      const float f = static_cast<float>(s);
      local |= !std::isfinite(f);
      out[i] = f;
    }
    if (local) bad = true;  // benign race: only ever set to true
  });
  return !bad;
}

Status ivf_train(const float* keys, size_t n, size_t d, size_t nlist, int iterations, uint64_t seed, float* centroids,
                 int32_t* assign, std::string* error) {
  if (nlist == 0 || nlist > n) {
    *error = "nlist must be in 1.." + std::to_string(n) + " (the number of keys)";
    return Status::kOutOfRange;
  }
  if (iterations < 0 || iterations > 1000) {
    *error = "iterations must be in 0..1000";
    return Status::kOutOfRange;
  }
  // Initial centroids: nlist keys at a seeded stride (deterministic, spread over the base).
  const size_t start = static_cast<size_t>(seed % n);
  for (size_t c = 0; c < nlist; ++c) {
    const size_t i = (start + c * (n / nlist)) % n;
    std::copy(keys + i * d, keys + (i + 1) * d, centroids + c * d);
  }
  std::vector<double> sums(nlist * d);
  std::vector<size_t> counts(nlist);
  for (int it = 0; it <= iterations; ++it) {
    parallel_for(n, 64, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        float best = std::numeric_limits<float>::infinity();
        int32_t bi = 0;
        for (size_t c = 0; c < nlist; ++c) {
          const float dd = l2sq(keys + i * d, centroids + c * d, d);
          if (dd < best) { best = dd; bi = static_cast<int32_t>(c); }
        }
        assign[i] = bi;
      }
    });
    if (it == iterations) break;
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = static_cast<size_t>(assign[i]);
      ++counts[c];
      for (size_t t = 0; t < d; ++t) sums[c * d + t] += keys[i * d + t];
    }
    for (size_t c = 0; c < nlist; ++c) {
      if (counts[c] == 0) continue;  // an empty list keeps its centroid
      for (size_t t = 0; t < d; ++t) centroids[c * d + t] = static_cast<float>(sums[c * d + t] / static_cast<double>(counts[c]));
    }
  }
  return Status::kOk;
}

Status ivf_search(const float* list_keys, const int32_t* list_ids, const int64_t* offsets, const float* centroids, size_t nlist,
                  size_t d, const float* queries, size_t q, size_t k, size_t nprobe, int32_t* idx, float* dist, std::string* error) {
  if (k == 0 || nprobe == 0 || nprobe > nlist) {
    *error = "k must be positive and nprobe in 1.." + std::to_string(nlist);
    return Status::kOutOfRange;
  }
  parallel_for(q, 1, [&](size_t b, size_t e) {
    std::vector<float> cd(nlist), cand;
    std::vector<int32_t> cand_ids, lists(nprobe);
    std::vector<float> lists_d(nprobe);
    for (size_t j = b; j < e; ++j) {
      const float* qv = queries + j * d;
      for (size_t c = 0; c < nlist; ++c) cd[c] = l2sq(qv, centroids + c * d, d);
      select_topk(cd.data(), nlist, nprobe, nullptr, lists.data(), lists_d.data());
      cand.clear();
      cand_ids.clear();
      for (size_t p = 0; p < nprobe; ++p) {
        const int32_t l = lists[p];
        for (int64_t r = offsets[l]; r < offsets[l + 1]; ++r) {
          cand.push_back(l2sq(qv, list_keys + static_cast<size_t>(r) * d, d));
          cand_ids.push_back(list_ids[r]);
        }
      }
      const size_t kk = std::min(k, cand.size());
      if (kk > 0) select_topk(cand.data(), cand.size(), kk, cand_ids.data(), idx + j * k, dist + j * k);
      for (size_t r = kk; r < k; ++r) {
        idx[j * k + r] = -1;
        dist[j * k + r] = std::numeric_limits<float>::infinity();
      }
    }
  });
  return Status::kOk;
}

}  // namespace ragdiff
