// The one elementwise pass every sampler step reduces to.
//
// Each sampler (ddim.cc, euler.cc, euler_ancestral.cc, dpm_solver.cc) turns its
// schedule and step index into StepCoefficients; apply_step then makes one pass
// over memory. Guidance is fused in: the model output is a weighted sum of N
// branch outputs (branch-major, N x len), so classifier-free guidance, dual-scale
// or condition-mixture guidance all cost one read of each branch and one write.
//
// Linear form (every sampler without clipping):
//   m   = sum_k w_k * branch_k
//   out = cx*x + cm*m + ch*h + cn*z          h: previous data prediction (DPM++), z: noise
//   x0  = px*x + pm*m                         (written when x0_out is given)
// Clip form (DDIM with clip_sample):
//   x0  = clamp(px*x + pm*m, -r, r);  eps = ex*x + em*m;  out = dx0*x0 + deps*eps + cn*z
//
// Coefficients are folded in double, then applied in float32 in a fixed order
// that the CUDA twin (native/cuda/step_kernel.cu) repeats exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ragdiff {

constexpr size_t kMaxBranches = 64;

struct StepCoefficients {
  double cx = 0, cm = 0, ch = 0, cn = 0;  // linear form
  double px = 0, pm = 0;                  // data prediction x0
  bool clip = false;                      // clip form
  double clip_range = 1, ex = 0, em = 0, dx0 = 0, deps = 0;
  bool uses_noise = false;    // cn != 0: `noise` must be given
  bool uses_history = false;  // ch != 0: `history` must be given
  bool writes_x0 = false;     // the sampler keeps x0 as its history (DPM++)
};

struct StepBuffers {
  const float* branches = nullptr;  // n_branches x len, branch-major
  size_t n_branches = 1;
  const double* weights = nullptr;  // n_branches guidance weights
  const float* sample = nullptr;
  const float* noise = nullptr;     // when c.uses_noise
  const float* history = nullptr;   // when c.uses_history
  float* x0_out = nullptr;          // optional: receives the data prediction
  float* out = nullptr;             // may alias sample (or a branch): each element is read before it is written
  size_t len = 0;
};

// The coefficients as the kernels use them: floats, weights folded per branch.
struct FoldedStep {
  float cx, ch, cn, px, ex, dx0, deps, lo, hi;
  float cm[kMaxBranches], pm[kMaxBranches], em[kMaxBranches];
  bool clip, noise, history;
};

// Returns false when n_branches is 0 or above kMaxBranches.
bool fold_step(const StepCoefficients& c, const double* weights, size_t n_branches, FoldedStep* f);

// One step over len elements, threaded for large tensors. Returns false when an
// output element is NaN or +-Inf, which happens exactly when an input read
// (branches, sample, noise, history) holds NaN or +-Inf (every input enters each
// output through a product, and 0 * Inf is NaN) or when finite inputs overflow
// float32; `out` and `x0_out` then hold unspecified values. Checking the output
// instead of every input keeps the check to one test per element. No allocation.
bool apply_step(const StepCoefficients& c, const StepBuffers& b);

// out = x * (1 / d) computed as x / d in float32; returns false on non-finite x.
bool scale_div(const float* x, float d, float* out, size_t len);

// out = a*x + b*y in float32; returns false on non-finite x or y.
bool axpby(float a, const float* x, float b, const float* y, float* out, size_t len);

}  // namespace ragdiff
