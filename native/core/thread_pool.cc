#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace ragdiff {
namespace {

int default_threads() {
  if (const char* env = std::getenv("RAGDIFF_THREADS")) {
    int v = std::atoi(env);
    if (v >= 1) return std::min(v, 256);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::max(1u, std::min(hw, 8u)));
}

class Pool {
 public:
  // Runs a job on up to `threads` threads (the caller included). Returns false
  // when the pool is in use by another caller; the caller then runs it inline.
  bool run(size_t n, size_t chunk, RangeFn fn, void* ctx, int threads) {
    std::unique_lock<std::mutex> submit(submit_mu_, std::try_to_lock);
    if (!submit.owns_lock()) return false;
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      chunk_ = chunk;
      next_.store(0, std::memory_order_relaxed);
      active_workers_ = std::min<int>(threads - 1, static_cast<int>(workers_.size()));
      pending_ = active_workers_;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    return true;
  }

 private:
  void work() {
    for (;;) {
      size_t b = next_.fetch_add(chunk_, std::memory_order_relaxed);
      if (b >= n_) break;
      fn_(ctx_, b, std::min(n_, b + chunk_));
    }
  }

  void ensure_workers(int want) {
    while (static_cast<int>(workers_.size()) < want) {
      int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { loop(id); });
      workers_.back().detach();  // the pool lives for the process; never joined
    }
  }

  void loop(int id) {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= active_workers_) continue;
      }
      work();
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex submit_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  unsigned long generation_ = 0;
  int active_workers_ = 0;
  int pending_ = 0;
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  size_t n_ = 0, chunk_ = 0;
  std::atomic<size_t> next_{0};
};

Pool& pool() {
  static Pool* p = new Pool();  // intentionally leaked: detached workers outlive static destruction
  return *p;
}

std::atomic<int> g_threads{0};

}  // namespace

int thread_count() {
  int t = g_threads.load(std::memory_order_relaxed);
  if (t == 0) {
    t = default_threads();
    g_threads.store(t, std::memory_order_relaxed);
  }
  return t;
}

void set_thread_count(int n) { g_threads.store(std::max(1, std::min(n, 256)), std::memory_order_relaxed); }

void parallel_for_raw(size_t n, size_t grain, RangeFn fn, void* ctx) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 16);
  const int threads = thread_count();
  if (threads <= 1 || n < 2 * grain) {
    fn(ctx, 0, n);
    return;
  }
  size_t parts = std::min<size_t>(static_cast<size_t>(threads), n / grain);
  size_t chunk = (n + parts - 1) / parts;
  chunk = (chunk + 15) & ~static_cast<size_t>(15);
  if (!pool().run(n, chunk, fn, ctx, static_cast<int>(parts))) fn(ctx, 0, n);
}

}  // namespace ragdiff
