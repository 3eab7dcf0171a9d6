// CUDA twin of core/context_fusion.cc: the same rule per element (zeros for a
// missing set or a zero weight, an exact copy for text tokens and weight 1, one
// float32 multiply __fmul_rn(w, x) otherwise), so CPU and GPU agree bit for bit.
// One block per group of tokens (grid-stride), threads across the token width,
// 16-byte (float4) accesses when the width allows.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "core/context_fusion.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {

template <bool VEC4>
__global__ void fuse_context_kernel(const ContextShape s, const float* __restrict__ text, const int32_t* __restrict__ text_index,
                                    const float* __restrict__ tokens, const int32_t* __restrict__ set_index, const float* __restrict__ weights,
                                    float* __restrict__ out) {
  const size_t L = s.text_length, S = s.slots, W = s.width, T = L + S;
  const size_t n_tok = s.rows * T;
  const size_t n = VEC4 ? W / 4 : W;
  for (size_t tok = blockIdx.x; tok < n_tok; tok += gridDim.x) {
    const size_t row = tok / T, t = tok % T;
    const float* src = nullptr;  // null: zeros
    float w = 1.0f;
    if (t < L) {
      src = text + (static_cast<size_t>(text_index[row]) * L + t) * W;
    } else {
      const int32_t set = set_index ? set_index[row] : -1;
      if (set >= 0) {
        const size_t slot = t - L;
        w = weights ? weights[row * S + slot] : 1.0f;
        if (w != 0.0f) src = tokens + (static_cast<size_t>(set) * S + slot) * W;
      }
    }
    const bool scale = src != nullptr && w != 1.0f;
    if (VEC4) {
      float4* dst = reinterpret_cast<float4*>(out + tok * W);
      const float4* s4 = reinterpret_cast<const float4*>(src);
      for (size_t c = threadIdx.x; c < n; c += blockDim.x) {
        float4 v = src ? __ldg(s4 + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (scale) v = make_float4(__fmul_rn(w, v.x), __fmul_rn(w, v.y), __fmul_rn(w, v.z), __fmul_rn(w, v.w));
        dst[c] = v;
      }
    } else {
      float* dst = out + tok * W;
      for (size_t c = threadIdx.x; c < n; c += blockDim.x) {
        const float v = src ? __ldg(src + c) : 0.0f;
        dst[c] = scale ? __fmul_rn(w, v) : v;
      }
    }
  }
}

namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Launches the fusion on device buffers, asynchronous on `stream`. The call must have passed check_context.
cudaError_t launch_fuse_context(const ContextShape& s, const float* text, const int32_t* ti, const float* tokens, const int32_t* si,
                                const float* weights, float* out, cudaStream_t stream) {
  const size_t n_tok = s.rows * (s.text_length + s.slots);
  if (n_tok == 0) return cudaSuccess;
  const bool vec4 = s.width % 4 == 0 && aligned16(text) && aligned16(out) && (!tokens || aligned16(tokens));
  const size_t per_token = vec4 ? s.width / 4 : s.width;
  int threads = static_cast<int>(((per_token + 31) / 32) * 32);
  if (threads > 256) threads = 256;
  const int sms = device_sm_count();
  size_t blocks = n_tok;
  const size_t cap = static_cast<size_t>(sms > 0 ? sms : 80) * 32;
  if (blocks > cap) blocks = cap;
  if (vec4) fuse_context_kernel<true><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(s, text, ti, tokens, si, weights, out);
  else fuse_context_kernel<false><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(s, text, ti, tokens, si, weights, out);
  return cudaGetLastError();
}

}  // namespace

Status fuse_context_host(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                         const int32_t* neighbour_index, const float* weights, float* out, size_t* bad, std::string* error) {
  const Status st = check_context(s, text_states, text_index, neighbour_tokens, neighbour_index, weights, bad);
  if (st != Status::kOk) {
    *error = std::string("fuse_context: ") + status_name(st);
    return st;
  }
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  const size_t out_n = context_out_length(s);
  if (out_n == 0) return Status::kOk;
  const size_t text_n = s.texts * s.text_length * s.width, tok_n = neighbour_tokens ? s.sets * s.slots * s.width : 0;
  const size_t w_n = weights ? s.rows * s.slots : 0;
  DeviceBuffer d_text(text_n * sizeof(float)), d_ti(s.rows * sizeof(int32_t)), d_tok(tok_n * sizeof(float)),
      d_si(neighbour_index ? s.rows * sizeof(int32_t) : 0), d_w(w_n * sizeof(float)), d_out(out_n * sizeof(float));
  cudaError_t e = cudaSuccess;
  auto ok = [&](cudaError_t r) { if (e == cudaSuccess) e = r; return e == cudaSuccess; };
  ok(d_text.status()); ok(d_ti.status()); ok(d_tok.status()); ok(d_si.status()); ok(d_w.status()); ok(d_out.status());
  ok(cudaMemcpy(d_text.get(), text_states, text_n * sizeof(float), cudaMemcpyHostToDevice));
  ok(cudaMemcpy(d_ti.get(), text_index, s.rows * sizeof(int32_t), cudaMemcpyHostToDevice));
  if (d_tok.get()) ok(cudaMemcpy(d_tok.get(), neighbour_tokens, tok_n * sizeof(float), cudaMemcpyHostToDevice));
  if (d_si.get()) ok(cudaMemcpy(d_si.get(), neighbour_index, s.rows * sizeof(int32_t), cudaMemcpyHostToDevice));
  if (d_w.get()) ok(cudaMemcpy(d_w.get(), weights, w_n * sizeof(float), cudaMemcpyHostToDevice));
  if (e == cudaSuccess) {
    ok(launch_fuse_context(s, static_cast<const float*>(d_text.get()), static_cast<const int32_t*>(d_ti.get()),
                           static_cast<const float*>(d_tok.get()), static_cast<const int32_t*>(d_si.get()),
                           static_cast<const float*>(d_w.get()), static_cast<float*>(d_out.get()), 0));
  }
  ok(cudaDeviceSynchronize());
  ok(cudaMemcpy(out, d_out.get(), out_n * sizeof(float), cudaMemcpyDeviceToHost));
  if (e != cudaSuccess) {
    *error = std::string("CUDA fuse_context failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  return Status::kOk;
}

Status fuse_context_bench(const ContextShape& shape, int iters, FusionBenchResult* r, std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  // Every row has its own neighbour set; texts alternate; weights 0.5 (the scaling path).
  ContextShape s = shape;
  s.sets = s.slots > 0 ? s.rows : 0;
  const size_t out_n = context_out_length(s);
  if (out_n == 0 || s.texts == 0 || iters < 1) {
    *error = "bad benchmark size";
    return Status::kInvalidArgument;
  }
  std::vector<int32_t> ti(s.rows), si(s.rows);
  for (size_t r = 0; r < s.rows; ++r) {
    ti[r] = static_cast<int32_t>(r % s.texts);
    si[r] = s.sets > 0 ? static_cast<int32_t>(r) : -1;
  }
  std::vector<float> w(s.rows * s.slots, 0.5f);
  const size_t text_n = s.texts * s.text_length * s.width, tok_n = s.sets * s.slots * s.width;
  DeviceBuffer d_text(text_n * sizeof(float)), d_ti(s.rows * sizeof(int32_t)), d_tok(tok_n * sizeof(float)),
      d_si(s.rows * sizeof(int32_t)), d_w(w.size() * sizeof(float)), d_out(out_n * sizeof(float)), d_copy(out_n * sizeof(float));
  cudaError_t e = cudaSuccess;
  auto ok = [&](cudaError_t x) { if (e == cudaSuccess) e = x; return e == cudaSuccess; };
  for (const DeviceBuffer* b : {&d_text, &d_ti, &d_tok, &d_si, &d_w, &d_out, &d_copy}) ok(b->status());
  if (e == cudaSuccess) {
    ok(cudaMemset(d_text.get(), 0, text_n * sizeof(float)));
    if (d_tok.get()) ok(cudaMemset(d_tok.get(), 0, tok_n * sizeof(float)));
    ok(cudaMemcpy(d_ti.get(), ti.data(), ti.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    ok(cudaMemcpy(d_si.get(), si.data(), si.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    if (d_w.get()) ok(cudaMemcpy(d_w.get(), w.data(), w.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  if (e != cudaSuccess) {
    *error = std::string("CUDA fusion benchmark setup failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
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
  const double bytes = 2.0 * static_cast<double>(out_n) * sizeof(float);  // every element read once, written once
  const float* tok = d_tok.get() ? static_cast<const float*>(d_tok.get()) : nullptr;
  double ms = time_ms([&] {
    ok(launch_fuse_context(s, static_cast<const float*>(d_text.get()), static_cast<const int32_t*>(d_ti.get()), tok,
                           static_cast<const int32_t*>(d_si.get()), d_w.get() ? static_cast<const float*>(d_w.get()) : nullptr,
                           static_cast<float*>(d_out.get()), 0));
  });
  r->ms = ms;
  r->gbs = bytes / (ms * 1e-3) / 1e9;
  ms = time_ms([&] { ok(cudaMemcpyAsync(d_copy.get(), d_out.get(), out_n * sizeof(float), cudaMemcpyDeviceToDevice)); });
  r->copy_gbs = bytes / (ms * 1e-3) / 1e9;
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  ok(cudaDeviceSynchronize());
  if (e != cudaSuccess) {
    *error = std::string("CUDA fusion benchmark failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
