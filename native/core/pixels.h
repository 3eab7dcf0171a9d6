// Conversions between model tensors and 8-bit images.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ragdiff {

// src: planar [3, height, width] floats in [-1, 1]; out: interleaved RGB, 3 bytes a pixel.
// byte = round_half_even(clamp((x + 1) * 127.5, 0, 255)), computed in float.
// NaN maps to 0. Returns the index of the first non-finite input, or -1 when all are finite.
long long chw_to_rgb8(const float* src, size_t width, size_t height, uint8_t* out);

// src: interleaved bytes with `channels` (3 or 4; alpha ignored) per pixel;
// out: planar [3, height, width], x = byte / 127.5 - 1 (0 -> -1, 255 -> 1 exactly).
void rgb8_to_chw(const uint8_t* src, size_t width, size_t height, int channels, float* out);

}  // namespace ragdiff
