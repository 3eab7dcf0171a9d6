#include "core/rng.h"

#include "core/philox.h"
#include "core/thread_pool.h"

namespace ragdiff {
namespace {

void fill_range(uint64_t seed, uint64_t offset, float* out, size_t begin, size_t end) {
  size_t j = begin;
  float z[4];
  while (j < end) {
    const uint64_t idx = offset + j;
    unsigned lane = static_cast<unsigned>(idx & 3);
    philox::block_normals(seed, idx >> 2, z);
    for (; lane < 4 && j < end; ++lane, ++j) out[j] = z[lane];
  }
}

}  // namespace

Philox4x32 philox4x32_10(const uint32_t counter[4], const uint32_t key[2]) {
  Philox4x32 r{{counter[0], counter[1], counter[2], counter[3]}};
  philox::round10(r.v, key[0], key[1]);
  return r;
}

void normal_fill(uint64_t seed, uint64_t offset, float* out, size_t n) {
  parallel_for(n, 1 << 14, [&](size_t b, size_t e) { fill_range(seed, offset, out, b, e); });
}

}  // namespace ragdiff
