// normalFill(seed, offset, out) and philox4x32(c0, c1, c2, c3, k0, k1).
#include "binding/errors.h"
#include "binding/registry.h"
#include "core/rng.h"

namespace ragdiff {
namespace binding {
namespace {

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1

Napi::Value NormalFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t seed, offset;
  float* out;
  size_t n;
  if (!get_index(info, 0, "seed", kMaxSafe, &seed)) return env.Undefined();
  if (!get_index(info, 1, "offset", kMaxSafe, &offset)) return env.Undefined();
  if (!get_f32(info, 2, "out", &out, &n)) return env.Undefined();
  if (static_cast<double>(offset) + static_cast<double>(n) > kMaxSafe) {
    throw_range(env, "OUT_OF_RANGE", "offset + out.length must not exceed 2^53 - 1");
    return env.Undefined();
  }
  normal_fill(seed, offset, out, n);
  return info[2];
}

Napi::Value Philox(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t c[4], k[2];
  for (size_t i = 0; i < 6; ++i) {
    uint64_t v;
    if (!get_index(info, i, i < 4 ? "counter word" : "key word", 4294967295.0, &v)) return env.Undefined();
    if (i < 4) c[i] = static_cast<uint32_t>(v); else k[i - 4] = static_cast<uint32_t>(v);
  }
  Philox4x32 r = philox4x32_10(c, k);
  Napi::Array a = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) a.Set(i, Napi::Number::New(env, r.v[i]));
  return a;
}

}  // namespace

void init_rng(Napi::Env env, Napi::Object exports) {
  exports.Set("normalFill", Napi::Function::New(env, NormalFill, "normalFill"));
  exports.Set("philox4x32", Napi::Function::New(env, Philox, "philox4x32"));
}

}  // namespace binding
}  // namespace ragdiff
