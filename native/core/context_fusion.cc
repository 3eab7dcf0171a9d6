#include "core/context_fusion.h"

#include <cstring>
#include <limits>

#include "core/thread_pool.h"

namespace ragdiff {
namespace {

// Floats per thread-pool part. The pool wakes from 2 * kGrainFloats output floats
// (16 MiB): the fusion is a copy, and below that one core's copy beat waking the
// pool in bench/context.bench.ts (SD 4 branches x batch 8, 10 MB: 87 us on one
// thread, 169 us on the pool, on a 2-core machine at load average ~15; the pool's
// benefit on an idle many-core machine is unmeasured).
constexpr size_t kGrainFloats = size_t{1} << 21;

bool mul_ok(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) return false;
  *out = a * b;
  return true;
}

inline bool finite(float w) { return w - w == 0.0f; }

// dst[c] = w * src[c]; the compiler vectorises this loop (no aliasing, no reduction).
inline void scale(float* __restrict dst, const float* __restrict src, float w, size_t n) {
  for (size_t c = 0; c < n; ++c) dst[c] = w * src[c];
}

struct Fusion {
  const ContextShape* s;
  const float* text_states;
  const int32_t* text_index;
  const float* neighbour_tokens;
  const int32_t* neighbour_index;
  const float* weights;
  float* out;

  // Writes tokens [begin, end) of the flattened [rows][text_length + slots] grid.
  void run(size_t begin, size_t end) const {
    const size_t L = s->text_length, S = s->slots, W = s->width, T = L + S;
    size_t seg = begin;
    while (seg < end) {
      const size_t row = seg / T, t = seg % T, row_end = (row + 1) * T;
      float* dst = out + seg * W;
      if (t < L) {
        // A run of text tokens: one contiguous copy.
        const size_t n = (end < row * T + L ? end : row * T + L) - seg;
        const float* src = text_states + (static_cast<size_t>(text_index[row]) * L + t) * W;
        std::memcpy(dst, src, n * W * sizeof(float));
        seg += n;
        continue;
      }
      const size_t last = end < row_end ? end : row_end;
      const int32_t set = neighbour_index ? neighbour_index[row] : -1;
      if (set < 0) {
        std::memset(dst, 0, (last - seg) * W * sizeof(float));  // all-zero bits: +0.0f
        seg = last;
        continue;
      }
      const float* tokens = neighbour_tokens + static_cast<size_t>(set) * S * W;
      for (; seg < last; ++seg, dst += W) {
        const size_t slot = seg % T - L;
        const float w = weights ? weights[row * S + slot] : 1.0f;
        const float* src = tokens + slot * W;
        if (w == 1.0f) std::memcpy(dst, src, W * sizeof(float));
        else if (w == 0.0f) std::memset(dst, 0, W * sizeof(float));
        else scale(dst, src, w, W);
      }
    }
  }
};

}  // namespace

size_t context_out_length(const ContextShape& s) {
  size_t a, b;
  if (!mul_ok(s.rows, s.text_length + s.slots, &a) || !mul_ok(a, s.width, &b)) return 0;
  return b;
}

Status check_context(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                     const int32_t* neighbour_index, const float* weights, size_t* bad) {
  size_t tmp;
  if (s.width == 0 || s.text_length == 0 || s.texts == 0) return Status::kInvalidArgument;
  if (s.text_length + s.slots < s.text_length) return Status::kInvalidArgument;
  if (!mul_ok(s.rows, s.text_length + s.slots, &tmp) || !mul_ok(tmp, s.width, &tmp)) return Status::kInvalidArgument;
  if (!mul_ok(s.texts, s.text_length, &tmp) || !mul_ok(tmp, s.width, &tmp)) return Status::kInvalidArgument;
  if (!mul_ok(s.sets, s.slots, &tmp) || !mul_ok(tmp, s.width, &tmp)) return Status::kInvalidArgument;
  if (!mul_ok(s.rows, s.slots, &tmp)) return Status::kInvalidArgument;
  if (s.rows > 0 && (!text_states || !text_index)) return Status::kInvalidArgument;
  if (s.sets > 0 && s.slots > 0 && !neighbour_tokens) return Status::kInvalidArgument;
  if (s.texts > static_cast<size_t>(std::numeric_limits<int32_t>::max()) ||
      s.sets > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return Status::kInvalidArgument;
  for (size_t r = 0; r < s.rows; ++r) {
    const int32_t t = text_index[r];
    if (t < 0 || static_cast<size_t>(t) >= s.texts) {
      if (bad) *bad = r;
      return Status::kOutOfRange;
    }
    if (neighbour_index) {
      const int32_t n = neighbour_index[r];
      if (n < -1 || (n >= 0 && static_cast<size_t>(n) >= s.sets)) {
        if (bad) *bad = r;
        return Status::kOutOfRange;
      }
    }
  }
  if (weights) {
    for (size_t i = 0; i < s.rows * s.slots; ++i) {
      if (!finite(weights[i])) {
        if (bad) *bad = i;
        return Status::kNonFinite;
      }
    }
  }
  return Status::kOk;
}

Status fuse_context(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                    const int32_t* neighbour_index, const float* weights, float* out, size_t* bad) {
  const Status st = check_context(s, text_states, text_index, neighbour_tokens, neighbour_index, weights, bad);
  if (st != Status::kOk) return st;
  const size_t tokens = s.rows * (s.text_length + s.slots);
  if (tokens == 0) return Status::kOk;
  if (!out) return Status::kInvalidArgument;
  const Fusion f{&s, text_states, text_index, neighbour_tokens, neighbour_index, weights, out};
  const size_t grain = kGrainFloats / s.width > 0 ? kGrainFloats / s.width : 1;
  parallel_for(tokens, grain, [&f](size_t b, size_t e) { f.run(b, e); });
  return Status::kOk;
}

}  // namespace ragdiff
