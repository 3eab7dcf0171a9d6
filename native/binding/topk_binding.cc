// The shared exact top-k (core/topk.h): topkExact and cuda.topkExact (the CUDA
// twin, same arguments and result).
//
//   topkExact(rows, dim, queries, k, metric, subset, mask)
//     rows     Float32Array, n x dim (n may be 0)
//     queries  Float32Array, q x dim (q >= 1), finite
//     k        integer 1..1e9 (more than the candidates: every candidate)
//     metric   'l2' (squared L2, ascending) | 'ip' (inner product, descending)
//     subset   Int32Array of row indices (each in 0..n-1) or null: every row
//     mask     Uint8Array of n bytes or null: only rows whose byte is 1 take part
//   -> { indices: Int32Array(q*kk), scores: Float64Array(q*kk), k: kk }, kk = min(k, candidates)
//
// Every argument is checked here (types, lengths, ranges, finite queries); the
// rows are not scanned for NaN (a NaN score ranks last, see topk.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "binding/registry.h"
#include "core/topk.h"
#ifdef RAGDIFF_WITH_CUDA
#include "cuda/cuda_api.h"
#endif

namespace ragdiff {
namespace binding {
namespace {

struct TopkArgs {
  float* rows = nullptr;
  float* queries = nullptr;
  size_t n = 0, d = 0, q = 0, k = 0;
  TopkMetric metric = TopkMetric::kL2;
  TopkCandidates cand;
};

bool read_args(const Napi::CallbackInfo& info, TopkArgs* a) {
  Napi::Env env = info.Env();
  size_t nr, nq;
  uint64_t dim, k;
  if (!get_f32(info, 0, "rows", &a->rows, &nr) || !get_index(info, 1, "dim", 1 << 30, &dim) || !get_f32(info, 2, "queries", &a->queries, &nq) ||
      !get_index(info, 3, "k", 1e9, &k))
    return false;
  a->d = static_cast<size_t>(dim);
  a->k = static_cast<size_t>(k);
  if (a->d == 0) {
    throw_range(env, "OUT_OF_RANGE", "dim must be an integer in 1..1073741824, got 0");
    return false;
  }
  if (a->k == 0) {
    throw_range(env, "OUT_OF_RANGE", "k must be an integer in 1..1000000000, got 0");
    return false;
  }
  if (nr % a->d != 0) {
    throw_range(env, "LENGTH_MISMATCH", "rows must hold a whole number of rows of " + std::to_string(a->d) + " floats, got " + std::to_string(nr) + " floats");
    return false;
  }
  if (nq == 0 || nq % a->d != 0) {
    throw_range(env, "LENGTH_MISMATCH", "queries must hold a positive whole number of rows of " + std::to_string(a->d) + " floats, got " +
                                            std::to_string(nq) + " floats");
    return false;
  }
  a->n = nr / a->d;
  a->q = nq / a->d;
  if (a->n > static_cast<size_t>(INT32_MAX)) {
    throw_range(env, "OUT_OF_RANGE", "at most 2147483647 rows");
    return false;
  }
  for (size_t i = 0; i < nq; ++i) {
    if (!std::isfinite(a->queries[i])) {
      throw_range(env, "NON_FINITE", "queries[" + std::to_string(i) + "] is not finite");
      return false;
    }
  }
  std::string metric;
  if (!get_string(info, 4, "metric", &metric)) return false;
  if (metric == "l2") {
    a->metric = TopkMetric::kL2;
  } else if (metric == "ip") {
    a->metric = TopkMetric::kInnerProduct;
  } else {
    throw_range(env, "INVALID_VALUE", "metric must be 'l2' or 'ip', got '" + metric + "'");
    return false;
  }
  int32_t* subset;
  size_t ns;
  const bool subset_given = !(info[5].IsNull() || info[5].IsUndefined());
  if (!get_i32_or_null(info, 5, "subset", &subset, &ns)) return false;
  for (size_t p = 0; subset_given && p < ns; ++p) {
    if (subset[p] < 0 || static_cast<size_t>(subset[p]) >= a->n) {
      throw_range(env, "OUT_OF_RANGE", "subset[" + std::to_string(p) + "] = " + std::to_string(subset[p]) + " is not a row index in 0.." +
                                           std::to_string(a->n) + " (exclusive)");
      return false;
    }
  }
  a->cand.has_subset = subset_given;
  a->cand.subset = subset;
  a->cand.subset_len = ns;
  Napi::Value m = info[6];
  if (!(m.IsNull() || m.IsUndefined())) {
    uint8_t* mask;
    size_t nm;
    if (!get_u8(info, 6, "mask", &mask, &nm)) return false;
    if (nm != a->n) {
      throw_range(env, "LENGTH_MISMATCH", "mask must hold one byte per row (" + std::to_string(a->n) + "), got " + std::to_string(nm));
      return false;
    }
    a->cand.mask = mask;
  }
  return true;
}

using SearchFn = Status (*)(const float*, size_t, size_t, const float*, size_t, size_t, TopkMetric, const TopkCandidates&, int32_t*, double*,
                            std::string*);

Napi::Value run(const Napi::CallbackInfo& info, SearchFn search) {
  Napi::Env env = info.Env();
  TopkArgs a;
  if (!read_args(info, &a)) return env.Undefined();
  const size_t kk = std::min(a.k, topk_candidate_count(a.n, a.cand));
  auto I = Napi::Int32Array::New(env, a.q * kk);
  auto S = Napi::Float64Array::New(env, a.q * kk);
  std::string err;
  const Status st = search(a.rows, a.n, a.d, a.queries, a.q, a.k, a.metric, a.cand, I.Data(), S.Data(), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("indices", I);
  r.Set("scores", S);
  r.Set("k", Napi::Number::New(env, static_cast<double>(kk)));
  return r;
}

Napi::Value TopkExact(const Napi::CallbackInfo& info) { return run(info, topk_search); }

Napi::Value TopkExactCuda(const Napi::CallbackInfo& info) {
#ifdef RAGDIFF_WITH_CUDA
  return run(info, cuda::topk_search_host);
#else
  TopkArgs a;
  if (!read_args(info, &a)) return info.Env().Undefined();
  throw_error(info.Env(), "CUDA_UNAVAILABLE", "this addon was built without CUDA (nvcc not found at build time, or WITH_CUDA=OFF)");
  return info.Env().Undefined();
#endif
}

}  // namespace

void init_topk(Napi::Env env, Napi::Object exports) {
  exports.Set("topkExact", Napi::Function::New(env, TopkExact, "topkExact"));
  Napi::Value c = exports.Get("cuda");
  if (c.IsObject()) c.As<Napi::Object>().Set("topkExact", Napi::Function::New(env, TopkExactCuda, "topkExact"));
}

}  // namespace binding
}  // namespace ragdiff
