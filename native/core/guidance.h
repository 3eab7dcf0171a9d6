// Guidance: a weighted sum of denoiser outputs under different conditions
// (branch-major N x len). Classifier-free guidance at scale g is weights
// {1 - g, g} over {unconditional, conditional}; condition mixtures use more
// branches. The sampler steps fuse this sum (step_kernel.h); combine_branches
// is the stand-alone form for callers that need the guided output itself.
#pragma once

#include <cstddef>

namespace ragdiff {

// out = sum_k weights[k] * branches[k*len ...]; returns false on non-finite input.
// out may alias the first branch.
bool combine_branches(const float* branches, size_t n_branches, const double* weights, size_t len, float* out);

}  // namespace ragdiff
