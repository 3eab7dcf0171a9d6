// Counter-based noise: Philox4x32-10 (Salmon et al., SC'11) and standard normals
// by Box-Muller.
//
// The normal at stream index i for a seed depends only on (seed, i):
//   block  = i / 4, lane = i % 4
//   bits   = philox4x32_10(counter = {block lo, block hi, 0, 0}, key = {seed lo, seed hi})
//   u_k    = (bits[k] + 0.5) * 2^-32                      (in (0, 1))
//   lanes 0,1 = r cos(theta), r sin(theta) with r = sqrt(-2 ln u_0), theta = 2 pi u_1
//   lanes 2,3 = the same from u_2, u_3
// computed in double and rounded to float once. The result does not depend on the
// thread count or on how a stream is split into calls.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ragdiff {

struct Philox4x32 {
  uint32_t v[4];
};

Philox4x32 philox4x32_10(const uint32_t counter[4], const uint32_t key[2]);

// out[j] = normal(seed, offset + j) for j in [0, n). Uses the thread pool for large n.
void normal_fill(uint64_t seed, uint64_t offset, float* out, size_t n);

}  // namespace ragdiff
