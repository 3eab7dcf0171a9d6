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

// Per-sampler parts (ddim.cc, euler.cc, euler_ancestral.cc, dpm_solver.cc, pndm.cc, lcm.cc).
Status ddim_set_timesteps(Schedule* s, int n, std::string* error);
Status ddim_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
Status euler_set_timesteps(Schedule* s, int n, std::string* error);
Status euler_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
// Folds an Euler step from sigma to sigma_to (shared by Euler and Euler ancestral).
void euler_fold(Prediction p, double sigma, double sigma_to, StepCoefficients* c);
Status euler_ancestral_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
Status dpm_set_timesteps(Schedule* s, int n, std::string* error);
Status dpm_step(const Schedule& s, int i, bool has_history, StepCoefficients* c, std::string* error);
Status lcm_set_timesteps(Schedule* s, int n, std::string* error);
Status lcm_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);

// PNDM (pndm.cc). The step's model output is a weighted sum of stored model
// outputs, which the caller keeps in 8 slots of one buffer (8 x len, the
// kernel's branches): slots 0..3 hold the multistep history (the k-th stored
// output, counting from 0 since setTimesteps or a re-entry, in slot k % 4),
// slots 5..7 the 2nd..4th Runge-Kutta evaluations of the current stage, slot 4
// the averaged output of the PLMS start. Per step the caller writes the
// (guided) model output into store_slot, then steps with weights w over the
// 8 slots, from the saved sample when from_saved, and saves the current sample
// first when save_sample.
struct PndmPlan {
  int store_slot = 0;
  bool append = false;       // store_slot is a history slot: the stored count grows by one
  bool from_saved = false;   // step from the sample saved by an earlier step
  bool save_sample = false;  // save this step's input sample (before stepping)
  double w[8] = {0, 0, 0, 0, 0, 0, 0, 0};
};
constexpr int kPndmSlots = 8;
// Number of Runge-Kutta steps at the start of the schedule (0 with skip_prk_steps).
int pndm_prk_steps(const Schedule& s);
Status pndm_set_timesteps(Schedule* s, int n, std::string* error);
Status pndm_step(const Schedule& s, int i, StepCoefficients* c, std::string* error);
// n_ets: outputs stored in the history slots so far; restarted: the schedule was
// re-entered at a step index (no PLMS start, lower-order restart of the multistep).
Status pndm_plan(const Schedule& s, int i, int n_ets, bool restarted, PndmPlan* p, std::string* error);

}  // namespace ragdiff
