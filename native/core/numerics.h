// Re-implementations of the few numpy / torch primitives that diffusers uses to
// build schedules, reproducing their arithmetic (float32 where torch tensors are
// float32, float64 where numpy works in doubles), so timesteps and sigmas match
// diffusers' values, not just their formulas.
#pragma once

#include <cstddef>
#include <vector>

namespace ragdiff {
namespace np {

// np.round / torch.round: round half to even.
double round_half_even(double x);

// np.linspace(start, stop, num) in float64 (endpoint included).
std::vector<double> linspace(double start, double stop, int num);

// np.arange(start, stop, step) in float64, numpy's fill arithmetic.
std::vector<double> arange(double start, double stop, double step);

// np.interp(x, [0, 1, ..., fp.size()-1], fp) for one x.
double interp_index(double x, const std::vector<double>& fp);

// Rounds to float32 (numpy .astype(np.float32) / torch float32 storage).
inline double f32(double x) { return static_cast<double>(static_cast<float>(x)); }

}  // namespace np

namespace torch {

// torch.linspace(start, end, steps, dtype=float32): float32 arithmetic, two halves.
std::vector<float> linspace_f32(double start, double end, int steps);

// torch.cumprod on a float32 CPU tensor: double accumulator, float32 outputs.
std::vector<float> cumprod_f32(const std::vector<float>& x);

}  // namespace torch
}  // namespace ragdiff
