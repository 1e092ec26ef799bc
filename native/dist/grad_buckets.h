// Bucketed gradient collectives that overlap with backward (issue 6, data-parallel training).
//
// A backward reports ranges of the gradient buffer as they become final (model/grad_ready.h). plan_buckets cuts the
// trainable range [begin, end) into buckets along those ranges; a BucketReducer then runs each bucket's collective on
// the communicator's thread as soon as the bucket is complete, while backward goes on with earlier layers.
//
// plan_buckets(units, begin, end, cap):
//   `units` are the ranges a full backward reports, in the order it reports them (a fixed function of the layout).
//   Each unit is clipped to [begin, end) (empty ones dropped); consecutive clipped units that touch (the next one ends
//   where the bucket begins or begins where it ends) are joined while the bucket holds at most `cap` elements; a unit
//   longer than cap is cut into cap-sized pieces, from the end of the unit that backward reaches first. The plan
//   depends only on the layout, the range and cap, never on the data or on the order ranges are actually reported
//   in, so every rank issues the same collectives in the same order. The buckets partition the part of [begin, end)
//   that the units cover (the caller checks it is all of it).
//
// The collective of bucket [b, e) (identical whether it overlaps backward or runs after it, so both give the same bits):
//   BucketOp::AllReduce      all_reduce(g + b, e - b, Sum)
//   BucketOp::ReduceScatter  reduce_scatter(g + b, counts) with counts[r] = |[b, e) ∩ shard_r|, where the shards
//                            partition [begin, end) rank by rank (shard_counts): the bucket's values lie rank by rank,
//                            which is reduce_scatter's layout, so rank r receives the sum over ranks of its part.
//
// BucketReducer (one optimizer step's reduction; thread-safe between one reporting and one running thread):
//   mark_ready(b, e)   any thread: [b, e) of the gradient buffer is final. Parts outside [begin, end) are ignored.
//                      Reporting an element twice is an error (it would mean a collective may have read it early).
//   mark_all_ready()   everything is final (a rank with no backward in this step, or reduction after backward).
//   finish_reporting() the backward is over: every bucket must be complete by now (else a range was never reported:
//                      the reducer aborts with an error naming the bucket instead of waiting forever).
//   run(comm)          the communicator's thread: bucket k's collective once bucket k is complete, k = 0, 1, ... in
//                      plan order; returns early when aborted or when a collective throws (the error is kept).
//   abort(msg)         stops run() before its next collective (backward failed); a no-op after run() finished.
//   wait()             blocks until run() has returned; rethrows the first error (collective failure or abort).
//   issued_before_finish() buckets whose collective had started before finish_reporting() (the overlap achieved).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace vg::dist {

struct Range {
  int64_t begin = 0, end = 0;
};

enum class BucketOp { AllReduce, ReduceScatter };

std::vector<Range> plan_buckets(const std::vector<Range>& units, int64_t begin, int64_t end, int64_t cap);

class BucketReducer {
 public:
  // grads: the gradient buffer (absolute offsets). shard_counts: for ReduceScatter, one count per rank summing to
  // end - begin (rank r's shard starts at begin + counts[0] + ... + counts[r-1]); ignored for AllReduce.
  // Throws ArgumentError when the buckets do not partition [begin, end) or the counts do not fit.
  BucketReducer(float* grads, int64_t begin, int64_t end, std::vector<Range> buckets, BucketOp op,
                std::vector<int64_t> shard_counts = {});

  void mark_ready(int64_t b, int64_t e);
  void mark_all_ready();
  void finish_reporting();
  void run(Communicator& comm);
  void abort(const std::string& msg);
  void wait();

  const std::vector<Range>& buckets() const { return buckets_; }
  int64_t issued_before_finish() const;
  // The counts bucket k's reduce_scatter uses (exposed for tests).
  std::vector<int64_t> scatter_counts(size_t k) const;

 private:
  float* grads_;
  int64_t begin_, end_;
  std::vector<Range> buckets_;
  std::vector<size_t> by_address_;  // bucket indices sorted by begin
  BucketOp op_;
  std::vector<int64_t> shard_begin_;  // absolute start of each rank's shard, plus the end
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<int64_t> pending_;  // elements of each bucket not yet reported
  bool reporting_done_ = false, aborted_ = false, finished_ = false;
  int64_t issued_before_finish_ = 0;
  std::string error_;
};

}  // namespace vg::dist
