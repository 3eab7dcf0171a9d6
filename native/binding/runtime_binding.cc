// Addon-wide facts and knobs: version, thread pool size.
#include "binding/errors.h"
#include "binding/registry.h"
#include "core/thread_pool.h"

namespace ragdiff {
namespace binding {
namespace {

Napi::Value ThreadCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), thread_count());
}

Napi::Value SetThreadCount(const Napi::CallbackInfo& info) {
  uint64_t n;
  if (!get_index(info, 0, "threads", 256, &n)) return info.Env().Undefined();
  if (n < 1) {
    throw_range(info.Env(), "OUT_OF_RANGE", "threads must be an integer in 1..256");
    return info.Env().Undefined();
  }
  set_thread_count(static_cast<int>(n));
  return info.Env().Undefined();
}

}  // namespace

void init_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  exports.Set("threadCount", Napi::Function::New(env, ThreadCount, "threadCount"));
  exports.Set("setThreadCount", Napi::Function::New(env, SetThreadCount, "setThreadCount"));
}

}  // namespace binding
}  // namespace ragdiff
