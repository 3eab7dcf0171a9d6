// DPM-Solver++ 2M (Lu et al. 2022), as diffusers' DPMSolverMultistepScheduler
// with algorithm_type "dpmsolver++": data-prediction (x0) multistep solver in
// lambda = log(alpha / sigma). First order on the first step (no history), on the
// final step when lower_order_final / euler_at_final / final_sigmas_type "zero"
// ask for it; second order (midpoint or heun) otherwise. The caller keeps the
// previous x0 (the kernel writes it) and says whether it has one.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/numerics.h"
#include "core/schedule.h"
#include "core/sigmas.h"

namespace ragdiff {

Status dpm_set_timesteps(Schedule* s, int n, std::string* error) {
  const SchedulerConfig& c = s->cfg;
  const int T = c.num_train_timesteps;
  // lambda_min_clipped: drop the noisiest timesteps whose lambda falls below it.
  int clipped = 0;
  for (int k = T - 1; k >= 0; --k) {  // flip(lambda_t) is ascending
    const float a = static_cast<float>(s->alphas_cumprod[static_cast<size_t>(k)]);
    const float lam = static_cast<float>(std::log(std::sqrt(a))) - static_cast<float>(std::log(std::sqrt(1.0f - a)));
    if (static_cast<double>(lam) < c.lambda_min_clipped) ++clipped; else break;
  }
  const int last = T - clipped;
  if (last < 1) {
    *error = "lambda_min_clipped removes every timestep";
    return Status::kInvalidArgument;
  }
  std::vector<double> ts;
  switch (c.spacing) {
    case Spacing::kLinspace: {
      std::vector<double> v = np::linspace(0, last - 1, n + 1);
      for (int k = n; k >= 1; --k) ts.push_back(np::round_half_even(v[static_cast<size_t>(k)]));
      break;
    }
    case Spacing::kLeading: {
      const int ratio = last / (n + 1);
      for (int k = n; k >= 1; --k) ts.push_back(static_cast<double>(k * ratio + c.steps_offset));
      break;
    }
    case Spacing::kTrailing: {
      const double ratio = static_cast<double>(T) / n;
      for (double v : np::arange(last, 0, -ratio)) ts.push_back(np::round_half_even(v) - 1);
      break;
    }
  }
  const std::vector<double>& train = s->train_sigmas;
  const std::vector<double> log_sigmas = log_sigmas_f32(train);
  std::vector<double> sig;
  if (c.use_karras_sigmas) {
    sig = karras_sigmas(train.front(), train.back(), n);
    ts.clear();
    for (double v : sig) {
      double t = sigma_to_t(v, log_sigmas);
      if (c.beta_schedule != BetaSchedule::kSquaredCosCapV2) t = np::round_half_even(t);
      ts.push_back(std::trunc(t));  // .astype(int64)
    }
  } else {
    for (double t : ts) {
      if (!(t >= 0 && t <= T - 1)) {
        *error = "timestep " + std::to_string(static_cast<long long>(t)) + " falls outside 0.." + std::to_string(T - 1) +
                 " (check steps_offset and timestep_spacing)";
        return Status::kInvalidArgument;
      }
      sig.push_back(np::interp_index(t, train));
    }
  }
  double final_sigma = 0;
  if (c.final_sigmas == FinalSigmas::kSigmaMin) {
    const float a0 = static_cast<float>(s->alphas_cumprod[0]);
    final_sigma = static_cast<double>(std::sqrt((1.0f - a0) / a0));
  }
  sig.push_back(final_sigma);
  for (double& v : sig) v = np::f32(v);
  s->timesteps = ts;
  s->sigmas = sig;
  return Status::kOk;
}

Status dpm_step(const Schedule& s, int i, bool has_history, StepCoefficients* c, std::string* error) {
  const SchedulerConfig& cfg = s.cfg;
  const int N = schedule_steps(s);
  const bool lower_order_final =
      i == N - 1 && (cfg.euler_at_final || (cfg.lower_order_final && N < 15) || cfg.final_sigmas == FinalSigmas::kZero);
  bool second = cfg.solver_order == 2 && has_history && !lower_order_final && i >= 1;
  const double sig_s0 = s.sigmas[static_cast<size_t>(i)], sig_t = s.sigmas[static_cast<size_t>(i) + 1];
  double alpha_s, sigma_s;
  sigma_to_alpha_sigma(sig_s0, &alpha_s, &sigma_s);
  double px, pm;  // x0 = px*x + pm*m
  switch (cfg.prediction) {
    case Prediction::kEpsilon: px = 1 / alpha_s; pm = -sigma_s / alpha_s; break;
    case Prediction::kVPrediction: px = alpha_s; pm = -sigma_s; break;
    case Prediction::kSample: default: px = 0; pm = 1; break;
  }
  double A, B, C = 0;  // out = A*x + B*x0 + C*x0_prev
  if (sig_t == 0) {
    if (second) {
      *error = "a second-order DPM-Solver++ step cannot end at sigma 0";
      return Status::kUnsupported;
    }
    A = 0;
    B = 1;
  } else {
    double alpha_t, sigma_t;
    sigma_to_alpha_sigma(sig_t, &alpha_t, &sigma_t);
    const double lambda_t = std::log(alpha_t) - std::log(sigma_t);
    const double lambda_s0 = std::log(alpha_s) - std::log(sigma_s);
    const double h = lambda_t - lambda_s0;
    const double c0 = alpha_t * std::expm1(-h);  // alpha_t * (exp(-h) - 1)
    A = sigma_t / sigma_s;
    B = -c0;
    double r0 = 0;
    if (second) {
      double alpha_s1, sigma_s1;
      sigma_to_alpha_sigma(s.sigmas[static_cast<size_t>(i) - 1], &alpha_s1, &sigma_s1);
      const double lambda_s1 = std::log(alpha_s1) - std::log(sigma_s1);
      r0 = (lambda_s0 - lambda_s1) / h;
      // Repeated timesteps (e.g. 1000 steps over 1000 training timesteps) make two
      // consecutive sigmas equal: r0 is 0 or infinite and diffusers produces NaN.
      // Take a first-order step there instead.
      if (!(std::isfinite(r0) && r0 != 0 && h != 0)) second = false;
    }
    if (second) {
      if (cfg.solver_type == SolverType::kMidpoint) {
        B = -c0 - 0.5 * c0 / r0;
        C = 0.5 * c0 / r0;
      } else {
        const double e = alpha_t * (std::expm1(-h) / h + 1.0);
        B = -c0 + e / r0;
        C = -e / r0;
      }
    }
  }
  *c = StepCoefficients{};
  c->px = px;
  c->pm = pm;
  c->cx = A + B * px;
  c->cm = B * pm;
  c->ch = C;
  c->uses_history = second;
  c->writes_x0 = true;
  for (double v : {c->cx, c->cm, c->ch, c->px, c->pm}) {
    if (!std::isfinite(v)) {
      *error = "the DPM-Solver++ step at index " + std::to_string(i) + " is undefined for this configuration";
      return Status::kUnsupported;
    }
  }
  return Status::kOk;
}

}  // namespace ragdiff
