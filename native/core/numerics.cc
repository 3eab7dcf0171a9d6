#include "core/numerics.h"

#include <cmath>

namespace ragdiff {
namespace np {

double round_half_even(double x) {
  double r = std::floor(x);
  double d = x - r;
  if (d > 0.5) return r + 1.0;
  if (d < 0.5) return r;
  return std::fmod(r, 2.0) == 0.0 ? r : r + 1.0;
}

std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(static_cast<size_t>(num > 0 ? num : 0));
  if (num <= 0) return y;
  const int div = num - 1;
  if (div == 0) {
    y[0] = start;
    return y;
  }
  const double delta = stop - start;
  const double step = delta / div;
  for (int i = 0; i < num; ++i) y[static_cast<size_t>(i)] = (step == 0 ? (i / static_cast<double>(div)) * delta : i * step) + start;
  y[static_cast<size_t>(div)] = stop;
  return y;
}

std::vector<double> arange(double start, double stop, double step) {
  double len_d = std::ceil((stop - start) / step);
  size_t len = len_d > 0 ? static_cast<size_t>(len_d) : 0;
  std::vector<double> y(len);
  if (len == 0) return y;
  y[0] = start;
  if (len == 1) return y;
  y[1] = start + step;
  const double delta = y[1] - y[0];
  for (size_t i = 2; i < len; ++i) y[i] = start + static_cast<double>(i) * delta;
  return y;
}

double interp_index(double x, const std::vector<double>& fp) {
  const size_t n = fp.size();
  if (n == 0) return NAN;
  if (std::isnan(x)) return x;
  if (x <= 0) return fp[0];
  const double last = static_cast<double>(n - 1);
  if (x >= last) return fp[n - 1];
  size_t j = static_cast<size_t>(std::floor(x));
  if (x == static_cast<double>(j)) return fp[j];
  const double slope = (fp[j + 1] - fp[j]) / 1.0;
  double r = slope * (x - static_cast<double>(j)) + fp[j];
  if (std::isnan(r)) r = slope * (x - static_cast<double>(j + 1)) + fp[j + 1];
  return r;
}

}  // namespace np

namespace torch {

std::vector<float> linspace_f32(double start_d, double end_d, int steps) {
  std::vector<float> y(static_cast<size_t>(steps > 0 ? steps : 0));
  if (steps <= 0) return y;
  const float start = static_cast<float>(start_d);
  const float end = static_cast<float>(end_d);
  if (steps == 1) {
    y[0] = start;
    return y;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int halfway = steps / 2;
  for (int i = 0; i < steps; ++i) {
    y[static_cast<size_t>(i)] = i < halfway ? start + step * static_cast<float>(i)
                                            : end - step * static_cast<float>(steps - i - 1);
  }
  return y;
}

std::vector<float> cumprod_f32(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  double acc = 1.0;
  for (size_t i = 0; i < x.size(); ++i) {
    acc *= static_cast<double>(x[i]);
    y[i] = static_cast<float>(acc);
  }
  return y;
}

}  // namespace torch
}  // namespace ragdiff
