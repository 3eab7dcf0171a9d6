// Conditioning fusion: assembles the UNet's batched encoder_hidden_states for
// every guidance branch in one pass into one buffer.
//
//   out[row][t][c]             = text_states[text_index[row]][t][c]              t <  text_length
//   out[row][text_length+s][c] = w * neighbour_tokens[neighbour_index[row]][s][c]  s <  slots
//     with w = weights[row*slots + s] (1 when weights is null), and
//     0 when neighbour_index[row] == -1 or w == 0 (a dropped slot is +0, never w*x),
//     an exact copy when w == 1, float32 w*x (one rounding) otherwise.
//
// Rows are branch-major, image-minor (row = branch * batch + image), the order the
// UNet batch and the guided step share; the kernel itself only sees rows.
// Invariants: the result does not depend on the thread partition; nothing is
// allocated; inputs are checked before anything is written (a bad call leaves
// `out` untouched). `out` must not overlap any input.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace ragdiff {

struct ContextShape {
  size_t rows;         // branches * batch
  size_t text_length;  // text tokens per sequence (>= 1)
  size_t slots;        // neighbour slots after the text tokens (0 for plain SD)
  size_t width;        // token width (>= 1)
  size_t texts;        // sequences in text_states (>= 1)
  size_t sets;         // neighbour sets in neighbour_tokens (0 when there are none)
};

// Elements of out: rows * (text_length + slots) * width.
size_t context_out_length(const ContextShape& s);

// Checks sizes, indices and weights without touching any buffer but the index
// and weight arrays. kInvalidArgument: zero width/text_length/texts, a null pointer
// where data is needed, or sizes that overflow; kOutOfRange: a text index outside
// [0, texts) or a neighbour index outside [-1, sets); kNonFinite: a NaN/Inf
// weight. `bad` (optional) receives the offending row (or weight index).
Status check_context(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                     const int32_t* neighbour_index, const float* weights, size_t* bad);

// text_states:      [texts][text_length][width]
// text_index:       [rows]
// neighbour_tokens: [sets][slots][width] (may be null when sets == 0)
// neighbour_index:  [rows], -1 = zeros (null: every row -1)
// weights:          [rows][slots] (null: all ones)
// out:              [rows][text_length + slots][width]
// Runs check_context first; large outputs are split over the thread pool.
Status fuse_context(const ContextShape& s, const float* text_states, const int32_t* text_index, const float* neighbour_tokens,
                    const int32_t* neighbour_index, const float* weights, float* out, size_t* bad);

}  // namespace ragdiff
