// Latent Consistency Models (Luo et al. 2023), as diffusers' LCMScheduler:
// timesteps drawn evenly (by index) from the original_inference_steps-point
// distillation schedule; each step maps the sample to the consistency
// function's clean estimate (c_skip * x + c_out * x0) and, except on the last
// step, noises it again to the next timestep.
#include <cmath>
#include <string>

#include "core/numerics.h"
#include "core/schedule.h"

namespace ragdiff {

Status lcm_set_timesteps(Schedule* s, int n, std::string* error) {
  const SchedulerConfig& c = s->cfg;
  const int T = c.num_train_timesteps;
  const int orig = c.original_inference_steps;
  if (orig < 1 || orig > T) {
    *error = "original_inference_steps (" + std::to_string(orig) + ") must be in 1.." + std::to_string(T) + " (num_train_timesteps)";
    return Status::kInvalidArgument;
  }
  if (n > orig) {
    *error = "num_inference_steps (" + std::to_string(n) + ") cannot exceed original_inference_steps (" + std::to_string(orig) + ")";
    return Status::kOutOfRange;
  }
  const int k = T / orig;
  std::vector<double> origin;  // (1..orig) * k - 1, reversed
  for (int j = orig; j >= 1; --j) origin.push_back(static_cast<double>(j * k - 1));
  // np.floor(np.linspace(0, orig, n, endpoint=False))
  const double step = static_cast<double>(orig) / n;
  std::vector<double> ts;
  for (int j = 0; j < n; ++j) {
    const size_t idx = static_cast<size_t>(std::floor(j * step));
    ts.push_back(origin[idx]);
  }
  s->timesteps = ts;
  s->sigmas.clear();
  return Status::kOk;
}

Status lcm_step(const Schedule& s, int i, StepCoefficients* c, std::string* error) {
  const SchedulerConfig& cfg = s.cfg;
  const int N = schedule_steps(s);
  const int t = static_cast<int>(s.timesteps[static_cast<size_t>(i)]);
  const int prev = i + 1 < N ? static_cast<int>(s.timesteps[static_cast<size_t>(i) + 1]) : t;
  const double a = s.alphas_cumprod[static_cast<size_t>(t)];
  const double ap = prev >= 0 ? s.alphas_cumprod[static_cast<size_t>(prev)] : s.final_alpha_cumprod;
  const double sa = std::sqrt(a), sb = std::sqrt(1 - a);
  // c_skip, c_out in float32 as diffusers computes them on a float32 tensor
  const float st = static_cast<float>(t) * static_cast<float>(cfg.timestep_scaling);
  const float sd2 = 0.25f;  // sigma_data = 0.5
  const double c_skip = static_cast<double>(sd2 / (st * st + sd2));
  const double c_out = static_cast<double>(st / std::sqrt(st * st + sd2));
  double px, pm;  // x0 = px*x + pm*m
  switch (cfg.prediction) {
    case Prediction::kEpsilon: px = 1 / sa; pm = -sb / sa; break;
    case Prediction::kSample: px = 0; pm = 1; break;
    case Prediction::kVPrediction: default: px = sa; pm = -sb; break;
  }
  const bool last = i == N - 1;
  const double g = last ? 1.0 : std::sqrt(ap);  // factor on `denoised`
  *c = StepCoefficients{};
  c->cn = last ? 0.0 : std::sqrt(1 - ap);
  c->uses_noise = !last;
  if (cfg.clip_sample) {
    // denoised = c_out * clamp(x0) + c_skip * x: the clip form with eps := x
    c->clip = true;
    c->clip_range = cfg.clip_sample_range;
    c->px = px;
    c->pm = pm;
    c->ex = 1;
    c->em = 0;
    c->dx0 = g * c_out;
    c->deps = g * c_skip;
  } else {
    // predOriginal receives `denoised` (diffusers' second output)
    c->px = c_out * px + c_skip;
    c->pm = c_out * pm;
    c->cx = g * c->px;
    c->cm = g * c->pm;
  }
  for (double v : {c->cx, c->cm, c->cn, c->px, c->pm, c->dx0, c->deps}) {
    if (!std::isfinite(v)) {
      *error = "the LCM step at timestep " + std::to_string(t) + " is undefined for this configuration";
      return Status::kUnsupported;
    }
  }
  return Status::kOk;
}

}  // namespace ragdiff
