// Euler ancestral, as diffusers' EulerAncestralDiscreteScheduler: an Euler step
// down to sigma_down, then fresh noise of size sigma_up (sigma_down^2 + sigma_up^2
// = sigma_to^2). Same timesteps and sigmas as Euler (linear interpolation, final
// sigma zero, no Karras). prediction_type "sample" is supported here although
// diffusers raises for it: x0 is the model output, as in Euler.
#include <cmath>
#include <string>

#include "core/schedule.h"

namespace ragdiff {


Status euler_ancestral_step(const Schedule& s, int i, StepCoefficients* c, std::string* error) {
  const double from = s.sigmas[static_cast<size_t>(i)], to = s.sigmas[static_cast<size_t>(i) + 1];
  if (!(from > 0)) {
    *error = "sigma at step " + std::to_string(i) + " is not positive";
    return Status::kUnsupported;
  }
  const double up = std::sqrt(to * to * (from * from - to * to) / (from * from));
  const double down = std::sqrt(std::max(0.0, to * to - up * up));
  euler_fold(s.cfg.prediction, from, down, c);
  c->cn = up;
  c->uses_noise = up != 0;
  return Status::kOk;
}

}  // namespace ragdiff
