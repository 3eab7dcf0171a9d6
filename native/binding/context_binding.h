// Argument checks of fuseContext, shared by the CPU binding and its CUDA twin
// (cuda.fuseContext), so both refuse exactly the same calls.
#pragma once

#include <napi.h>

#include <cstdint>

#include "core/context_fusion.h"

namespace ragdiff {
namespace binding {

struct ContextArgs {
  ContextShape shape{};
  float* out = nullptr;
  const float* text_states = nullptr;
  const int32_t* text_index = nullptr;
  const float* neighbour_tokens = nullptr;
  const int32_t* neighbour_index = nullptr;
  const float* weights = nullptr;
};

// Reads (out, rows, textLength, slots, width, textStates, textIndex, neighbourTokens,
// neighbourIndex, weights) from argument 0 on and checks every type, length, index and
// weight. Returns false with a TypeError / RangeError (with .code) pending.
bool read_context_args(const Napi::CallbackInfo& info, ContextArgs* a);

}  // namespace binding
}  // namespace ragdiff
