// The resolved configuration of one scheduler: the subset of diffusers'
// scheduler_config.json fields that change the math of the samplers here.
// The TypeScript layer parses and validates the JSON; this struct holds plain values.
#pragma once

#include <cmath>
#include <vector>

namespace ragdiff {

enum class Sampler : int { kDdim = 0, kEuler = 1, kEulerAncestral = 2, kDpmSolverPP2M = 3, kPndm = 4, kLcm = 5 };
enum class BetaSchedule : int { kLinear = 0, kScaledLinear = 1, kSquaredCosCapV2 = 2, kTrained = 3 };
enum class Prediction : int { kEpsilon = 0, kVPrediction = 1, kSample = 2 };
enum class Spacing : int { kLeading = 0, kTrailing = 1, kLinspace = 2 };
enum class Interpolation : int { kLinear = 0, kLogLinear = 1 };
enum class FinalSigmas : int { kZero = 0, kSigmaMin = 1 };
enum class SolverType : int { kMidpoint = 0, kHeun = 1 };

struct SchedulerConfig {
  Sampler sampler = Sampler::kDdim;
  // noise schedule
  int num_train_timesteps = 1000;
  BetaSchedule beta_schedule = BetaSchedule::kLinear;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::vector<double> trained_betas;  // used when beta_schedule == kTrained
  bool rescale_betas_zero_snr = false;
  // timesteps
  Prediction prediction = Prediction::kEpsilon;
  Spacing spacing = Spacing::kLeading;
  int steps_offset = 0;
  // DDIM
  double eta = 0.0;
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;
  // sigma samplers
  bool use_karras_sigmas = false;
  Interpolation interpolation = Interpolation::kLinear;  // Euler
  bool continuous_timesteps = false;                      // Euler: timestep_type "continuous"
  double sigma_min = NAN;                                 // NaN: unset (Karras range from the schedule)
  double sigma_max = NAN;
  FinalSigmas final_sigmas = FinalSigmas::kZero;
  // DPM-Solver++
  int solver_order = 2;
  SolverType solver_type = SolverType::kMidpoint;
  bool lower_order_final = true;
  bool euler_at_final = false;
  double lambda_min_clipped = -INFINITY;
  // PNDM
  bool skip_prk_steps = false;
  // LCM
  int original_inference_steps = 50;
  double timestep_scaling = 10.0;
};

}  // namespace ragdiff
