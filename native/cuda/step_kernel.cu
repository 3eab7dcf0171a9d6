// CUDA twin of core/step_kernel.cc: the same per-element arithmetic in the same
// order (nvcc runs with --fmad=false, g++ with -ffp-contract=off), so CPU and GPU
// agree to the last bit. 16-byte (float4) accesses when every buffer allows it.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "core/step_kernel.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_util.cuh"

namespace ragdiff {
namespace cuda {

__device__ __forceinline__ unsigned nonfinite(float v) { return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u; }

template <bool CLIP, bool NOISE, bool HIST, bool X0>
__device__ __forceinline__ unsigned step_element(const FoldedStep& f, const float* __restrict__ br, size_t nb, size_t len, size_t i,
                                                 float x, float z, float h, float* out, float* x0o) {
  float acc, x0 = 0.0f;
  if (!CLIP) {
    acc = __fmul_rn(f.cx, x);
    if (X0) x0 = __fmul_rn(f.px, x);
    for (size_t k = 0; k < nb; ++k) {
      const float v = __ldg(br + k * len + i);
      acc = __fadd_rn(acc, __fmul_rn(f.cm[k], v));
      if (X0) x0 = __fadd_rn(x0, __fmul_rn(f.pm[k], v));
    }
    if (HIST) {
      acc = __fadd_rn(acc, __fmul_rn(f.ch, h));
    }
  } else {
    float eps = __fmul_rn(f.ex, x);
    x0 = __fmul_rn(f.px, x);
    for (size_t k = 0; k < nb; ++k) {
      const float v = __ldg(br + k * len + i);
      x0 = __fadd_rn(x0, __fmul_rn(f.pm[k], v));
      eps = __fadd_rn(eps, __fmul_rn(f.em[k], v));
    }
    const float c = x0 < f.lo ? f.lo : x0;
    x0 = c > f.hi ? f.hi : c;
    acc = __fadd_rn(__fmul_rn(f.dx0, x0), __fmul_rn(f.deps, eps));
  }
  if (NOISE) {
    acc = __fadd_rn(acc, __fmul_rn(f.cn, z));
  }
  *out = acc;
  if (X0) *x0o = x0;
  return nonfinite(acc);  // non-finite exactly when an input is (or the result overflows), as on the CPU
}

template <bool CLIP, bool NOISE, bool HIST, bool X0>
__global__ void step_kernel_scalar(const FoldedStep f, const float* __restrict__ br, size_t nb, const float* x, const float* __restrict__ z,
                                   const float* __restrict__ h, float* x0o, float* out, size_t len, unsigned* bad_flag) {
  unsigned bad = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < len; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float o, x0;
    bad |= step_element<CLIP, NOISE, HIST, X0>(f, br, nb, len, i, x[i], NOISE ? z[i] : 0.0f, HIST ? h[i] : 0.0f, &o, &x0);
    out[i] = o;
    if (X0) x0o[i] = x0;
  }
  if (bad) atomicOr(bad_flag, 1u);
}

// Four consecutive elements per thread and iteration, loaded and stored as float4.
template <bool CLIP, bool NOISE, bool HIST, bool X0>
__global__ void step_kernel_vec4(const FoldedStep f, const float* __restrict__ br, size_t nb, const float* x, const float* __restrict__ z,
                                 const float* __restrict__ h, float* x0o, float* out, size_t len, unsigned* bad_flag) {
  unsigned bad = 0;
  const size_t n4 = len / 4;
  for (size_t q = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; q < n4; q += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = q * 4;
    const float4 xv = reinterpret_cast<const float4*>(x)[q];
    const float4 zv = NOISE ? __ldg(reinterpret_cast<const float4*>(z) + q) : make_float4(0, 0, 0, 0);
    const float4 hv = HIST ? __ldg(reinterpret_cast<const float4*>(h) + q) : make_float4(0, 0, 0, 0);
    float4 ov, x0v;
    if (!CLIP && nb <= 4) {
      // branches as float4 too
      float acc[4] = {__fmul_rn(f.cx, xv.x), __fmul_rn(f.cx, xv.y), __fmul_rn(f.cx, xv.z), __fmul_rn(f.cx, xv.w)};
      float x0[4] = {0, 0, 0, 0};
      if (X0) {
        x0[0] = __fmul_rn(f.px, xv.x); x0[1] = __fmul_rn(f.px, xv.y); x0[2] = __fmul_rn(f.px, xv.z); x0[3] = __fmul_rn(f.px, xv.w);
      }
      for (size_t k = 0; k < nb; ++k) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(br + k * len) + q);
        const float vs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc[j] = __fadd_rn(acc[j], __fmul_rn(f.cm[k], vs[j]));
          if (X0) x0[j] = __fadd_rn(x0[j], __fmul_rn(f.pm[k], vs[j]));
        }
      }
      const float hs[4] = {hv.x, hv.y, hv.z, hv.w}, zs[4] = {zv.x, zv.y, zv.z, zv.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (HIST) {
          acc[j] = __fadd_rn(acc[j], __fmul_rn(f.ch, hs[j]));
        }
        if (NOISE) {
          acc[j] = __fadd_rn(acc[j], __fmul_rn(f.cn, zs[j]));
        }
      }
      bad |= nonfinite(acc[0]) | nonfinite(acc[1]) | nonfinite(acc[2]) | nonfinite(acc[3]);
      ov = make_float4(acc[0], acc[1], acc[2], acc[3]);
      x0v = make_float4(x0[0], x0[1], x0[2], x0[3]);
    } else {
      float o[4], x0[4];
      const float xs[4] = {xv.x, xv.y, xv.z, xv.w}, zs[4] = {zv.x, zv.y, zv.z, zv.w}, hs[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) bad |= step_element<CLIP, NOISE, HIST, X0>(f, br, nb, len, i + j, xs[j], zs[j], hs[j], &o[j], &x0[j]);
      ov = make_float4(o[0], o[1], o[2], o[3]);
      x0v = make_float4(x0[0], x0[1], x0[2], x0[3]);
    }
    reinterpret_cast<float4*>(out)[q] = ov;
    if (X0) reinterpret_cast<float4*>(x0o)[q] = x0v;
  }
  if (bad) atomicOr(bad_flag, 1u);
}

namespace {

using Kernel = void (*)(const FoldedStep, const float*, size_t, const float*, const float*, const float*, float*, float*, size_t, unsigned*);

template <bool CLIP, bool NOISE, bool HIST, bool X0>
Kernel pick(bool vec4) {
  return vec4 ? step_kernel_vec4<CLIP, NOISE, HIST, X0> : step_kernel_scalar<CLIP, NOISE, HIST, X0>;
}

Kernel choose(const FoldedStep& f, bool x0, bool vec4) {
  if (f.clip) {
    if (f.noise) return x0 ? pick<true, true, false, true>(vec4) : pick<true, true, false, false>(vec4);
    return x0 ? pick<true, false, false, true>(vec4) : pick<true, false, false, false>(vec4);
  }
  if (f.noise) {
    if (f.history) return x0 ? pick<false, true, true, true>(vec4) : pick<false, true, true, false>(vec4);
    return x0 ? pick<false, true, false, true>(vec4) : pick<false, true, false, false>(vec4);
  }
  if (f.history) return x0 ? pick<false, false, true, true>(vec4) : pick<false, false, true, false>(vec4);
  return x0 ? pick<false, false, false, true>(vec4) : pick<false, false, false, false>(vec4);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

// Launches one step on device buffers (all pointers device pointers). Asynchronous on `stream`.
cudaError_t launch_step(const FoldedStep& f, const StepBuffers& b, unsigned* bad_flag, cudaStream_t stream) {
  const bool vec4 = b.len % 4 == 0 && aligned16(b.branches) && aligned16(b.sample) && aligned16(b.out) &&
                    (!b.noise || aligned16(b.noise)) && (!b.history || aligned16(b.history)) && (!b.x0_out || aligned16(b.x0_out));
  Kernel k = choose(f, b.x0_out != nullptr, vec4);
  const int threads = 256;
  const size_t items = vec4 ? b.len / 4 : b.len;
  const int sms = device_sm_count();
  size_t blocks = (items + threads - 1) / threads;
  const size_t cap = static_cast<size_t>(sms > 0 ? sms : 80) * 8;
  if (blocks > cap) blocks = cap;
  if (blocks == 0) blocks = 1;
  k<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(f, b.branches, b.n_branches, b.sample, b.noise, b.history, b.x0_out, b.out, b.len, bad_flag);
  return cudaGetLastError();
}

Status step_host(const StepCoefficients& c, const StepBuffers& hb, bool* finite, std::string* error) {
  std::string why;
  if (!available(&why)) {
    *error = why;
    return Status::kCudaUnavailable;
  }
  FoldedStep f;
  if (!fold_step(c, hb.weights, hb.n_branches, &f)) {
    *error = "bad branch count";
    return Status::kInvalidArgument;
  }
  const size_t n = hb.len, bytes = n * sizeof(float);
  DeviceBuffer br(hb.n_branches * bytes), x(bytes), z(hb.noise && f.noise ? bytes : 0), h(hb.history && f.history ? bytes : 0),
      x0(hb.x0_out ? bytes : 0), out(bytes), flag(sizeof(unsigned));
  cudaError_t e = cudaSuccess;
  auto ok = [&](cudaError_t r) { if (e == cudaSuccess) e = r; return e == cudaSuccess; };
  ok(br.status()); ok(x.status()); ok(z.status()); ok(h.status()); ok(x0.status()); ok(out.status()); ok(flag.status());
  ok(cudaMemcpy(br.get(), hb.branches, hb.n_branches * bytes, cudaMemcpyHostToDevice));
  ok(cudaMemcpy(x.get(), hb.sample, bytes, cudaMemcpyHostToDevice));
  if (z.get()) ok(cudaMemcpy(z.get(), hb.noise, bytes, cudaMemcpyHostToDevice));
  if (h.get()) ok(cudaMemcpy(h.get(), hb.history, bytes, cudaMemcpyHostToDevice));
  ok(cudaMemset(flag.get(), 0, sizeof(unsigned)));
  StepBuffers db = hb;
  db.branches = static_cast<const float*>(br.get());
  db.sample = static_cast<const float*>(x.get());
  db.noise = static_cast<const float*>(z.get());
  db.history = static_cast<const float*>(h.get());
  db.x0_out = static_cast<float*>(x0.get());
  db.out = static_cast<float*>(out.get());
  if (e == cudaSuccess && n > 0) ok(launch_step(f, db, static_cast<unsigned*>(flag.get()), 0));
  ok(cudaDeviceSynchronize());
  unsigned bad = 0;
  ok(cudaMemcpy(&bad, flag.get(), sizeof bad, cudaMemcpyDeviceToHost));
  ok(cudaMemcpy(hb.out, out.get(), bytes, cudaMemcpyDeviceToHost));
  if (hb.x0_out) ok(cudaMemcpy(hb.x0_out, x0.get(), bytes, cudaMemcpyDeviceToHost));
  if (e != cudaSuccess) {
    *error = std::string("CUDA step failed: ") + cudaGetErrorString(e);
    return Status::kCudaError;
  }
  *finite = bad == 0;
  return Status::kOk;
}

}  // namespace cuda
}  // namespace ragdiff
