// cuda.available(), cuda.reason(), cuda.deviceName(), cuda.step(scheduler, ...),
// cuda.normalFill(seed, offset, out), cuda.bench(len, branches, iterations).
// Built without CUDA, available() is false and the rest throw CUDA_UNAVAILABLE.
#include <string>

#include "binding/errors.h"
#include "binding/registry.h"
#include "binding/scheduler_binding.h"
#include "core/rng.h"
#ifdef RAGDIFF_WITH_CUDA
#include "cuda/cuda_api.h"
#endif

namespace ragdiff {
namespace binding {
namespace {

#ifdef RAGDIFF_WITH_CUDA
bool usable(Napi::Env env, bool throw_if_not) {
  std::string why;
  if (cuda::available(&why)) return true;
  if (throw_if_not) throw_error(env, "CUDA_UNAVAILABLE", why);
  return false;
}
#else
const char* kNoCuda = "this addon was built without CUDA (nvcc not found at build time, or WITH_CUDA=OFF)";
bool usable(Napi::Env env, bool throw_if_not) {
  if (throw_if_not) throw_error(env, "CUDA_UNAVAILABLE", kNoCuda);
  return false;
}
#endif

Napi::Value Available(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), usable(info.Env(), false)); }

Napi::Value Reason(const Napi::CallbackInfo& info) {
#ifdef RAGDIFF_WITH_CUDA
  std::string why;
  cuda::available(&why);
  return Napi::String::New(info.Env(), why);
#else
  return Napi::String::New(info.Env(), kNoCuda);
#endif
}

Napi::Value DeviceName(const Napi::CallbackInfo& info) {
#ifdef RAGDIFF_WITH_CUDA
  if (usable(info.Env(), false)) return Napi::String::New(info.Env(), cuda::device_name());
#endif
  return Napi::String::New(info.Env(), "");
}

Napi::Value Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeScheduler* s = unwrap_scheduler(info, 0);
  if (!s) return env.Undefined();
  StepCoefficients c;
  StepBuffers b;
  if (!read_step_args(info, 1, s->schedule(), &c, &b)) return env.Undefined();
  if (!usable(env, true)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  bool finite = true;
  std::string err;
  Status st = cuda::step_host(c, b, &finite, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, finite);
#else
  return env.Undefined();
#endif
}

Napi::Value NormalFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t seed, offset;
  float* out;
  size_t n;
  if (!get_index(info, 0, "seed", 9007199254740991.0, &seed) || !get_index(info, 1, "offset", 9007199254740991.0, &offset) ||
      !get_f32(info, 2, "out", &out, &n))
    return env.Undefined();
  if (!usable(env, true)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  std::string err;
  Status st = cuda::normal_fill_host(seed, offset, out, n, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
#endif
  return info[2];
}

Napi::Value Bench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t len, nb, iters;
  if (!get_index(info, 0, "len", 1e10, &len) || !get_index(info, 1, "branches", 64, &nb) || !get_index(info, 2, "iterations", 1e6, &iters))
    return env.Undefined();
  if (!usable(env, true)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  cuda::BenchResult r{};
  std::string err;
  Status st = cuda::bench(len, nb, static_cast<int>(iters), &r, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("copy", r.copy_gbs);
  o.Set("ddim", r.ddim_gbs);
  o.Set("dpmpp", r.dpmpp_gbs);
  o.Set("guided", r.guided_gbs);
  o.Set("guidedBytes", r.guided_bytes);
  return o;
#else
  return env.Undefined();
#endif
}

}  // namespace

void init_cuda(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("available", Napi::Function::New(env, Available, "available"));
  c.Set("reason", Napi::Function::New(env, Reason, "reason"));
  c.Set("deviceName", Napi::Function::New(env, DeviceName, "deviceName"));
  c.Set("step", Napi::Function::New(env, Step, "step"));
  c.Set("normalFill", Napi::Function::New(env, NormalFill, "normalFill"));
  c.Set("bench", Napi::Function::New(env, Bench, "bench"));
  exports.Set("cuda", c);
}

}  // namespace binding
}  // namespace ragdiff
