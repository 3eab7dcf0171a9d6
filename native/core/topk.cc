#include "core/topk.h"

#include <algorithm>
#include <limits>
#include <mutex>
#include <numeric>
#include <utility>
#include <vector>

#include "core/thread_pool.h"

namespace ragdiff {

float l2sq(const float* a, const float* b, size_t d) {
  // 8 independent accumulators: the compiler vectorises this without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    for (int l = 0; l < 8; ++l) {
      const float t = a[i + l] - b[i + l];
      acc[l] += t * t;
    }
  }
  for (; i < d; ++i) {
    const float t = a[i] - b[i];
    acc[i & 7] += t * t;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double dot_f64(const float* a, const float* b, size_t d) {
  // The store's JavaScript loop, operation for operation (see topk.h).
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const size_t d4 = d - d % 4;
  size_t i = 0;
  for (; i < d4; i += 4) {
    s0 += static_cast<double>(a[i]) * b[i];
    s1 += static_cast<double>(a[i + 1]) * b[i + 1];
    s2 += static_cast<double>(a[i + 2]) * b[i + 2];
    s3 += static_cast<double>(a[i + 3]) * b[i + 3];
  }
  for (; i < d; ++i) s0 += static_cast<double>(a[i]) * b[i];
  return s0 + s1 + s2 + s3;
}

namespace {

struct Entry {
  double bad;  // lower is better: the L2 distance or the negated inner product; NaN -> +inf
  size_t pos;  // candidate position: breaks ties
  int32_t row;
  double score;
};

inline bool better(const Entry& a, const Entry& b) { return a.bad != b.bad ? a.bad < b.bad : a.pos < b.pos; }
struct Better {
  bool operator()(const Entry& a, const Entry& b) const { return better(a, b); }
};

inline double badness(double s, TopkMetric metric) {
  if (s != s) return std::numeric_limits<double>::infinity();
  return metric == TopkMetric::kL2 ? s : -s;
}

// The best `cap` entries offered so far: a heap whose front is the worst kept. Offers come in rising
// position order, so a full heap rejects a candidate whose badness is not below the worst's.
class Best {
 public:
  explicit Best(size_t cap) : cap_(cap) {}
  void offer(double bad, size_t pos, int32_t row, double score) {
    if (heap_.size() < cap_) {
      heap_.push_back({bad, pos, row, score});
      std::push_heap(heap_.begin(), heap_.end(), Better());
      return;
    }
    const Entry e{bad, pos, row, score};
    if (!better(e, heap_.front())) return;
    std::pop_heap(heap_.begin(), heap_.end(), Better());
    heap_.back() = e;
    std::push_heap(heap_.begin(), heap_.end(), Better());
  }
  std::vector<Entry>& entries() { return heap_; }

 private:
  size_t cap_;
  std::vector<Entry> heap_;
};

Status check_subset(size_t n, const TopkCandidates& c, std::string* error) {
  if (!c.has_subset) return Status::kOk;
  for (size_t p = 0; p < c.subset_len; ++p) {
    const int32_t r = c.subset[p];
    if (r < 0 || static_cast<size_t>(r) >= n) {
      *error = "subset[" + std::to_string(p) + "] = " + std::to_string(r) + " is not a row (0.." + std::to_string(n) + " exclusive)";
      return Status::kOutOfRange;
    }
  }
  return Status::kOk;
}

// Scans the candidates (threaded in ranges of positions), keeps the best kk per query and range, then merges.
// score_of(j, row) is query j's score against `row`. Candidates go in blocks of kBlock: the block's scores first
// (a tight loop over rows, every query per row), then the selection over them.
constexpr size_t kBlock = 64;

template <class ScoreOf>
Status run_topk(size_t n, size_t q, size_t k, TopkMetric metric, const TopkCandidates& c, size_t grain, ScoreOf score_of, int32_t* idx,
                double* score, std::string* error) {
  Status st = check_subset(n, c, error);
  if (st != Status::kOk) return st;
  const size_t kk = std::min(k, topk_candidate_count(n, c));
  if (kk == 0 || q == 0) return Status::kOk;
  const size_t m = c.has_subset ? c.subset_len : n;
  std::vector<std::vector<Entry>> merged(q);
  std::mutex mu;
  parallel_for(m, grain, [&](size_t b, size_t e) {
    std::vector<Best> best(q, Best(std::min(kk, e - b)));
    size_t pos[kBlock];
    int32_t rows[kBlock];
    std::vector<double> s(kBlock * q);
    for (size_t p0 = b; p0 < e; p0 += kBlock) {
      const size_t p1 = std::min(e, p0 + kBlock);
      size_t cnt = 0;
      for (size_t p = p0; p < p1; ++p) {
        const int32_t row = c.has_subset ? c.subset[p] : static_cast<int32_t>(p);
        if (c.mask && c.mask[row] != 1) continue;
        pos[cnt] = p;
        rows[cnt++] = row;
      }
      for (size_t t = 0; t < cnt; ++t) {
        for (size_t j = 0; j < q; ++j) s[j * kBlock + t] = score_of(j, rows[t]);
      }
      for (size_t j = 0; j < q; ++j) {
        const double* sj = s.data() + j * kBlock;
        for (size_t t = 0; t < cnt; ++t) best[j].offer(badness(sj[t], metric), pos[t], rows[t], sj[t]);
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    for (size_t j = 0; j < q; ++j) {
      auto& src = best[j].entries();
      merged[j].insert(merged[j].end(), src.begin(), src.end());
    }
  });
  for (size_t j = 0; j < q; ++j) {
    auto& all = merged[j];
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(kk), all.end(), Better());
    for (size_t r = 0; r < kk; ++r) {
      idx[j * kk + r] = all[r].row;
      score[j * kk + r] = all[r].score;
    }
  }
  return Status::kOk;
}

}  // namespace

size_t topk_candidate_count(size_t n, const TopkCandidates& c) {
  const size_t m = c.has_subset ? c.subset_len : n;
  if (!c.mask) return m;
  size_t count = 0;
  for (size_t p = 0; p < m; ++p) {
    const int32_t row = c.has_subset ? c.subset[p] : static_cast<int32_t>(p);
    if (row >= 0 && static_cast<size_t>(row) < n && c.mask[row] == 1) ++count;
  }
  return count;
}

Status topk_search(const float* rows, size_t n, size_t d, const float* queries, size_t q, size_t k, TopkMetric metric,
                   const TopkCandidates& cand, int32_t* idx, double* score, std::string* error) {
  if (d == 0) {
    *error = "rows must have at least one dimension";
    return Status::kInvalidArgument;
  }
  // Grain: ~64k floats of row data per task.
  const size_t grain = std::max<size_t>(16, 65536 / d);
  if (metric == TopkMetric::kL2) {
    return run_topk(n, q, k, metric, cand, grain,
                    [&](size_t j, int32_t row) { return static_cast<double>(l2sq(queries + j * d, rows + static_cast<size_t>(row) * d, d)); },
                    idx, score, error);
  }
  return run_topk(n, q, k, metric, cand, grain,
                  [&](size_t j, int32_t row) { return dot_f64(rows + static_cast<size_t>(row) * d, queries + j * d, d); }, idx, score,
                  error);
}

Status topk_select(const double* scores, size_t n, size_t q, size_t k, TopkMetric metric, const TopkCandidates& cand, int32_t* idx,
                   double* score, std::string* error) {
  return run_topk(n, q, k, metric, cand, 65536, [&](size_t j, int32_t row) { return scores[j * n + static_cast<size_t>(row)]; }, idx,
                  score, error);
}

void select_topk(const float* dist, size_t n, size_t k, const int32_t* ids, int32_t* idx, float* out) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto less = [&](int32_t a, int32_t b) {
    // NaN (a non-finite key) sorts as +inf so the order stays a strict weak order.
    float da = dist[a], db = dist[b];
    if (da != da) da = std::numeric_limits<float>::infinity();
    if (db != db) db = std::numeric_limits<float>::infinity();
    if (da != db) return da < db;
    const int32_t ia = ids ? ids[a] : a, ib = ids ? ids[b] : b;
    return ia < ib;
  };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), less);
  for (size_t j = 0; j < k; ++j) {
    idx[j] = ids ? ids[order[j]] : order[j];
    out[j] = dist[order[j]];
  }
}

}  // namespace ragdiff
