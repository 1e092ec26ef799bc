#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/blas.h"

namespace vg {
namespace {

// Workers wait for a job; the caller takes part too. One job at a time: a call made while a job runs
// (from a worker or another thread) runs inline, which keeps nested parallel_for safe.
class ThreadPool {
 public:
  explicit ThreadPool(int n) { resize(n); }
  ~ThreadPool() { stop_workers(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> busy(run_mutex_);
    stop_workers();
    stopping_ = false;
    stopping_flag_.store(false, std::memory_order_release);
    // A fresh worker starts from the current generation: no job runs now (run_mutex_ is held), so the last one
    // has finished, and a worker starting from 0 would run it again and miscount `pending_` (lost wake-ups,
    // or parallel_for returning while chunks still run).
    const uint64_t current = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, current] { worker_loop(current); });
  }

  void run(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, size());
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (chunks <= 1 || !busy.owns_lock() || in_worker_) {
      fn(begin, end);
      return;
    }
    // Chunks are handed out dynamically in units of `step` so uneven work balances.
    int64_t step = std::max<int64_t>(grain, (n + chunks * 4 - 1) / (chunks * 4));
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &fn;
      job_begin_ = begin;
      job_end_ = end;
      job_step_ = step;
      next_.store(begin);
      error_ = nullptr;
      error_begin_ = INT64_MAX;
      pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);  // publishes the job fields to spinning workers
    }
    cv_.notify_all();
    work();
    // Workers usually finish within microseconds of us: spin briefly before sleeping.
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    std::lock_guard<std::mutex> lk(m_);
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    for (;;) {
      int64_t b = next_.fetch_add(job_step_);
      if (b >= job_end_) break;
      int64_t e = std::min(job_end_, b + job_step_);
      try {
        (*job_)(b, e);
      } catch (...) {
        // Keep the error of the lowest chunk, so which error surfaces does not depend on the thread count.
        std::lock_guard<std::mutex> lk(m_);
        if (!error_ || b < error_begin_) {
          error_ = std::current_exception();
          error_begin_ = b;
        }
      }
    }
  }

  // Polls `ready` for up to ~50 µs (a decode step issues hundreds of short parallel_for calls; sleeping and
  // waking a thread for each costs more than the work). Returns whether it became true.
  template <typename Ready>
  static bool spin_until(Ready ready) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    for (int i = 0;; ++i) {
      if (ready()) return true;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  void worker_loop(uint64_t seen) {
    in_worker_ = true;
    for (;;) {
      if (!spin_until([&] { return stopping_flag_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stopping_ || generation_.load(std::memory_order_acquire) != seen; });
      }
      if (stopping_flag_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(m_);  // taken so the caller cannot miss the notification
        done_cv_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stopping_ = true;
      stopping_flag_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // held by the caller for the whole job
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_begin_ = 0, job_end_ = 0, job_step_ = 1;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  int64_t error_begin_ = INT64_MAX;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};
  static thread_local bool in_worker_;
};

thread_local bool ThreadPool::in_worker_ = false;

int default_threads() {
  if (const char* s = std::getenv("VG_NUM_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
int g_threads = 0;

ThreadPool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (!g_pool) {
    g_threads = default_threads();
    g_pool = std::make_unique<ThreadPool>(g_threads);
    blas_set_num_threads(1);  // GEMMs are split over this pool (cpu/gemm.cpp); the BLAS itself stays single-threaded
  }
  return *g_pool;
}

}  // namespace

int num_threads() {
  pool();
  return g_threads;
}

void set_num_threads(int n) {
  if (n <= 0) n = default_threads();
  ThreadPool& p = pool();
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (n != g_threads) {
    p.resize(n);
    g_threads = n;
  }
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(begin, end, grain, fn);
}

}  // namespace vg
