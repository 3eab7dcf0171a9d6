// The vector body of the step kernel, shared by step_kernel.cc (4-wide, baseline
// ISA) and step_kernel_avx2.cc (8-wide, compiled for AVX2). No includes: the
// includer defines, in its own namespace, VF / VI (float / int32 GCC vector types
// of W lanes), load / store / nonfinite / splat, and includes this inside that
// namespace. Every group's inputs are loaded before its outputs are stored, so
// out == sample is safe; per element the arithmetic order is step_one's.

// Processes [begin, begin + k*W) and sets *next to the first element left for the scalar tail.
template <bool CLIP, bool NOISE, bool HIST, bool X0, size_t NB>
uint32_t step_range_vec(const FoldedStep& f, const StepBuffers& b, size_t begin, size_t end, size_t* next) {
  size_t i = begin;
  // Everything the loop reads goes into locals first: stores through `out` could
  // otherwise alias `f` and `b`, forcing reloads on every iteration.
  const size_t len = b.len, nb = NB ? NB : b.n_branches;
  const float* const sample = b.sample;
  const float* const branches = b.branches;
  const float* const history = b.history;
  const float* const noise = b.noise;
  float* const out = b.out;
  float* const x0_out = b.x0_out;
  VF cmv[NB ? NB : 1], pmv[NB ? NB : 1], emv[NB ? NB : 1];
  for (size_t k = 0; k < NB; ++k) {
    cmv[k] = splat(f.cm[k]);
    pmv[k] = splat(f.pm[k]);
    emv[k] = splat(f.em[k]);
  }
  VI badv = VI{};
  const VF cx = splat(f.cx), px = splat(f.px), ex = splat(f.ex), ch = splat(f.ch), cn = splat(f.cn);
  const VF dx0 = splat(f.dx0), deps = splat(f.deps), lo = splat(f.lo), hi = splat(f.hi);
  for (; i + W <= end; i += W) {
    const VF x = load(sample + i);
    VF acc, x0 = VF{};
    if (!CLIP) {
      acc = cx * x;
      if (X0) x0 = px * x;
      for (size_t k = 0; k < nb; ++k) {
        const VF v = load(branches + k * len + i);
        acc = acc + (NB ? cmv[k] : splat(f.cm[k])) * v;
        if (X0) x0 = x0 + (NB ? pmv[k] : splat(f.pm[k])) * v;
      }
      if (HIST) {
        const VF h = load(history + i);
        acc = acc + ch * h;
      }
    } else {
      VF eps = ex * x;
      x0 = px * x;
      for (size_t k = 0; k < nb; ++k) {
        const VF v = load(branches + k * len + i);
        x0 = x0 + (NB ? pmv[k] : splat(f.pm[k])) * v;
        eps = eps + (NB ? emv[k] : splat(f.em[k])) * v;
      }
      const VF c = x0 < lo ? lo : x0;
      x0 = c > hi ? hi : c;
      acc = dx0 * x0 + deps * eps;
    }
    if (NOISE) {
      const VF z = load(noise + i);
      acc = acc + cn * z;
    }
    badv |= nonfinite_v(acc);
    store(out + i, acc);
    if (X0) store(x0_out + i, x0);
  }
  *next = i;
  int32_t any = 0;
  for (int l = 0; l < W; ++l) any |= badv[l];
  return static_cast<uint32_t>(any != 0);
}
