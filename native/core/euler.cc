// Euler (Karras et al. 2022, Algorithm 2 without churn), as diffusers'
// EulerDiscreteScheduler: float32 timesteps from the spacing, sigmas interpolated
// linearly (or log-linearly) from the training sigmas, optional Karras sigmas,
// final sigma zero or sigma_min. Euler ancestral shares these timesteps and sigmas.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/numerics.h"
#include "core/schedule.h"
#include "core/sigmas.h"

namespace ragdiff {

Status euler_set_timesteps(Schedule* s, int n, std::string* error) {
  const SchedulerConfig& c = s->cfg;
  const int T = c.num_train_timesteps;
  std::vector<double> ts;
  switch (c.spacing) {
    case Spacing::kLinspace: {
      std::vector<double> v = np::linspace(0, T - 1, n);
      for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(np::f32(*it));
      break;
    }
    case Spacing::kLeading: {
      const int ratio = T / n;
      for (int k = n - 1; k >= 0; --k) ts.push_back(np::f32(static_cast<float>(k * ratio) + static_cast<float>(c.steps_offset)));
      break;
    }
    case Spacing::kTrailing: {
      const double ratio = static_cast<double>(T) / n;
      for (double v : np::arange(T, 0, -ratio)) ts.push_back(np::f32(static_cast<float>(np::round_half_even(v)) - 1.0f));
      break;
    }
  }
  for (double t : ts) {
    if (!(t >= 0 && t <= T - 1)) {
      *error = "timestep " + std::to_string(t) + " falls outside 0.." + std::to_string(T - 1) + " (check steps_offset and timestep_spacing)";
      return Status::kInvalidArgument;
    }
  }
  const std::vector<double>& train = s->train_sigmas;
  const std::vector<double> log_sigmas = log_sigmas_f32(train);
  std::vector<double> sig;
  if (c.interpolation == Interpolation::kLinear) {
    for (double t : ts) sig.push_back(np::interp_index(t, train));
  } else {
    // torch.linspace(log(sigma_max), log(sigma_min), n + 1).exp() in float32
    std::vector<float> l = torch::linspace_f32(log_sigmas.back(), log_sigmas.front(), n + 1);
    for (float v : l) sig.push_back(np::f32(std::exp(static_cast<double>(v))));
  }
  if (c.use_karras_sigmas) {
    const double smin = std::isnan(c.sigma_min) ? sig.back() : c.sigma_min;
    const double smax = std::isnan(c.sigma_max) ? sig.front() : c.sigma_max;
    sig = karras_sigmas(smin, smax, n);
    ts.clear();
    for (double v : sig) ts.push_back(np::f32(sigma_to_t(v, log_sigmas)));
  }
  double last = 0;
  if (c.final_sigmas == FinalSigmas::kSigmaMin) {
    const float a0 = static_cast<float>(s->alphas_cumprod[0]);
    last = static_cast<double>(std::sqrt((1.0f - a0) / a0));
  }
  sig.push_back(last);
  for (double& v : sig) v = np::f32(v);
  if (c.continuous_timesteps) {
    for (size_t i = 0; i < ts.size(); ++i) ts[i] = np::f32(0.25f * std::log(static_cast<float>(sig[i])));
  }
  if (sig.size() < ts.size() + 1) {
    *error = "internal error: fewer sigmas than timesteps";
    return Status::kInvalidArgument;
  }
  s->timesteps = ts;
  s->sigmas = sig;
  return Status::kOk;
}

// x0 = px*x + pm*m for a sigma sampler's prediction type (sample scaled by sigma, not by alpha).
static void sigma_x0(Prediction p, double sigma, double* px, double* pm) {
  switch (p) {
    case Prediction::kEpsilon: *px = 1; *pm = -sigma; break;
    case Prediction::kVPrediction: *px = 1 / (sigma * sigma + 1); *pm = -sigma / std::sqrt(sigma * sigma + 1); break;
    case Prediction::kSample: default: *px = 0; *pm = 1; break;
  }
}

// Euler step from sigma to sigma_to: x + (x - x0) / sigma * (sigma_to - sigma), folded.
void euler_fold(Prediction p, double sigma, double sigma_to, StepCoefficients* c) {
  double px, pm;
  sigma_x0(p, sigma, &px, &pm);
  const double r = (sigma_to - sigma) / sigma;
  *c = StepCoefficients{};
  c->px = px;
  c->pm = pm;
  c->cx = 1 + r - r * px;
  c->cm = -r * pm;
}

Status euler_step(const Schedule& s, int i, StepCoefficients* c, std::string* error) {
  const double sigma = s.sigmas[static_cast<size_t>(i)], sigma_to = s.sigmas[static_cast<size_t>(i) + 1];
  if (!(sigma > 0)) {
    *error = "sigma at step " + std::to_string(i) + " is not positive";
    return Status::kUnsupported;
  }
  euler_fold(s.cfg.prediction, sigma, sigma_to, c);
  return Status::kOk;
}

}  // namespace ragdiff
