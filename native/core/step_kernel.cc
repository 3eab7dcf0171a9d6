#include "core/step_kernel.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/thread_pool.h"

namespace ragdiff {
namespace {

constexpr size_t kBlock = 16;
constexpr size_t kGrain = 1 << 16;  // elements per thread at least (256 KiB of floats)

inline uint32_t nonfinite(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}

template <bool CLIP, bool NOISE, bool HIST, bool X0>
uint32_t step_range(const FoldedStep& f, const StepBuffers& b, size_t begin, size_t end) {
  const size_t len = b.len, nb = b.n_branches;
  uint32_t bad = 0;
  size_t i = begin;
  // Blocks: every input of a block is loaded before any output of it is stored,
  // which makes out == sample (or out == a branch) safe and lets the compiler vectorize.
  for (; i + kBlock <= end; i += kBlock) {
    float x[kBlock], acc[kBlock], x0[kBlock], eps[kBlock];
    for (size_t j = 0; j < kBlock; ++j) {
      x[j] = b.sample[i + j];
      bad |= nonfinite(x[j]);
    }
    if (!CLIP) {
      for (size_t j = 0; j < kBlock; ++j) acc[j] = f.cx * x[j];
      if (X0) for (size_t j = 0; j < kBlock; ++j) x0[j] = f.px * x[j];
      for (size_t k = 0; k < nb; ++k) {
        const float* br = b.branches + k * len + i;
        const float cm = f.cm[k], pm = f.pm[k];
        for (size_t j = 0; j < kBlock; ++j) {
          float v = br[j];
          bad |= nonfinite(v);
          acc[j] = acc[j] + cm * v;
          if (X0) x0[j] = x0[j] + pm * v;
        }
      }
      if (HIST) {
        for (size_t j = 0; j < kBlock; ++j) {
          float h = b.history[i + j];
          bad |= nonfinite(h);
          acc[j] = acc[j] + f.ch * h;
        }
      }
    } else {
      for (size_t j = 0; j < kBlock; ++j) {
        x0[j] = f.px * x[j];
        eps[j] = f.ex * x[j];
      }
      for (size_t k = 0; k < nb; ++k) {
        const float* br = b.branches + k * len + i;
        const float pm = f.pm[k], em = f.em[k];
        for (size_t j = 0; j < kBlock; ++j) {
          float v = br[j];
          bad |= nonfinite(v);
          x0[j] = x0[j] + pm * v;
          eps[j] = eps[j] + em * v;
        }
      }
      for (size_t j = 0; j < kBlock; ++j) {
        float c = x0[j] < f.lo ? f.lo : x0[j];
        x0[j] = c > f.hi ? f.hi : c;
        acc[j] = f.dx0 * x0[j] + f.deps * eps[j];
      }
    }
    if (NOISE) {
      for (size_t j = 0; j < kBlock; ++j) {
        float z = b.noise[i + j];
        bad |= nonfinite(z);
        acc[j] = acc[j] + f.cn * z;
      }
    }
    for (size_t j = 0; j < kBlock; ++j) b.out[i + j] = acc[j];
    if (X0) for (size_t j = 0; j < kBlock; ++j) b.x0_out[i + j] = x0[j];
  }
  // Tail: the same arithmetic, one element at a time.
  for (; i < end; ++i) {
    float x = b.sample[i];
    bad |= nonfinite(x);
    float acc, x0 = 0, eps = 0;
    if (!CLIP) {
      acc = f.cx * x;
      if (X0) x0 = f.px * x;
      for (size_t k = 0; k < nb; ++k) {
        float v = b.branches[k * len + i];
        bad |= nonfinite(v);
        acc = acc + f.cm[k] * v;
        if (X0) x0 = x0 + f.pm[k] * v;
      }
      if (HIST) {
        float h = b.history[i];
        bad |= nonfinite(h);
        acc = acc + f.ch * h;
      }
    } else {
      x0 = f.px * x;
      eps = f.ex * x;
      for (size_t k = 0; k < nb; ++k) {
        float v = b.branches[k * len + i];
        bad |= nonfinite(v);
        x0 = x0 + f.pm[k] * v;
        eps = eps + f.em[k] * v;
      }
      float c = x0 < f.lo ? f.lo : x0;
      x0 = c > f.hi ? f.hi : c;
      acc = f.dx0 * x0 + f.deps * eps;
    }
    if (NOISE) {
      float z = b.noise[i];
      bad |= nonfinite(z);
      acc = acc + f.cn * z;
    }
    b.out[i] = acc;
    if (X0) b.x0_out[i] = x0;
  }
  return bad;
}

using RangeKernel = uint32_t (*)(const FoldedStep&, const StepBuffers&, size_t, size_t);

template <bool CLIP, bool NOISE, bool HIST>
RangeKernel pick_x0(bool x0) {
  return x0 ? step_range<CLIP, NOISE, HIST, true> : step_range<CLIP, NOISE, HIST, false>;
}
template <bool CLIP, bool NOISE>
RangeKernel pick_hist(bool hist, bool x0) {
  return hist ? pick_x0<CLIP, NOISE, true>(x0) : pick_x0<CLIP, NOISE, false>(x0);
}
template <bool CLIP>
RangeKernel pick_noise(bool noise, bool hist, bool x0) {
  return noise ? pick_hist<CLIP, true>(hist, x0) : pick_hist<CLIP, false>(hist, x0);
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
  RangeKernel k = f.clip ? pick_noise<true>(f.noise, false, x0) : pick_noise<false>(f.noise, f.history, x0);
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
