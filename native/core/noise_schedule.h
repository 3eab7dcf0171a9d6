// Training noise schedules: betas -> alphas_cumprod, as diffusers builds them
// (float32 tensors; see numerics.h).
#pragma once

#include <string>
#include <vector>

#include "core/scheduler_config.h"
#include "core/status.h"

namespace ragdiff {

// alphas_cumprod[t] for t in [0, num_train_timesteps), as float32 values held in doubles.
// Also applies rescale_betas_zero_snr (and, for the sigma samplers, diffusers'
// alphas_cumprod[-1] = 2^-24 that keeps the last sigma finite).
Status make_alphas_cumprod(const SchedulerConfig& cfg, std::vector<double>* alphas_cumprod, std::string* error);

}  // namespace ragdiff
