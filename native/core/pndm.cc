// PNDM (Liu et al. 2022), as diffusers' PNDMScheduler: optional Runge-Kutta
// warm-up (PRK, 3 stages of 4 model calls) followed by the 4th-order linear
// multistep (PLMS) over past model outputs; with skip_prk_steps (Stable
// Diffusion 1.5) the warm-up is crowsonkb's PLMS start instead: the second
// timestep is repeated and its step redone from the first sample with the
// averaged model output.
//
// The step itself is linear in the sample and in a weighted sum of stored model
// outputs, so it runs on the shared step kernel: the caller keeps the model
// outputs in an 8-slot buffer (slot layout in schedule.h, PndmPlan) and passes
// it as the kernel's branches with the plan's weights.
#include <cmath>
#include <string>

#include "core/numerics.h"
#include "core/schedule.h"

namespace ragdiff {

namespace {

// diffusers' _timesteps (ascending) for the spacing.
std::vector<double> base_timesteps(const SchedulerConfig& c, int n) {
  const int T = c.num_train_timesteps;
  std::vector<double> ts;
  switch (c.spacing) {
    case Spacing::kLinspace:
      for (double v : np::linspace(0, T - 1, n)) ts.push_back(np::round_half_even(v));
      break;
    case Spacing::kLeading: {
      const int ratio = T / n;
      for (int k = 0; k < n; ++k) ts.push_back(static_cast<double>(k * ratio + c.steps_offset));
      break;
    }
    case Spacing::kTrailing: {
      const double ratio = static_cast<double>(T) / n;
      std::vector<double> v = np::arange(T, 0, -ratio);
      for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(np::round_half_even(*it) - 1);
      break;
    }
  }
  return ts;
}

}  // namespace

int pndm_prk_steps(const Schedule& s) {
  if (s.cfg.skip_prk_steps || s.timesteps.empty()) return 0;
  return 12;
}

Status pndm_set_timesteps(Schedule* s, int n, std::string* error) {
  const SchedulerConfig& c = s->cfg;
  const int T = c.num_train_timesteps;
  const std::vector<double> base = base_timesteps(c, n);
  std::vector<double> ts;
  if (c.skip_prk_steps) {
    // concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]
    std::vector<double> a(base.begin(), base.end() - 1);
    if (base.size() >= 2) a.push_back(base[base.size() - 2]);
    a.push_back(base.back());
    ts.assign(a.rbegin(), a.rend());
  } else {
    if (n < 4) {
      *error = "PNDM with its Runge-Kutta warm-up (skip_prk_steps false) needs at least 4 inference steps";
      return Status::kOutOfRange;
    }
    const int half = T / n / 2;
    std::vector<double> p;  // _t[-4:].repeat(2) + tile([0, half], 4)
    for (size_t k = base.size() - 4; k < base.size(); ++k) {
      p.push_back(base[k]);
      p.push_back(base[k] + half);
    }
    p.pop_back();  // [:-1]
    std::vector<double> r;
    for (double v : p) { r.push_back(v); r.push_back(v); }  // .repeat(2)
    std::vector<double> prk(r.begin() + 1, r.end() - 1);   // [1:-1]
    ts.assign(prk.rbegin(), prk.rend());
    for (auto it = base.rbegin() + 3; it != base.rend(); ++it) ts.push_back(*it);  // _t[:-3][::-1]
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

// The (timestep, previous timestep) pair whose alphas step i uses.
static void pndm_pair(const Schedule& s, int i, int* t, int* prev) {
  const int ratio = s.cfg.num_train_timesteps / s.num_inference_steps;
  const int ti = static_cast<int>(s.timesteps[static_cast<size_t>(i)]);
  const int prk = pndm_prk_steps(s);
  if (i < prk) {
    // step_prk: the stage's first timestep; prev = passed timestep - (0 | half ratio).
    *t = static_cast<int>(s.timesteps[static_cast<size_t>(i / 4 * 4)]);
    *prev = ti - (i % 2 ? 0 : ratio / 2);
  } else if (s.cfg.skip_prk_steps && i == 1) {
    // step_plms, counter 1: the first step redone from the first sample.
    *t = ti + ratio;
    *prev = ti;
  } else {
    *t = ti;
    *prev = ti - ratio;
  }
}

Status pndm_step(const Schedule& s, int i, StepCoefficients* c, std::string* error) {
  int t, prev;
  pndm_pair(s, i, &t, &prev);
  const int T = s.cfg.num_train_timesteps;
  if (t < 0 || t > T - 1) {
    *error = "the PNDM step at index " + std::to_string(i) + " needs alphas_cumprod[" + std::to_string(t) + "], outside 0.." +
             std::to_string(T - 1) + " (check timestep_spacing)";
    return Status::kUnsupported;
  }
  const double a = s.alphas_cumprod[static_cast<size_t>(t)];
  const double ap = prev >= 0 ? s.alphas_cumprod[static_cast<size_t>(prev)] : s.final_alpha_cumprod;
  const double b = 1 - a, bp = 1 - ap;
  // _get_prev_sample: x' = sc*x - (ap - a) * e / (a*sqrt(bp) + sqrt(a*b*ap))
  const double sc = std::sqrt(ap / a);
  const double k = (ap - a) / (a * std::sqrt(bp) + std::sqrt(a * b * ap));
  const double sa = std::sqrt(a), sb = std::sqrt(b);
  *c = StepCoefficients{};
  if (s.cfg.prediction == Prediction::kVPrediction) {
    // e = sqrt(a)*v + sqrt(b)*x
    c->cx = sc - k * sb;
    c->cm = -k * sa;
    c->px = sa;
    c->pm = -sb;
  } else {
    c->cx = sc;
    c->cm = -k;
    c->px = 1 / sa;
    c->pm = -sb / sa;
  }
  for (double v : {c->cx, c->cm, c->px, c->pm}) {
    if (!std::isfinite(v)) {
      *error = "the PNDM step at index " + std::to_string(i) + " is undefined for this configuration";
      return Status::kUnsupported;
    }
  }
  return Status::kOk;
}

Status pndm_plan(const Schedule& s, int i, int n_ets, bool restarted, PndmPlan* p, std::string* error) {
  const int N = schedule_steps(s);
  if (i < 0 || i >= N) {
    *error = "step index " + std::to_string(i) + " is outside 0.." + std::to_string(N - 1);
    return Status::kOutOfRange;
  }
  if (n_ets < 0) {
    *error = "the number of stored model outputs must be non-negative";
    return Status::kInvalidArgument;
  }
  *p = PndmPlan{};
  const int prk = pndm_prk_steps(s);
  if (i < prk) {
    if (restarted) {
      *error = "a PNDM schedule cannot be entered inside its Runge-Kutta warm-up (steps 1.." + std::to_string(prk - 1) + ")";
      return Status::kUnsupported;
    }
    const int r = i % 4;
    p->from_saved = true;
    if (r == 0) {
      p->append = true;
      p->store_slot = n_ets % 4;
      p->save_sample = true;
      p->w[p->store_slot] = 1;
    } else {
      if (n_ets < 1) {
        *error = "PNDM step " + std::to_string(i) + " needs the stage's first model output";
        return Status::kInvalidArgument;
      }
      const int first = (n_ets - 1) % 4;
      p->store_slot = 4 + r;
      if (r < 3) {
        p->w[p->store_slot] = 1;
      } else {
        // 1/6 k1 + 1/3 k2 + 1/3 k3 + 1/6 k4, accumulated as diffusers does
        p->w[first] = 1.0 / 6;
        p->w[5] = 1.0 / 3;
        p->w[6] = 1.0 / 3;
        p->w[7] = 1.0 / 6;
      }
    }
    return Status::kOk;
  }
  if (s.cfg.skip_prk_steps && restarted && i == 1) {
    *error = "a PNDM schedule with skip_prk_steps cannot be entered at step 1 (the repeated PLMS start); enter at 0 or from 2";
    return Status::kUnsupported;
  }
  if (s.cfg.skip_prk_steps && !restarted && i == 1) {
    if (n_ets < 1) {
      *error = "PNDM step 1 needs the model output of step 0";
      return Status::kInvalidArgument;
    }
    p->store_slot = 4;
    p->from_saved = true;
    p->w[4] = 0.5;
    p->w[(n_ets - 1) % 4] = 0.5;
    return Status::kOk;
  }
  p->append = true;
  p->store_slot = n_ets % 4;
  p->save_sample = s.cfg.skip_prk_steps && !restarted && i == 0;
  // Adams-Bashforth over the newest h outputs (h = 1..4), newest first.
  static const double kAb[4][4] = {
      {1, 0, 0, 0}, {3.0 / 2, -1.0 / 2, 0, 0}, {23.0 / 12, -16.0 / 12, 5.0 / 12, 0}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
  const int h = n_ets + 1 < 4 ? n_ets + 1 : 4;
  for (int j = 0; j < h; ++j) p->w[(n_ets - j + 4 * 4) % 4] = kAb[h - 1][j];
  return Status::kOk;
}

}  // namespace ragdiff
