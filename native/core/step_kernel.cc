#include "core/step_kernel.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/step_kernel_avx2.h"
#include "core/thread_pool.h"

namespace ragdiff {
namespace {

// Elements per thread at least (2 MiB of floats). One AVX2 core already runs a step at
// cache / memory speed for tensors that fit in the L2 / L3 caches; threads pay off on
// larger tensors, whose speed is set by DRAM bandwidth.
constexpr size_t kGrain = 1 << 19;

#if RAGDIFF_SIMD
const bool g_avx2 = avx2::supported();
#endif

inline uint32_t nonfinite(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}

}  // namespace

#if RAGDIFF_SIMD
// 4 lanes: SSE2 on x86-64, NEON on arm64.
namespace sse {
typedef float VF __attribute__((vector_size(16)));
typedef int32_t VI __attribute__((vector_size(16)));
constexpr int W = 4;
inline VF load(const float* p) {
  VF v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, VF v) { std::memcpy(p, &v, sizeof v); }
inline VI nonfinite_v(VF v) {
  VI u;
  std::memcpy(&u, &v, sizeof u);
  return (u & 0x7f800000) == 0x7f800000;
}
inline VF splat(float s) { return VF{s, s, s, s}; }
#include "core/step_kernel_impl.h"
}  // namespace sse
#endif

namespace {

// One element, in the order the CUDA twin repeats.
template <bool CLIP, bool NOISE, bool HIST, bool X0>
inline uint32_t step_one(const FoldedStep& f, const StepBuffers& b, size_t i) {
  const size_t len = b.len, nb = b.n_branches;
  float x = b.sample[i];
  float acc, x0 = 0, eps = 0;
  if (!CLIP) {
    acc = f.cx * x;
    if (X0) x0 = f.px * x;
    for (size_t k = 0; k < nb; ++k) {
      float v = b.branches[k * len + i];
      acc = acc + f.cm[k] * v;
      if (X0) x0 = x0 + f.pm[k] * v;
    }
    if (HIST) {
      float h = b.history[i];
      acc = acc + f.ch * h;
    }
  } else {
    x0 = f.px * x;
    eps = f.ex * x;
    for (size_t k = 0; k < nb; ++k) {
      float v = b.branches[k * len + i];
      x0 = x0 + f.pm[k] * v;
      eps = eps + f.em[k] * v;
    }
    float c = x0 < f.lo ? f.lo : x0;
    x0 = c > f.hi ? f.hi : c;
    acc = f.dx0 * x0 + f.deps * eps;
  }
  if (NOISE) {
    float z = b.noise[i];
    acc = acc + f.cn * z;
  }
  b.out[i] = acc;
  if (X0) b.x0_out[i] = x0;
  return nonfinite(acc);
}

// NB: the branch count when known at compile time (1 or 2), 0 for any.
template <bool CLIP, bool NOISE, bool HIST, bool X0, size_t NB>
uint32_t step_range(const FoldedStep& f, const StepBuffers& b, size_t begin, size_t end) {
  uint32_t bad = 0;
  size_t i = begin;
#if RAGDIFF_SIMD
  if (g_avx2) bad = avx2::step_range_vec<CLIP, NOISE, HIST, X0, NB>(f, b, begin, end, &i);
  else bad = sse::step_range_vec<CLIP, NOISE, HIST, X0, NB>(f, b, begin, end, &i);
#endif
  for (; i < end; ++i) bad |= step_one<CLIP, NOISE, HIST, X0>(f, b, i);
  return bad;
}

using RangeKernel = uint32_t (*)(const FoldedStep&, const StepBuffers&, size_t, size_t);

template <bool CLIP, bool NOISE, bool HIST, bool X0>
RangeKernel pick_nb(size_t nb) {
  return nb == 1 ? step_range<CLIP, NOISE, HIST, X0, 1> : nb == 2 ? step_range<CLIP, NOISE, HIST, X0, 2> : step_range<CLIP, NOISE, HIST, X0, 0>;
}
template <bool CLIP, bool NOISE, bool HIST>
RangeKernel pick_x0(bool x0, size_t nb) {
  return x0 ? pick_nb<CLIP, NOISE, HIST, true>(nb) : pick_nb<CLIP, NOISE, HIST, false>(nb);
}
template <bool CLIP, bool NOISE>
RangeKernel pick_hist(bool hist, bool x0, size_t nb) {
  return hist ? pick_x0<CLIP, NOISE, true>(x0, nb) : pick_x0<CLIP, NOISE, false>(x0, nb);
}
template <bool CLIP>
RangeKernel pick_noise(bool noise, bool hist, bool x0, size_t nb) {
  return noise ? pick_hist<CLIP, true>(hist, x0, nb) : pick_hist<CLIP, false>(hist, x0, nb);
}

}  // namespace

bool fold_step(const StepCoefficients& c, const double* weights, size_t n, FoldedStep* f) {
  if (n == 0 || n > kMaxBranches) return false;
  f->cx = static_cast<float>(c.cx);
  f->ch = static_cast<float>(c.ch);
  f->cn = static_cast<float>(c.cn);
  f->px = static_cast<float>(c.px);
  f->ex = static_cast<float>(c.ex);
  f->dx0 = static_cast<float>(c.dx0);
  f->deps = static_cast<float>(c.deps);
  f->lo = static_cast<float>(-c.clip_range);
  f->hi = static_cast<float>(c.clip_range);
  for (size_t k = 0; k < n; ++k) {
    const double w = weights ? weights[k] : 1.0;
    f->cm[k] = static_cast<float>(c.cm * w);
    f->pm[k] = static_cast<float>(c.pm * w);
    f->em[k] = static_cast<float>(c.em * w);
  }
  f->clip = c.clip;
  f->noise = c.uses_noise;
  f->history = c.uses_history && !c.clip;
  return true;
}

bool apply_step(const StepCoefficients& c, const StepBuffers& b) {
  FoldedStep f;
  if (!fold_step(c, b.weights, b.n_branches, &f)) return false;
  const bool x0 = b.x0_out != nullptr;
  RangeKernel k = f.clip ? pick_noise<true>(f.noise, false, x0, b.n_branches) : pick_noise<false>(f.noise, f.history, x0, b.n_branches);
  std::atomic<uint32_t> bad{0};
  parallel_for(b.len, kGrain, [&](size_t lo, size_t hi) {
    if (k(f, b, lo, hi)) bad.store(1, std::memory_order_relaxed);
  });
  return bad.load() == 0;
}

bool scale_div(const float* x, float d, float* out, size_t len) {
  std::atomic<uint32_t> bad{0};
  parallel_for(len, kGrain, [&](size_t lo, size_t hi) {
    uint32_t local = 0;
    for (size_t i = lo; i < hi; ++i) {
      float v = x[i];
      local |= nonfinite(v);
      out[i] = v / d;
    }
    if (local) bad.store(1, std::memory_order_relaxed);
  });
  return bad.load() == 0;
}

bool axpby(float a, const float* x, float b, const float* y, float* out, size_t len) {
  std::atomic<uint32_t> bad{0};
  parallel_for(len, kGrain, [&](size_t lo, size_t hi) {
    uint32_t local = 0;
    for (size_t i = lo; i < hi; ++i) {
      float u = x[i], v = y[i];
      local |= nonfinite(u) | nonfinite(v);
      out[i] = a * u + b * v;
    }
    if (local) bad.store(1, std::memory_order_relaxed);
  });
  return bad.load() == 0;
}

}  // namespace ragdiff
