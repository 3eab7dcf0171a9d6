#include "core/rng.h"

#include <cmath>

#include "core/thread_pool.h"

namespace ragdiff {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kInv2Pow32 = 1.0 / 4294967296.0;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

inline Philox4x32 philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, &hi0, &lo0);
    mulhilo(kM1, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// The four normals of one Philox block.
inline void block_normals(uint64_t seed, uint64_t block, float z[4]) {
  Philox4x32 b = philox(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0, 0,
                        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  for (int k = 0; k < 4; k += 2) {
    double u0 = (static_cast<double>(b.v[k]) + 0.5) * kInv2Pow32;
    double u1 = (static_cast<double>(b.v[k + 1]) + 0.5) * kInv2Pow32;
    double r = std::sqrt(-2.0 * std::log(u0));
    double theta = kTwoPi * u1;
    z[k] = static_cast<float>(r * std::cos(theta));
    z[k + 1] = static_cast<float>(r * std::sin(theta));
  }
}

void fill_range(uint64_t seed, uint64_t offset, float* out, size_t begin, size_t end) {
  size_t j = begin;
  float z[4];
  while (j < end) {
    uint64_t idx = offset + j;
    uint64_t block = idx >> 2;
    unsigned lane = static_cast<unsigned>(idx & 3);
    block_normals(seed, block, z);
    for (; lane < 4 && j < end; ++lane, ++j) out[j] = z[lane];
  }
}

}  // namespace

Philox4x32 philox4x32_10(const uint32_t counter[4], const uint32_t key[2]) {
  return philox(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
}

void normal_fill(uint64_t seed, uint64_t offset, float* out, size_t n) {
  parallel_for(n, 1 << 14, [&](size_t b, size_t e) { fill_range(seed, offset, out, b, e); });
}

}  // namespace ragdiff
