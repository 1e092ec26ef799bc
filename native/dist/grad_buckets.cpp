#include "dist/grad_buckets.h"

#include <algorithm>

#include "core/error.h"

namespace vg::dist {

std::vector<Range> plan_buckets(const std::vector<Range>& units, int64_t begin, int64_t end, int64_t cap) {
  VG_CHECK_ARG(begin >= 0 && end >= begin, "plan_buckets: range [", begin, ", ", end, ") is invalid");
  VG_CHECK_ARG(cap >= 1, "plan_buckets: bucket capacity ", cap, " must be >= 1 element");
  std::vector<Range> out;
  Range cur;
  auto flush = [&] {
    if (cur.end > cur.begin) out.push_back(cur);
    cur = Range{};
  };
  for (const Range& raw : units) {
    VG_CHECK_ARG(raw.end >= raw.begin, "plan_buckets: unit [", raw.begin, ", ", raw.end, ") is invalid");
    const Range u{std::max(raw.begin, begin), std::min(raw.end, end)};
    if (u.end <= u.begin) continue;
    const int64_t n = u.end - u.begin;
    if (n > cap) {  // its own buckets, cut from the end
      flush();
      for (int64_t e = u.end; e > u.begin; e -= cap) out.push_back(Range{std::max(u.begin, e - cap), e});
      continue;
    }
    const bool touches = cur.end > cur.begin && (u.end == cur.begin || u.begin == cur.end);
    if (touches && (cur.end - cur.begin) + n <= cap) {
      cur = Range{std::min(cur.begin, u.begin), std::max(cur.end, u.end)};
    } else {
      flush();
      cur = u;
    }
  }
  flush();
  return out;
}

BucketReducer::BucketReducer(float* grads, int64_t begin, int64_t end, std::vector<Range> buckets, BucketOp op,
                             std::vector<int64_t> shard_counts)
    : grads_(grads), begin_(begin), end_(end), buckets_(std::move(buckets)), op_(op) {
  VG_CHECK_ARG(begin >= 0 && end >= begin, "BucketReducer: range [", begin, ", ", end, ") is invalid");
  VG_CHECK_ARG(grads != nullptr || end == begin, "BucketReducer: null gradient buffer");
  by_address_.resize(buckets_.size());
  for (size_t k = 0; k < by_address_.size(); ++k) by_address_[k] = k;
  std::sort(by_address_.begin(), by_address_.end(),
            [&](size_t a, size_t b) { return buckets_[a].begin < buckets_[b].begin; });
  int64_t at = begin;
  for (size_t k : by_address_) {
    const Range& r = buckets_[k];
    VG_CHECK_ARG(r.begin == at && r.end > r.begin, "BucketReducer: the buckets must partition [", begin, ", ", end,
                 "); bucket ", k, " is [", r.begin, ", ", r.end, ") where one starting at ", at, " was expected");
    at = r.end;
  }
  VG_CHECK_ARG(at == end, "BucketReducer: the buckets cover [", begin, ", ", at, ") but the range ends at ", end);
  pending_.resize(buckets_.size());
  for (size_t k = 0; k < buckets_.size(); ++k) pending_[k] = buckets_[k].end - buckets_[k].begin;
  if (op_ == BucketOp::ReduceScatter) {
    VG_CHECK_ARG(!shard_counts.empty(), "BucketReducer: reduce-scatter needs the shard counts");
    shard_begin_.push_back(begin);
    for (size_t r = 0; r < shard_counts.size(); ++r) {
      VG_CHECK_ARG(shard_counts[r] >= 0, "BucketReducer: shard count ", r, " is ", shard_counts[r]);
      shard_begin_.push_back(shard_begin_.back() + shard_counts[r]);
    }
    VG_CHECK_ARG(shard_begin_.back() == end, "BucketReducer: shard counts sum to ", shard_begin_.back() - begin,
                 " but the range holds ", end - begin, " values");
  }
}

std::vector<int64_t> BucketReducer::scatter_counts(size_t k) const {
  VG_CHECK_ARG(k < buckets_.size(), "scatter_counts: bucket ", k, " of ", buckets_.size());
  const Range& b = buckets_[k];
  std::vector<int64_t> c;
  for (size_t r = 0; r + 1 < shard_begin_.size(); ++r)
    c.push_back(std::max<int64_t>(0, std::min(b.end, shard_begin_[r + 1]) - std::max(b.begin, shard_begin_[r])));
  return c;
}

void BucketReducer::mark_ready(int64_t b, int64_t e) {
  b = std::max(b, begin_);
  e = std::min(e, end_);
  if (e <= b) return;
  std::lock_guard<std::mutex> lk(m_);
  // First bucket (by address) that ends after b; buckets partition [begin, end), so they tile [b, e) from there.
  auto it = std::partition_point(by_address_.begin(), by_address_.end(), [&](size_t k) { return buckets_[k].end <= b; });
  bool complete = false;
  for (; it != by_address_.end() && buckets_[*it].begin < e; ++it) {
    const Range& r = buckets_[*it];
    const int64_t overlap = std::min(e, r.end) - std::max(b, r.begin);
    pending_[*it] -= overlap;
    VG_CHECK(pending_[*it] >= 0, "gradient range [", b, ", ", e, ") was reported final twice (bucket [", r.begin, ", ",
             r.end, ")): its collective may have read it before backward finished");
    complete = complete || pending_[*it] == 0;
  }
  if (complete) cv_.notify_all();
}

void BucketReducer::mark_all_ready() {
  std::lock_guard<std::mutex> lk(m_);
  std::fill(pending_.begin(), pending_.end(), 0);
  reporting_done_ = true;
  cv_.notify_all();
}

void BucketReducer::finish_reporting() {
  std::lock_guard<std::mutex> lk(m_);
  reporting_done_ = true;
  for (size_t k = 0; k < pending_.size(); ++k) {
    if (pending_[k] == 0) continue;
    if (!aborted_ && !finished_) {
      aborted_ = true;
      error_ = detail::concat("backward finished but gradient bucket ", k, " [", buckets_[k].begin, ", ", buckets_[k].end,
                              ") still misses ", pending_[k], " values that were never reported final");
    }
    break;
  }
  cv_.notify_all();
}

void BucketReducer::run(Communicator& comm) {
  for (size_t k = 0; k < buckets_.size(); ++k) {
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return aborted_ || pending_[k] == 0; });
      if (aborted_) break;
      if (!reporting_done_) ++issued_before_finish_;
    }
    const Range& r = buckets_[k];
    try {
      if (op_ == BucketOp::AllReduce) comm.all_reduce(grads_ + r.begin, r.end - r.begin, ReduceOp::Sum);
      else comm.reduce_scatter(grads_ + r.begin, scatter_counts(k));
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(m_);
      aborted_ = true;
      if (error_.empty()) error_ = e.what();
      break;
    }
  }
  std::lock_guard<std::mutex> lk(m_);
  finished_ = true;
  cv_.notify_all();
}

void BucketReducer::abort(const std::string& msg) {
  std::lock_guard<std::mutex> lk(m_);
  if (finished_ || aborted_) return;
  aborted_ = true;
  error_ = msg;
  cv_.notify_all();
}

void BucketReducer::wait() {
  std::unique_lock<std::mutex> lk(m_);
  cv_.wait(lk, [&] { return finished_; });
  VG_CHECK(error_.empty(), "bucketed gradient reduction failed: ", error_);
}

int64_t BucketReducer::issued_before_finish() const {
  std::lock_guard<std::mutex> lk(m_);
  return issued_before_finish_;
}

}  // namespace vg::dist
