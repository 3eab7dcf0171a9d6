// Philox4x32-10 and the Box-Muller pair, shared verbatim by the CPU (rng.cc) and
// CUDA (cuda/rng.cu) noise generators so both give the same numbers.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RAGDIFF_HD __host__ __device__ __forceinline__
#else
#define RAGDIFF_HD inline
#endif

namespace ragdiff {
namespace philox {

RAGDIFF_HD void round10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// The four standard normals of stream block `block` for `seed`.
RAGDIFF_HD void block_normals(uint64_t seed, uint64_t block, float z[4]) {
  uint32_t c[4] = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u};
  round10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const double kInv2Pow32 = 1.0 / 4294967296.0;
  const double kTwoPi = 6.283185307179586476925286766559;
  for (int k = 0; k < 4; k += 2) {
    const double u0 = (static_cast<double>(c[k]) + 0.5) * kInv2Pow32;
    const double u1 = (static_cast<double>(c[k + 1]) + 0.5) * kInv2Pow32;
    const double r = sqrt(-2.0 * log(u0));
    const double theta = kTwoPi * u1;
    z[k] = static_cast<float>(r * cos(theta));
    z[k + 1] = static_cast<float>(r * sin(theta));
  }
}

}  // namespace philox
}  // namespace ragdiff
