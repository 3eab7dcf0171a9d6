// cuda.available(), cuda.reason(), cuda.deviceName(), cuda.step(scheduler, ...),
// cuda.normalFill(seed, offset, out), cuda.bench(len, branches, iterations),
// cuda.fuseContext(<the arguments of fuseContext>), cuda.fuseContextBench(rows, textLength, slots, width, texts, iterations).
// Built without CUDA, available() is false and the rest throw CUDA_UNAVAILABLE.
#include <string>

#include "binding/context_binding.h"
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

Napi::Value FuseContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ContextArgs a;
  if (!read_context_args(info, &a)) return env.Undefined();
  if (!usable(env, true)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  size_t bad = 0;
  std::string err;
  Status st = cuda::fuse_context_host(a.shape, a.text_states, a.text_index, a.neighbour_tokens, a.neighbour_index, a.weights, a.out, &bad, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
#endif
  return info[0];
}

Napi::Value FuseContextBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t rows, L, S, W, texts, iters;
  if (!get_index(info, 0, "rows", 1 << 20, &rows) || !get_index(info, 1, "textLength", 1 << 16, &L) || !get_index(info, 2, "slots", 1 << 16, &S) ||
      !get_index(info, 3, "width", 1 << 16, &W) || !get_index(info, 4, "texts", 1 << 20, &texts) || !get_index(info, 5, "iterations", 1e6, &iters))
    return env.Undefined();
  if (rows == 0 || L == 0 || W == 0 || texts == 0 || iters == 0 || rows * (L + S) * W > (uint64_t{1} << 32)) {
    throw_range(env, "OUT_OF_RANGE", "rows, textLength, width, texts and iterations must be at least 1, and the output at most 2^32 floats");
    return env.Undefined();
  }
  if (!usable(env, true)) return env.Undefined();
#ifdef RAGDIFF_WITH_CUDA
  ContextShape s{rows, L, S, W, texts, 0};
  cuda::FusionBenchResult r{};
  std::string err;
  Status st = cuda::fuse_context_bench(s, static_cast<int>(iters), &r, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ms", r.ms);
  o.Set("gbs", r.gbs);
  o.Set("copyGbs", r.copy_gbs);
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
  c.Set("fuseContext", Napi::Function::New(env, FuseContext, "fuseContext"));
  c.Set("fuseContextBench", Napi::Function::New(env, FuseContextBench, "fuseContextBench"));
  exports.Set("cuda", c);
}

}  // namespace binding
}  // namespace ragdiff
