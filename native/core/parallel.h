// A small persistent thread pool shared by all CPU kernels.
// parallel_for splits [begin, end) into contiguous chunks; nested or concurrent calls run inline on the
// calling thread, so kernels may call each other freely. The thread count is set once per process with
// set_num_threads (also applied to the BLAS when one is linked).
#pragma once
#include <cstdint>
#include <functional>

namespace vg {

// Number of threads kernels use (>= 1). Defaults to the number of hardware threads, or VG_NUM_THREADS.
int num_threads();
// Set the thread count (n >= 1; 0 means "hardware threads"). Also sets the BLAS thread count.
void set_num_threads(int n);

// Calls fn(chunk_begin, chunk_end) over disjoint chunks covering [begin, end), each at least `grain`
// long (except the last), on up to num_threads() threads. Blocks until all chunks are done. An
// exception thrown by fn is rethrown on the calling thread after all chunks finish.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace vg
