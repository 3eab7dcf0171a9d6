#include "core/pixels.h"

#include "core/thread_pool.h"

namespace ragdiff {
namespace {

struct ByteToUnit {
  float v[256];
  ByteToUnit() {
    for (int i = 0; i < 256; ++i) v[i] = static_cast<float>(i / 127.5 - 1.0);
  }
};

const ByteToUnit& byte_to_unit() {
  static const ByteToUnit t;
  return t;
}

// Rounds v in [0, 255] to the nearest integer, ties to even (IEEE default
// rounding: adding 1.5 * 2^23 leaves no fraction bits).
inline uint8_t round_byte(float v) {
  v = v > 0.0f ? v : 0.0f;  // also maps NaN to 0
  v = v < 255.0f ? v : 255.0f;
  const float magic = 12582912.0f;  // not folded: the build never enables fast-math
  float r = (v + magic) - magic;
  return static_cast<uint8_t>(r);
}

}  // namespace

long long chw_to_rgb8(const float* src, size_t width, size_t height, uint8_t* out) {
  const size_t plane = width * height;
  const float* r = src;
  const float* g = src + plane;
  const float* b = src + 2 * plane;
  long long first_bad = -1;
  for (size_t c = 0; c < 3 && first_bad < 0; ++c) {
    const float* p = src + c * plane;
    for (size_t i = 0; i < plane; ++i) {
      float x = p[i];
      if (!(x - x == 0.0f)) {
        first_bad = static_cast<long long>(c * plane + i);
        break;
      }
    }
  }
  parallel_for(plane, 1 << 15, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) {
      out[3 * i + 0] = round_byte((r[i] + 1.0f) * 127.5f);
      out[3 * i + 1] = round_byte((g[i] + 1.0f) * 127.5f);
      out[3 * i + 2] = round_byte((b[i] + 1.0f) * 127.5f);
    }
  });
  return first_bad;
}

void rgb8_to_chw(const uint8_t* src, size_t width, size_t height, int channels, float* out) {
  const size_t plane = width * height;
  const float* lut = byte_to_unit().v;
  const size_t ch = static_cast<size_t>(channels);
  parallel_for(plane, 1 << 15, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) {
      const uint8_t* px = src + ch * i;
      out[i] = lut[px[0]];
      out[plane + i] = lut[px[1]];
      out[2 * plane + i] = lut[px[2]];
    }
  });
}

}  // namespace ragdiff
