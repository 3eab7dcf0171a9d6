// Sigma (noise level) helpers shared by the sigma samplers (Euler, Euler
// ancestral, DPM-Solver++): the training sigmas, Karras spacing and the
// sigma -> timestep inverse, as diffusers computes them.
#pragma once

#include <vector>

namespace ragdiff {

// sigma_t = sqrt((1 - alphas_cumprod[t]) / alphas_cumprod[t]) in float32 (torch), ascending in t.
std::vector<double> train_sigmas(const std::vector<double>& alphas_cumprod);

// log of each train sigma, as float32 (numpy's log on a float32 array).
std::vector<double> log_sigmas_f32(const std::vector<double>& sigmas);

// Karras et al. (2022) rho = 7 spacing from sigma_max down to sigma_min, n values.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n);

// diffusers' _sigma_to_t: fractional training timestep of a sigma by
// piecewise-linear interpolation in log sigma.
double sigma_to_t(double sigma, const std::vector<double>& log_sigmas);

// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t (variance-preserving form of a sigma).
void sigma_to_alpha_sigma(double sigma, double* alpha_t, double* sigma_t);

}  // namespace ragdiff
