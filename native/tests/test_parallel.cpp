// The thread pool behind parallel_for: every index runs exactly once, and all of them have finished when
// parallel_for returns, also right after the pool was resized (set_num_threads spawns fresh workers, which must
// not mistake the last finished job for a new one).
#include <atomic>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "test_framework.h"

using namespace vg;

VG_TEST(parallel_for_covers_each_index_once_across_resizes) {
  const int keep = num_threads();
  std::vector<std::atomic<int>> hits(257);
  std::string problem;
  for (int round = 0; round < 3000 && problem.empty(); ++round) {
    // Resize on most rounds (1..4 threads), and sometimes run twice at the same size.
    if (round % 5 != 4) set_num_threads(1 + round % 4);
    const int64_t n = 1 + (round * 37) % static_cast<int64_t>(hits.size());
    for (auto& h : hits) h.store(0, std::memory_order_relaxed);
    parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // A little work per index, so a worker that is still busy after parallel_for returns would be caught.
        volatile double x = 0;
        for (int k = 0; k < 200; ++k) x = x + k;
        hits[i].fetch_add(1, std::memory_order_relaxed);
      }
    });
    for (int64_t i = 0; i < static_cast<int64_t>(hits.size()) && problem.empty(); ++i) {
      const int want = i < n ? 1 : 0, got = hits[i].load(std::memory_order_relaxed);
      if (got != want)
        problem = "round " + std::to_string(round) + ": index " + std::to_string(i) + " of " + std::to_string(n) +
                  " ran " + std::to_string(got) + " times when parallel_for returned (want " + std::to_string(want) + ")";
    }
  }
  set_num_threads(keep);
  VG_EXPECT(problem.empty(), problem);
}
