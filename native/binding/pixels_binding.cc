// chwToRgb8(src, width, height, out) -> index of first non-finite input or -1;
// rgb8ToChw(src, width, height, channels, out).
#include "binding/errors.h"
#include "binding/registry.h"
#include "core/pixels.h"

namespace ragdiff {
namespace binding {
namespace {

constexpr double kMaxSide = 65536;

bool get_size(const Napi::CallbackInfo& info, size_t* w, size_t* h) {
  uint64_t a, b;
  if (!get_index(info, 1, "width", kMaxSide, &a) || !get_index(info, 2, "height", kMaxSide, &b)) return false;
  if (a == 0 || b == 0) {
    throw_range(info.Env(), "OUT_OF_RANGE", "width and height must be at least 1");
    return false;
  }
  *w = a;
  *h = b;
  return true;
}

Napi::Value ChwToRgb8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* src;
  uint8_t* out;
  size_t n_src, n_out, w, h;
  if (!get_f32(info, 0, "src", &src, &n_src) || !get_size(info, &w, &h) || !get_u8(info, 3, "out", &out, &n_out))
    return env.Undefined();
  if (n_src != 3 * w * h) {
    throw_range(env, "LENGTH_MISMATCH", "src must have 3 * width * height = " + std::to_string(3 * w * h) + " elements, got " + std::to_string(n_src));
    return env.Undefined();
  }
  if (n_out != 3 * w * h) {
    throw_range(env, "LENGTH_MISMATCH", "out must have 3 * width * height = " + std::to_string(3 * w * h) + " bytes, got " + std::to_string(n_out));
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(chw_to_rgb8(src, w, h, out)));
}

Napi::Value Rgb8ToChw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* src;
  float* out;
  size_t n_src, n_out, w, h;
  uint64_t ch;
  if (!get_u8(info, 0, "src", &src, &n_src) || !get_size(info, &w, &h) || !get_index(info, 3, "channels", 4, &ch) ||
      !get_f32(info, 4, "out", &out, &n_out))
    return env.Undefined();
  if (ch != 3 && ch != 4) {
    throw_range(env, "OUT_OF_RANGE", "channels must be 3 or 4");
    return env.Undefined();
  }
  if (n_src != ch * w * h) {
    throw_range(env, "LENGTH_MISMATCH", "src must have channels * width * height = " + std::to_string(ch * w * h) + " bytes, got " + std::to_string(n_src));
    return env.Undefined();
  }
  if (n_out != 3 * w * h) {
    throw_range(env, "LENGTH_MISMATCH", "out must have 3 * width * height = " + std::to_string(3 * w * h) + " elements, got " + std::to_string(n_out));
    return env.Undefined();
  }
  rgb8_to_chw(src, w, h, static_cast<int>(ch), out);
  return info[4];
}

}  // namespace

void init_pixels(Napi::Env env, Napi::Object exports) {
  exports.Set("chwToRgb8", Napi::Function::New(env, ChwToRgb8, "chwToRgb8"));
  exports.Set("rgb8ToChw", Napi::Function::New(env, Rgb8ToChw, "rgb8ToChw"));
}

}  // namespace binding
}  // namespace ragdiff
