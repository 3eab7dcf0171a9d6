#include "core/sigmas.h"

#include <algorithm>
#include <cmath>

#include "core/numerics.h"

namespace ragdiff {

std::vector<double> train_sigmas(const std::vector<double>& acp) {
  std::vector<double> s(acp.size());
  for (size_t i = 0; i < acp.size(); ++i) {
    const float a = static_cast<float>(acp[i]);
    s[i] = static_cast<double>(std::sqrt((1.0f - a) / a));
  }
  return s;
}

std::vector<double> log_sigmas_f32(const std::vector<double>& sigmas) {
  std::vector<double> l(sigmas.size());
  for (size_t i = 0; i < sigmas.size(); ++i) l[i] = np::f32(std::log(sigmas[i]));
  return l;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n) {
  const double rho = 7.0;
  std::vector<double> ramp = np::linspace(0.0, 1.0, n);
  const double min_inv = std::pow(sigma_min, 1.0 / rho), max_inv = std::pow(sigma_max, 1.0 / rho);
  std::vector<double> s(ramp.size());
  for (size_t i = 0; i < ramp.size(); ++i) s[i] = std::pow(max_inv + ramp[i] * (min_inv - max_inv), rho);
  return s;
}

double sigma_to_t(double sigma, const std::vector<double>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const size_t n = log_sigmas.size();
  // low_idx = argmax(cumsum(log_sigma - log_sigmas >= 0)), clipped to n - 2
  size_t best = 0, count = 0, best_count = 0;
  for (size_t j = 0; j < n; ++j) {
    if (log_sigma - log_sigmas[j] >= 0) ++count;
    if (count > best_count) {
      best_count = count;
      best = j;
    }
  }
  size_t low = std::min(best, n - 2), high = low + 1;
  const double lo = log_sigmas[low], hi = log_sigmas[high];
  double w = (lo - log_sigma) / (lo - hi);
  w = std::min(1.0, std::max(0.0, w));
  return (1 - w) * static_cast<double>(low) + w * static_cast<double>(high);
}

void sigma_to_alpha_sigma(double sigma, double* alpha_t, double* sigma_t) {
  *alpha_t = 1.0 / std::sqrt(sigma * sigma + 1.0);
  *sigma_t = sigma * *alpha_t;
}

}  // namespace ragdiff
