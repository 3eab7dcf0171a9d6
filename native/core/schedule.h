// A scheduler's state that does not change while sampling: the training
// schedule, and after set_timesteps the inference timesteps and sigmas. The
// per-step state (step index, solver history) lives with the caller, so a
// schedule can be re-entered at any step.
#pragma once

#include <string>
#include <vector>

#include "core/scheduler_config.h"
#include "core/status.h"
#include "core/step_kernel.h"

namespace ragdiff {

struct Schedule {
  SchedulerConfig cfg;
  std::vector<double> alphas_cumprod;  // training, float32 values
  std::vector<double> train_sigmas;    // training sigmas (float32 values), ascending
  double final_alpha_cumprod = 1.0;    // DDIM: alpha_cumprod "before" t = 0
  int num_inference_steps = 0;         // as requested by set_timesteps
  std::vector<double> timesteps;       // inference timesteps, descending
  std::vector<double> sigmas;          // sigma samplers: one per timestep plus the final sigma
};

Status schedule_init(const SchedulerConfig& cfg, Schedule* s, std::string* error);
Status schedule_set_timesteps(Schedule* s, int n, std::string* error);

// The number of steps (timesteps.size(); can differ from n for some spacings).
inline int schedule_steps(const Schedule& s) { return static_cast<int>(s.timesteps.size()); }

double schedule_init_noise_sigma(const Schedule& s);
// Divisor applied by scale_model_input at step i (1 for DDIM and DPM-Solver++).
double schedule_input_divisor(const Schedule& s, int i);
// add_noise(x, z) = a*x + b*z for the timestep at step i (sigma samplers) or training timestep t (DDIM).
Status schedule_noise_coefficients(const Schedule& s, int i, double t, float* a, float* b, std::string* error);
// Coefficients of step i. has_history: the caller holds the previous step's data prediction.
Status schedule_step_coefficients(const Schedule& s, int i, bool has_history, StepCoefficients* c, std::string* error);

// Per-sampler parts (ddim.cc, euler.cc, euler_ancestral.cc, dpm_solver.cc).
Status ddim_set_timesteps(Schedule* s, int n, std::string* error);
Status ddim_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
Status euler_set_timesteps(Schedule* s, int n, std::string* error);
Status euler_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
// Folds an Euler step from sigma to sigma_to (shared by Euler and Euler ancestral).
void euler_fold(Prediction p, double sigma, double sigma_to, StepCoefficients* c);
Status euler_ancestral_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
Status dpm_set_timesteps(Schedule* s, int n, std::string* error);
Status dpm_step(const Schedule& s, int i, bool has_history, StepCoefficients* c, std::string* error);

}  // namespace ragdiff
