// fuseContext(out, rows, textLength, slots, width, textStates, textIndex,
//             neighbourTokens | null, neighbourIndex | null, weights | null) -> out
// Writes in place into `out` (core/context_fusion.h); nothing is copied.
#include "binding/context_binding.h"

#include <string>

#include "binding/errors.h"
#include "binding/registry.h"

namespace ragdiff {
namespace binding {
namespace {

// Sizes well inside int32 (the index arrays) and size_t products.
constexpr double kMaxDim = 2147483647.0;

std::string str(size_t v) { return std::to_string(static_cast<unsigned long long>(v)); }

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (!a || !b || a_bytes == 0 || b_bytes == 0) return false;
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

Napi::Value FuseContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ContextArgs a;
  if (!read_context_args(info, &a)) return env.Undefined();
  size_t bad = 0;
  const Status st = fuse_context(a.shape, a.text_states, a.text_index, a.neighbour_tokens, a.neighbour_index, a.weights, a.out, &bad);
  if (st != Status::kOk) {  // unreachable after read_context_args; kept so a core change cannot go unnoticed
    throw_status(env, st, "fuseContext: the core refused the call (item " + str(bad) + ")");
    return env.Undefined();
  }
  return info[0];
}

}  // namespace

bool read_context_args(const Napi::CallbackInfo& info, ContextArgs* a) {
  Napi::Env env = info.Env();
  float *out, *text, *tokens, *weights;
  int32_t *text_index, *set_index;
  size_t n_out, n_text, n_tokens, n_weights, n_ti, n_si;
  uint64_t rows, L, S, W;
  if (!get_f32(info, 0, "out", &out, &n_out) || !get_index(info, 1, "rows", kMaxDim, &rows) ||
      !get_index(info, 2, "textLength", kMaxDim, &L) || !get_index(info, 3, "slots", kMaxDim, &S) ||
      !get_index(info, 4, "width", kMaxDim, &W) || !get_f32(info, 5, "textStates", &text, &n_text) ||
      !get_i32(info, 6, "textIndex", &text_index, &n_ti) || !get_f32_or_null(info, 7, "neighbourTokens", &tokens, &n_tokens) ||
      !get_i32_or_null(info, 8, "neighbourIndex", &set_index, &n_si) || !get_f32_or_null(info, 9, "weights", &weights, &n_weights))
    return false;
  if (L == 0 || W == 0) {
    throw_range(env, "OUT_OF_RANGE", "textLength and width must be at least 1");
    return false;
  }
  ContextShape s{rows, L, S, W, 0, 0};
  // Every product below stays under 2^62 (each factor < 2^31 and L + S < 2^32).
  const size_t text_size = L * W, set_size = S * W;
  if (text_size > (size_t{1} << 40) || set_size > (size_t{1} << 40) || rows * (L + S) > (size_t{1} << 40) / W) {
    throw_range(env, "OUT_OF_RANGE", "rows, textLength, slots and width give a tensor too large to address");
    return false;
  }
  if (n_text == 0 || n_text % text_size != 0) {
    throw_range(env, "LENGTH_MISMATCH", "textStates must hold whole sequences of textLength * width = " + str(text_size) + " elements, got " + str(n_text));
    return false;
  }
  s.texts = n_text / text_size;
  if (tokens && n_tokens > 0) {
    if (set_size == 0 || n_tokens % set_size != 0) {
      throw_range(env, "LENGTH_MISMATCH", "neighbourTokens must hold whole sets of slots * width = " + str(set_size) + " elements, got " + str(n_tokens));
      return false;
    }
    s.sets = n_tokens / set_size;
  }
  if (n_ti != rows) {
    throw_range(env, "LENGTH_MISMATCH", "textIndex must have one entry per row (" + str(rows) + "), got " + str(n_ti));
    return false;
  }
  if (set_index && n_si != rows) {
    throw_range(env, "LENGTH_MISMATCH", "neighbourIndex must have one entry per row (" + str(rows) + "), got " + str(n_si));
    return false;
  }
  if (weights && n_weights != rows * S) {
    throw_range(env, "LENGTH_MISMATCH", "weights must have rows * slots = " + str(rows * S) + " elements, got " + str(n_weights));
    return false;
  }
  const size_t want = rows * (L + S) * W;
  if (n_out != want) {
    throw_range(env, "LENGTH_MISMATCH", "out must have rows * (textLength + slots) * width = " + str(want) + " elements, got " + str(n_out));
    return false;
  }
  const size_t out_bytes = n_out * sizeof(float);
  if (overlaps(out, out_bytes, text, n_text * sizeof(float)) || overlaps(out, out_bytes, tokens, n_tokens * sizeof(float)) ||
      overlaps(out, out_bytes, text_index, n_ti * sizeof(int32_t)) || overlaps(out, out_bytes, set_index, n_si * sizeof(int32_t)) ||
      overlaps(out, out_bytes, weights, n_weights * sizeof(float))) {
    throw_range(env, "INVALID_VALUE", "out must not share memory with any input");
    return false;
  }
  for (size_t r = 0; r < rows; ++r) {
    if (text_index[r] < 0 || static_cast<size_t>(text_index[r]) >= s.texts) {
      throw_range(env, "OUT_OF_RANGE", "textIndex[" + str(r) + "] is " + std::to_string(text_index[r]) + "; textStates holds " + str(s.texts) + " sequences");
      return false;
    }
    if (set_index && (set_index[r] < -1 || (set_index[r] >= 0 && static_cast<size_t>(set_index[r]) >= s.sets))) {
      throw_range(env, "OUT_OF_RANGE", "neighbourIndex[" + str(r) + "] is " + std::to_string(set_index[r]) + "; it must be -1 (zeros) or a set in 0.." +
                                           (s.sets == 0 ? std::string("(none: neighbourTokens is empty)") : str(s.sets - 1)));
      return false;
    }
  }
  if (weights) {
    for (size_t i = 0; i < n_weights; ++i) {
      if (!(weights[i] - weights[i] == 0.0f)) {
        throw_range(env, "NON_FINITE", "weights[" + str(i) + "] is " + std::to_string(weights[i]) + "; weights must be finite");
        return false;
      }
    }
  }
  a->shape = s;
  a->out = out;
  a->text_states = text;
  a->text_index = text_index;
  a->neighbour_tokens = s.sets > 0 ? tokens : nullptr;
  a->neighbour_index = set_index;
  a->weights = weights;
  return true;
}

void init_context(Napi::Env env, Napi::Object exports) {
  exports.Set("fuseContext", Napi::Function::New(env, FuseContext, "fuseContext"));
}

}  // namespace binding
}  // namespace ragdiff
