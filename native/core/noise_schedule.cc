#include "core/noise_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/numerics.h"

namespace ragdiff {
namespace {

// betas_for_alpha_bar with the cosine ("squaredcos_cap_v2") alpha_bar, max_beta 0.999: Python doubles.
std::vector<float> squaredcos_cap_v2(int n) {
  constexpr double kPi = 3.14159265358979323846;
  auto alpha_bar = [&](double t) {
    double c = std::cos((t + 0.008) / 1.008 * kPi / 2);
    return c * c;
  };
  std::vector<float> betas(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
    betas[static_cast<size_t>(i)] = static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return betas;
}

// rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1), in float32 like diffusers.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> alphas(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) alphas[i] = 1.0f - betas[i];
  std::vector<float> acp = torch::cumprod_f32(alphas);
  std::vector<float> s(acp.size());
  for (size_t i = 0; i < acp.size(); ++i) s[i] = std::sqrt(acp[i]);
  const float s0 = s.front(), sT = s.back();
  for (float& v : s) v -= sT;
  const float scale = s0 / (s0 - sT);
  for (float& v : s) v *= scale;
  std::vector<float> ab(s.size());
  for (size_t i = 0; i < s.size(); ++i) ab[i] = s[i] * s[i];
  std::vector<float> out(betas.size());
  out[0] = 1.0f - ab[0];
  for (size_t i = 1; i < ab.size(); ++i) out[i] = 1.0f - ab[i] / ab[i - 1];
  return out;
}

}  // namespace

Status make_alphas_cumprod(const SchedulerConfig& cfg, std::vector<double>* out, std::string* error) {
  const int n = cfg.num_train_timesteps;
  if (n < 2 || n > 100000) {
    *error = "num_train_timesteps must be an integer in 2..100000";
    return Status::kInvalidArgument;
  }
  std::vector<float> betas;
  switch (cfg.beta_schedule) {
    case BetaSchedule::kLinear:
      betas = torch::linspace_f32(cfg.beta_start, cfg.beta_end, n);
      break;
    case BetaSchedule::kScaledLinear: {
      betas = torch::linspace_f32(std::sqrt(cfg.beta_start), std::sqrt(cfg.beta_end), n);
      for (float& b : betas) b = b * b;
      break;
    }
    case BetaSchedule::kSquaredCosCapV2:
      betas = squaredcos_cap_v2(n);
      break;
    case BetaSchedule::kTrained:
      if (cfg.trained_betas.size() != static_cast<size_t>(n)) {
        *error = "trained_betas must have num_train_timesteps entries";
        return Status::kInvalidArgument;
      }
      betas.assign(cfg.trained_betas.begin(), cfg.trained_betas.end());
      break;
  }
  for (float b : betas) {
    if (!(b > 0.0f && b < 1.0f)) {
      *error = "every beta must lie in (0, 1); check beta_start, beta_end and trained_betas";
      return Status::kInvalidArgument;
    }
  }
  if (cfg.rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  std::vector<float> alphas(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) alphas[i] = 1.0f - betas[i];
  std::vector<float> acp = torch::cumprod_f32(alphas);
  if (cfg.rescale_betas_zero_snr && cfg.sampler != Sampler::kDdim && cfg.sampler != Sampler::kPndm && cfg.sampler != Sampler::kLcm) acp.back() = 1.0f / 16777216.0f;  // 2^-24
  out->assign(acp.begin(), acp.end());
  return Status::kOk;
}

}  // namespace ragdiff
