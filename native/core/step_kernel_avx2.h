// The 8-wide (AVX2) build of the step kernel's vector body, chosen at run time
// on x86-64 CPUs that have AVX2 (step_kernel_avx2.cc); elsewhere supported()
// is false and the 4-wide body runs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/step_kernel.h"

#if (defined(__GNUC__) || defined(__clang__))
#define RAGDIFF_SIMD 1
#else
#define RAGDIFF_SIMD 0
#endif

namespace ragdiff {
namespace avx2 {

bool supported();

template <bool CLIP, bool NOISE, bool HIST, bool X0, size_t NB>
uint32_t step_range_vec(const FoldedStep& f, const StepBuffers& b, size_t begin, size_t end, size_t* next);

}  // namespace avx2
}  // namespace ragdiff
