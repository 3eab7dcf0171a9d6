// Trajectory retrieval lookup (core/trajectory_lookup.h): trajectoryTopK,
// trajectoryWeights, trajectoryCombine, ivfTrain, ivfSearch, and
// cuda.trajectoryTopK (the CUDA twin). Every argument is checked here: types,
// lengths (divisible by the dimension), ranges and finiteness of queries.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "binding/registry.h"
#include "core/trajectory_lookup.h"
#ifdef RAGDIFF_WITH_CUDA
#include "cuda/cuda_api.h"
#endif

namespace ragdiff {
namespace binding {
namespace {

bool get_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t** data, size_t* len) {
  Napi::Value v = info[i];
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto a = v.As<Napi::TypedArray>();
    *data = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
    *len = a.ElementLength();
    return true;
  }
  throw_type(info.Env(), "INVALID_TYPE", std::string(name) + " must be an Int32Array");
  return false;
}

bool get_count(const Napi::CallbackInfo& info, size_t i, const char* name, double lo, double hi, size_t* out) {
  double v;
  if (!get_number(info, i, name, &v)) return false;
  if (!(std::floor(v) == v && v >= lo && v <= hi)) {
    throw_range(info.Env(), "OUT_OF_RANGE", std::string(name) + " must be an integer in " + std::to_string(static_cast<long long>(lo)) + ".." +
                                                std::to_string(static_cast<long long>(hi)) + ", got " + std::to_string(v));
    return false;
  }
  *out = static_cast<size_t>(v);
  return true;
}

bool rows(Napi::Env env, const char* name, size_t len, size_t d, size_t* n, bool nonempty = true) {
  if (d == 0 || len % d != 0 || (nonempty && len == 0)) {
    throw_range(env, "LENGTH_MISMATCH", std::string(name) + " must hold a positive whole number of rows of " + std::to_string(d) + " floats, got " +
                                            std::to_string(len) + " floats");
    return false;
  }
  *n = len / d;
  return true;
}

bool finite(Napi::Env env, const char* name, const float* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      throw_range(env, "NON_FINITE", std::string(name) + "[" + std::to_string(i) + "] is not finite");
      return false;
    }
  }
  return true;
}

Napi::Object topk_result(Napi::Env env, const std::vector<int32_t>& idx, const std::vector<float>& dist) {
  auto I = Napi::Int32Array::New(env, idx.size());
  auto D = Napi::Float32Array::New(env, dist.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    I[i] = idx[i];
    D[i] = dist[i];
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("indices", I);
  r.Set("distances", D);
  return r;
}

// Reads (keys, dim, queries, k) at arguments 0..3.
bool topk_args(const Napi::CallbackInfo& info, float** keys, size_t* n, size_t* d, float** queries, size_t* q, size_t* k) {
  Napi::Env env = info.Env();
  size_t nk, nq;
  if (!get_f32(info, 0, "keys", keys, &nk) || !get_count(info, 1, "dim", 1, 1 << 30, d) || !get_f32(info, 2, "queries", queries, &nq)) return false;
  if (!rows(env, "keys", nk, *d, n) || !rows(env, "queries", nq, *d, q) || !finite(env, "queries", *queries, nq)) return false;
  if (!get_count(info, 3, "k", 1, 1e9, k)) return false;
  if (*k > *n) {
    throw_range(env, "K_TOO_LARGE", "k = " + std::to_string(*k) + " exceeds the " + std::to_string(*n) + " keys");
    return false;
  }
  return true;
}

// trajectoryTopK(keys, dim, queries, k) -> { indices: Int32Array(q*k), distances: Float32Array(q*k) } (squared L2, ascending)
Napi::Value TopK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *keys, *queries;
  size_t n, d, q, k;
  if (!topk_args(info, &keys, &n, &d, &queries, &q, &k)) return env.Undefined();
  std::vector<int32_t> idx(q * k);
  std::vector<float> dist(q * k);
  std::string err;
  Status st = topk_exact(keys, n, d, queries, q, k, idx.data(), dist.data(), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  return topk_result(env, idx, dist);
}

Napi::Value TopKCuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *keys, *queries;
  size_t n, d, q, k;
  if (!topk_args(info, &keys, &n, &d, &queries, &q, &k)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  std::vector<int32_t> idx(q * k);
  std::vector<float> dist(q * k);
  std::string err;
  Status st = cuda::topk_exact_host(keys, n, d, queries, q, k, idx.data(), dist.data(), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  return topk_result(env, idx, dist);
#else
  throw_error(env, "CUDA_UNAVAILABLE", "this addon was built without CUDA (nvcc not found at build time, or WITH_CUDA=OFF)");
  return env.Undefined();
#endif
}

// trajectoryWeights(neighbours (k*d), query (d), ridge) -> { weights: Float64Array(k), residual }
Napi::Value Weights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *nb, *q;
  size_t nn, nq, k;
  double ridge;
  if (!get_f32(info, 0, "neighbours", &nb, &nn) || !get_f32(info, 1, "query", &q, &nq) || !get_finite(info, 2, "ridge", &ridge)) return env.Undefined();
  if (!rows(env, "neighbours", nn, nq, &k) || !finite(env, "neighbours", nb, nn) || !finite(env, "query", q, nq)) return env.Undefined();
  if (k > 256) {
    throw_range(env, "OUT_OF_RANGE", "at most 256 neighbours");
    return env.Undefined();
  }
  if (ridge < 0) {
    throw_range(env, "OUT_OF_RANGE", "ridge must be non-negative");
    return env.Undefined();
  }
  auto w = Napi::Float64Array::New(env, k);
  double residual = 0;
  std::string err;
  Status st = lsq_weights(nb, k, nq, q, ridge, w.Data(), &residual, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("weights", w);
  r.Set("residual", Napi::Number::New(env, residual));
  return r;
}

// trajectoryCombine(values (k*len), weights (k), out (len)) -> boolean (false: non-finite result)
Napi::Value Combine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *v, *out;
  double* w;
  size_t nv, nw, nout, k;
  if (!get_f32(info, 0, "values", &v, &nv) || !get_f64(info, 1, "weights", &w, &nw) || !get_f32(info, 2, "out", &out, &nout)) return env.Undefined();
  if (nw == 0 || nout == 0 || !rows(env, "values", nv, nout, &k) || k != nw) {
    throw_range(env, "LENGTH_MISMATCH", "values must hold weights.length rows of out.length floats");
    return env.Undefined();
  }
  for (size_t j = 0; j < nw; ++j) {
    if (!std::isfinite(w[j])) {
      throw_range(env, "NON_FINITE", "weights[" + std::to_string(j) + "] is not finite");
      return env.Undefined();
    }
  }
  const float* vend = v + nv;
  if (out < vend && v < out + nout) {
    throw_range(env, "INVALID_VALUE", "out must not overlap values");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, combine_weighted(v, w, k, nout, out));
}

// ivfTrain(keys, dim, nlist, iterations, seed) -> { centroids: Float32Array(nlist*d), assign: Int32Array(n) }
Napi::Value IvfTrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* keys;
  size_t nk, d, n, nlist, iters, seed;
  if (!get_f32(info, 0, "keys", &keys, &nk) || !get_count(info, 1, "dim", 1, 1 << 30, &d) || !rows(env, "keys", nk, d, &n) ||
      !get_count(info, 2, "nlist", 1, 1 << 20, &nlist) || !get_count(info, 3, "iterations", 0, 1000, &iters) ||
      !get_count(info, 4, "seed", 0, 9007199254740991.0, &seed))
    return env.Undefined();
  if (!finite(env, "keys", keys, nk)) return env.Undefined();
  auto c = Napi::Float32Array::New(env, nlist * d);
  auto a = Napi::Int32Array::New(env, n);
  std::string err;
  Status st = ivf_train(keys, n, d, nlist, static_cast<int>(iters), seed, c.Data(), a.Data(), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("centroids", c);
  r.Set("assign", a);
  return r;
}

// ivfSearch(listKeys, listIds, offsets (Float64Array nlist+1), centroids, dim, queries, k, nprobe) -> { indices, distances }
Napi::Value IvfSearch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *lk, *cent, *queries;
  int32_t* ids;
  double* off;
  size_t nlk, nids, noff, ncent, d, nq, n, nlist, q, k, nprobe;
  if (!get_f32(info, 0, "listKeys", &lk, &nlk) || !get_i32(info, 1, "listIds", &ids, &nids) || !get_f64(info, 2, "offsets", &off, &noff) ||
      !get_f32(info, 3, "centroids", &cent, &ncent) || !get_count(info, 4, "dim", 1, 1 << 30, &d) || !get_f32(info, 5, "queries", &queries, &nq) ||
      !get_count(info, 6, "k", 1, 1e9, &k) || !get_count(info, 7, "nprobe", 1, 1 << 20, &nprobe))
    return env.Undefined();
  if (!rows(env, "listKeys", nlk, d, &n) || !rows(env, "centroids", ncent, d, &nlist) || !rows(env, "queries", nq, d, &q) ||
      !finite(env, "queries", queries, nq))
    return env.Undefined();
  if (nids != n || noff != nlist + 1) {
    throw_range(env, "LENGTH_MISMATCH", "listIds must have one id per key and offsets nlist + 1 entries");
    return env.Undefined();
  }
  std::vector<int64_t> offsets(noff);
  for (size_t i = 0; i < noff; ++i) {
    const double o = off[i];
    if (!(std::floor(o) == o && o >= 0 && o <= static_cast<double>(n) && (i == 0 ? o == 0 : o >= off[i - 1])) || (i == noff - 1 && o != static_cast<double>(n))) {
      throw_range(env, "INVALID_VALUE", "offsets must rise from 0 to the number of keys");
      return env.Undefined();
    }
    offsets[i] = static_cast<int64_t>(o);
  }
  if (k > n) {
    throw_range(env, "K_TOO_LARGE", "k = " + std::to_string(k) + " exceeds the " + std::to_string(n) + " keys");
    return env.Undefined();
  }
  if (nprobe > nlist) {
    throw_range(env, "OUT_OF_RANGE", "nprobe must be at most nlist (" + std::to_string(nlist) + ")");
    return env.Undefined();
  }
  std::vector<int32_t> idx(q * k);
  std::vector<float> dist(q * k);
  std::string err;
  Status st = ivf_search(lk, ids, offsets.data(), cent, nlist, d, queries, q, k, nprobe, idx.data(), dist.data(), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  return topk_result(env, idx, dist);
}

}  // namespace

void init_trajectory(Napi::Env env, Napi::Object exports) {
  exports.Set("trajectoryTopK", Napi::Function::New(env, TopK, "trajectoryTopK"));
  exports.Set("trajectoryWeights", Napi::Function::New(env, Weights, "trajectoryWeights"));
  exports.Set("trajectoryCombine", Napi::Function::New(env, Combine, "trajectoryCombine"));
  exports.Set("ivfTrain", Napi::Function::New(env, IvfTrain, "ivfTrain"));
  exports.Set("ivfSearch", Napi::Function::New(env, IvfSearch, "ivfSearch"));
  Napi::Value c = exports.Get("cuda");
  if (c.IsObject()) c.As<Napi::Object>().Set("trajectoryTopK", Napi::Function::New(env, TopKCuda, "trajectoryTopK"));
}

}  // namespace binding
}  // namespace ragdiff
