// The step kernel's vector body compiled for AVX2 (8 lanes). Only this file is
// compiled for AVX2 (GCC's target pragma, x86-64 only); step_kernel.cc calls it
// when the CPU supports AVX2. Standard headers come before the pragma so that no
// inline library code is built for AVX2.
#include <cstdint>
#include <cstring>

#include "core/step_kernel_avx2.h"

#if RAGDIFF_SIMD && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RAGDIFF_AVX2_BUILD 1
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

namespace ragdiff {
namespace avx2 {

#ifdef RAGDIFF_AVX2_BUILD
typedef float VF __attribute__((vector_size(32)));
typedef int32_t VI __attribute__((vector_size(32)));
constexpr int W = 8;
static inline VF load(const float* p) {
  VF v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline void store(float* p, VF v) { __builtin_memcpy(p, &v, sizeof v); }
static inline VI nonfinite_v(VF v) {
  VI u;
  __builtin_memcpy(&u, &v, sizeof u);
  return (u & 0x7f800000) == 0x7f800000;
}
static inline VF splat(float s) { return VF{s, s, s, s, s, s, s, s}; }
#include "core/step_kernel_impl.h"
#else
// No AVX2 build here: never chosen (supported() is false).
template <bool CLIP, bool NOISE, bool HIST, bool X0, size_t NB>
uint32_t step_range_vec(const FoldedStep&, const StepBuffers&, size_t begin, size_t, size_t* next) {
  *next = begin;
  return 0;
}
#endif

#define RAGDIFF_INST_NB(C, N, H, X) \
  template uint32_t step_range_vec<C, N, H, X, 0>(const FoldedStep&, const StepBuffers&, size_t, size_t, size_t*); \
  template uint32_t step_range_vec<C, N, H, X, 1>(const FoldedStep&, const StepBuffers&, size_t, size_t, size_t*); \
  template uint32_t step_range_vec<C, N, H, X, 2>(const FoldedStep&, const StepBuffers&, size_t, size_t, size_t*);
#define RAGDIFF_INST_X(C, N, H) RAGDIFF_INST_NB(C, N, H, false) RAGDIFF_INST_NB(C, N, H, true)
#define RAGDIFF_INST_H(C, N) RAGDIFF_INST_X(C, N, false) RAGDIFF_INST_X(C, N, true)
#define RAGDIFF_INST_N(C) RAGDIFF_INST_H(C, false) RAGDIFF_INST_H(C, true)
RAGDIFF_INST_N(false)
RAGDIFF_INST_N(true)

}  // namespace avx2
}  // namespace ragdiff

#ifdef RAGDIFF_AVX2_BUILD
#pragma GCC pop_options
namespace ragdiff {
namespace avx2 {
bool supported() {
  __builtin_cpu_init();  // may run during static initialisation
  return __builtin_cpu_supports("avx2");
}
}  // namespace avx2
}  // namespace ragdiff
#else
namespace ragdiff {
namespace avx2 {
bool supported() { return false; }
}  // namespace avx2
}  // namespace ragdiff
#endif
