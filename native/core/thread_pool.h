// A small persistent thread pool for elementwise kernels over large tensors.
//
// parallel_for(n, grain, f) calls f(begin, end) over contiguous, disjoint ranges
// covering [0, n). Ranges start at multiples of 16 elements (64-byte lines for
// float). When n < 2 * grain, or the pool is busy with another caller (e.g. a
// second worker_thread), f runs inline on the calling thread: tiny tensors never
// touch the pool, and no thread is ever created per call. Results never depend on
// the partition (every kernel here is elementwise).
#pragma once

#include <cstddef>

namespace ragdiff {

using RangeFn = void (*)(void* ctx, size_t begin, size_t end);

// Threads used for large tensors (workers + the caller). Defaults to
// min(hardware threads, 8), or RAGDIFF_THREADS when set (1 disables the pool).
int thread_count();
// Changes the pool size; takes effect on the next parallel call. n >= 1.
void set_thread_count(int n);

void parallel_for_raw(size_t n, size_t grain, RangeFn fn, void* ctx);

template <class F>
void parallel_for(size_t n, size_t grain, F&& f) {
  auto tramp = [](void* ctx, size_t b, size_t e) { (*static_cast<F*>(ctx))(b, e); };
  parallel_for_raw(n, grain, tramp, static_cast<void*>(&f));
}

}  // namespace ragdiff
