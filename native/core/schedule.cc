#include "core/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/noise_schedule.h"
#include "core/sigmas.h"

namespace ragdiff {

// Samplers that step on alphas_cumprod at training timesteps (no sigmas).
static bool alpha_sampler(Sampler k) { return k == Sampler::kDdim || k == Sampler::kPndm || k == Sampler::kLcm; }

Status schedule_init(const SchedulerConfig& cfg, Schedule* s, std::string* error) {
  const bool sigma_sampler = !alpha_sampler(cfg.sampler);
  if (cfg.use_karras_sigmas && (alpha_sampler(cfg.sampler) || cfg.sampler == Sampler::kEulerAncestral)) {
    *error = "use_karras_sigmas is offered for euler and dpmpp-2m only";
    return Status::kUnsupported;
  }
  if (cfg.sampler == Sampler::kDpmSolverPP2M && cfg.solver_order != 1 && cfg.solver_order != 2) {
    *error = "solver_order must be 1 or 2 for dpmpp-2m";
    return Status::kUnsupported;
  }
  if (cfg.sampler == Sampler::kDdim && !(cfg.eta >= 0 && cfg.eta <= 1)) {
    *error = "eta must be in [0, 1]";
    return Status::kInvalidArgument;
  }
  if (cfg.clip_sample && !(cfg.clip_sample_range > 0)) {
    *error = "clip_sample_range must be positive";
    return Status::kInvalidArgument;
  }
  if (cfg.steps_offset < 0 || cfg.steps_offset >= cfg.num_train_timesteps) {
    *error = "steps_offset must be in 0..num_train_timesteps-1";
    return Status::kInvalidArgument;
  }
  s->cfg = cfg;
  Status st = make_alphas_cumprod(cfg, &s->alphas_cumprod, error);
  if (st != Status::kOk) return st;
  s->final_alpha_cumprod = cfg.set_alpha_to_one ? 1.0 : s->alphas_cumprod[0];
  s->train_sigmas = sigma_sampler ? train_sigmas(s->alphas_cumprod) : std::vector<double>{};
  s->timesteps.clear();
  s->sigmas.clear();
  s->num_inference_steps = 0;
  return Status::kOk;
}

Status schedule_set_timesteps(Schedule* s, int n, std::string* error) {
  if (n < 1 || n > s->cfg.num_train_timesteps) {
    *error = "num_inference_steps must be in 1.." + std::to_string(s->cfg.num_train_timesteps) + " (num_train_timesteps)";
    return Status::kOutOfRange;
  }
  Schedule next = *s;
  next.num_inference_steps = n;
  Status st;
  switch (s->cfg.sampler) {
    case Sampler::kDdim: st = ddim_set_timesteps(&next, n, error); break;
    case Sampler::kEuler:
    case Sampler::kEulerAncestral: st = euler_set_timesteps(&next, n, error); break;
    case Sampler::kPndm: st = pndm_set_timesteps(&next, n, error); break;
    case Sampler::kLcm: st = lcm_set_timesteps(&next, n, error); break;
    case Sampler::kDpmSolverPP2M: default: st = dpm_set_timesteps(&next, n, error); break;
  }
  if (st != Status::kOk) return st;
  if (next.timesteps.empty()) {
    *error = "the spacing produced no timesteps";
    return Status::kInvalidArgument;
  }
  *s = std::move(next);
  return Status::kOk;
}

double schedule_init_noise_sigma(const Schedule& s) {
  if (s.cfg.sampler != Sampler::kEuler && s.cfg.sampler != Sampler::kEulerAncestral) return 1.0;
  const std::vector<double>& sig = s.sigmas.empty() ? s.train_sigmas : s.sigmas;
  const float m = static_cast<float>(*std::max_element(sig.begin(), sig.end()));
  if (s.cfg.spacing == Spacing::kLinspace || s.cfg.spacing == Spacing::kTrailing) return m;
  return static_cast<double>(std::sqrt(m * m + 1.0f));
}

double schedule_input_divisor(const Schedule& s, int i) {
  if (s.cfg.sampler != Sampler::kEuler && s.cfg.sampler != Sampler::kEulerAncestral) return 1.0;
  const float sigma = static_cast<float>(s.sigmas[static_cast<size_t>(i)]);
  return static_cast<double>(std::sqrt(sigma * sigma + 1.0f));
}

Status schedule_noise_coefficients(const Schedule& s, int i, double t, float* a, float* b, std::string* error) {
  if (alpha_sampler(s.cfg.sampler)) {
    if (!(t >= 0 && t <= s.cfg.num_train_timesteps - 1 && std::floor(t) == t)) {
      *error = "t must be an integer training timestep in 0.." + std::to_string(s.cfg.num_train_timesteps - 1);
      return Status::kOutOfRange;
    }
    const float acp = static_cast<float>(s.alphas_cumprod[static_cast<size_t>(t)]);
    *a = std::sqrt(acp);
    *b = std::sqrt(1.0f - acp);
    return Status::kOk;
  }
  if (i < 0 || i >= schedule_steps(s)) {
    *error = "step index out of range";
    return Status::kOutOfRange;
  }
  const float sigma = static_cast<float>(s.sigmas[static_cast<size_t>(i)]);
  if (s.cfg.sampler == Sampler::kDpmSolverPP2M) {
    const float alpha_t = 1.0f / std::sqrt(sigma * sigma + 1.0f);
    *a = alpha_t;
    *b = sigma * alpha_t;
  } else {
    *a = 1.0f;
    *b = sigma;
  }
  return Status::kOk;
}

Status schedule_step_coefficients(const Schedule& s, int i, bool has_history, StepCoefficients* c, std::string* error) {
  if (s.timesteps.empty()) {
    *error = "set_timesteps has not been called";
    return Status::kInvalidArgument;
  }
  if (i < 0 || i >= schedule_steps(s)) {
    *error = "step index " + std::to_string(i) + " is outside 0.." + std::to_string(schedule_steps(s) - 1);
    return Status::kOutOfRange;
  }
  switch (s.cfg.sampler) {
    case Sampler::kDdim: return ddim_step(s, i, c, error);
    case Sampler::kEuler: return euler_step(s, i, c, error);
    case Sampler::kEulerAncestral: return euler_ancestral_step(s, i, c, error);
    case Sampler::kPndm: return pndm_step(s, i, c, error);
    case Sampler::kLcm: return lcm_step(s, i, c, error);
    case Sampler::kDpmSolverPP2M: default: return dpm_step(s, i, has_history, c, error);
  }
}

}  // namespace ragdiff
