// DDIM (Song et al. 2021), as diffusers' DDIMScheduler: timesteps from the
// spacing, the previous timestep always t - num_train_timesteps // n, eta noise,
// clip_sample on the data prediction, set_alpha_to_one for the last step.
#include <cmath>
#include <string>

#include "core/numerics.h"
#include "core/schedule.h"

namespace ragdiff {

Status ddim_set_timesteps(Schedule* s, int n, std::string* error) {
  const SchedulerConfig& c = s->cfg;
  const int T = c.num_train_timesteps;
  std::vector<double> ts;
  switch (c.spacing) {
    case Spacing::kLinspace: {
      std::vector<double> v = np::linspace(0, T - 1, n);
      for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(np::round_half_even(*it));
      break;
    }
    case Spacing::kLeading: {
      const int ratio = T / n;
      for (int k = n - 1; k >= 0; --k) ts.push_back(static_cast<double>(k * ratio + c.steps_offset));
      break;
    }
    case Spacing::kTrailing: {
      const double ratio = static_cast<double>(T) / n;
      for (double v : np::arange(T, 0, -ratio)) ts.push_back(np::round_half_even(v) - 1);
      break;
    }
  }
  for (double t : ts) {
    if (!(t >= 0 && t <= T - 1)) {
      *error = "timestep " + std::to_string(static_cast<long long>(t)) + " falls outside 0.." + std::to_string(T - 1) +
               " (check steps_offset and timestep_spacing)";
      return Status::kInvalidArgument;
    }
  }
  s->timesteps = ts;
  s->sigmas.clear();
  return Status::kOk;
}

Status ddim_step(const Schedule& s, int i, StepCoefficients* c, std::string* error) {
  const SchedulerConfig& cfg = s.cfg;
  const int t = static_cast<int>(s.timesteps[static_cast<size_t>(i)]);
  const int prev = t - cfg.num_train_timesteps / s.num_inference_steps;
  const double a_t = s.alphas_cumprod[static_cast<size_t>(t)];
  const double a_prev = prev >= 0 ? s.alphas_cumprod[static_cast<size_t>(prev)] : s.final_alpha_cumprod;
  const double b_t = 1 - a_t;
  const double sa = std::sqrt(a_t), sb = std::sqrt(b_t);
  double px, pm, ex, em;  // x0 = px*x + pm*m, eps = ex*x + em*m
  switch (cfg.prediction) {
    case Prediction::kEpsilon: px = 1 / sa; pm = -sb / sa; ex = 0; em = 1; break;
    case Prediction::kSample: px = 0; pm = 1; ex = 1 / sb; em = -sa / sb; break;
    case Prediction::kVPrediction: default: px = sa; pm = -sb; ex = sb; em = sa; break;
  }
  const double variance = ((1 - a_prev) / b_t) * (1 - a_t / a_prev);
  const double std_dev = cfg.eta * std::sqrt(variance);
  const double dir = std::sqrt(std::max(0.0, 1 - a_prev - std_dev * std_dev));
  const double sap = std::sqrt(a_prev);
  *c = StepCoefficients{};
  c->px = px;
  c->pm = pm;
  c->cn = cfg.eta > 0 ? std_dev : 0;
  c->uses_noise = c->cn != 0;
  if (cfg.clip_sample) {
    c->clip = true;
    c->clip_range = cfg.clip_sample_range;
    c->ex = ex;
    c->em = em;
    c->dx0 = sap;
    c->deps = dir;
  } else {
    c->cx = sap * px + dir * ex;
    c->cm = sap * pm + dir * em;
  }
  for (double v : {c->cx, c->cm, c->cn, c->px, c->pm, c->ex, c->em, c->dx0, c->deps}) {
    if (!std::isfinite(v)) {
      *error = "the DDIM step at timestep " + std::to_string(t) +
               " is undefined for this configuration (alphas_cumprod reaches 0 or 1; with rescale_betas_zero_snr use prediction_type v_prediction)";
      return Status::kUnsupported;
    }
  }
  return Status::kOk;
}

}  // namespace ragdiff
