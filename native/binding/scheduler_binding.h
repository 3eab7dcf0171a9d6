// The NativeScheduler object (a core Schedule behind a JS handle) and the
// argument checks its step shares with the CUDA binding.
#pragma once

#include <napi.h>

#include <string>

#include "core/schedule.h"
#include "core/step_kernel.h"

namespace ragdiff {
namespace binding {

class NativeScheduler : public Napi::ObjectWrap<NativeScheduler> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeScheduler(const Napi::CallbackInfo& info);
  const Schedule& schedule() const { return schedule_; }
  bool ready() const { return ready_; }

 private:
  Napi::Value SetTimesteps(const Napi::CallbackInfo& info);
  Napi::Value InitNoiseSigma(const Napi::CallbackInfo& info);
  Napi::Value InputDivisor(const Napi::CallbackInfo& info);
  Napi::Value NoiseCoefficients(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value PndmPlanAt(const Napi::CallbackInfo& info);
  Schedule schedule_;
  bool ready_ = false;
};

// Unwraps a NativeScheduler argument (TypeError when it is not one).
NativeScheduler* unwrap_scheduler(const Napi::CallbackInfo& info, size_t i);

// Reads and checks step(stepIndex, hasHistory, branches, weights, sample, noise, history, x0Out, out)
// starting at argument `first`; computes the coefficients. Returns false with a JS exception pending.
bool read_step_args(const Napi::CallbackInfo& info, size_t first, const Schedule& s, StepCoefficients* c, StepBuffers* b);

}  // namespace binding
}  // namespace ragdiff
