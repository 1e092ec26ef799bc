// Collectives benchmark: bus bandwidth of all_reduce, reduce_scatter and all_gather on our communicator
// (native/dist/communicator.h), ranks as threads of this process (each with its own communicator, meeting through
// the TCP store on a free port). Baseline side by side: the same result obtained with all_reduce alone (what a
// trainer without reduce-scatter / all-gather would run), with the ratio. Bandwidths follow nccl-tests:
//   algbw = bytes / time;  busbw = algbw * 2(n-1)/n (all_reduce), algbw * (n-1)/n (reduce_scatter, all_gather),
// where bytes is the full buffer. Usage: vg_collectives_bench [--backend gloo|nccl] [--world N] [--mb M ...]
// (nccl: one GPU per rank, device = rank; needs a CUDA build and libnccl.so.2).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"

#if VG_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace vg::dist;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct Row {
  std::string op;
  double mb = 0, ours = 0, baseline = 0, bus_factor = 0;
};

// Best-of-reps seconds of fn on every rank (ranks start each repetition together after a barrier).
double best_time(Communicator& c, int reps, const std::function<void()>& fn) {
  fn();  // warm-up (connections, first-touch)
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  double b = best;
  c.all_reduce(&b, 1, ReduceOp::Max);  // the slowest rank's best defines the collective's time
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::string backend = "gloo";
  int world = 2;
  std::vector<double> sizes_mb;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) backend = argv[++i];
    else if (a == "--world" && i + 1 < argc) world = std::atoi(argv[++i]);
    else if (a == "--mb" && i + 1 < argc) sizes_mb.push_back(std::atof(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--backend gloo|nccl] [--world N] [--mb M ...]\n", argv[0]);
      return 2;
    }
  }
  if (sizes_mb.empty()) sizes_mb = {1, 16, 64};
  if (world < 1) world = 1;
  const int port = free_port();
  std::vector<std::vector<Row>> rows(static_cast<size_t>(world));
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        RendezvousOptions o;
        o.master_port = port;
        o.rank = rank;
        o.world_size = world;
        o.timeout_s = 120;
        std::unique_ptr<Communicator> c;
        if (backend == "nccl") c = create_nccl_communicator(o, rank);
        else c = create_gloo_communicator(o);
        for (double mb : sizes_mb) {
          const int64_t n = static_cast<int64_t>(mb * 1024 * 1024 / sizeof(float));
          const std::vector<int64_t> counts = shard_counts(n, world);
          float* buf = nullptr;
          std::vector<float> host;
#if VG_HAVE_CUDA
          if (backend == "nccl") {
            cudaSetDevice(rank);
            if (cudaMalloc(&buf, size_t(n) * sizeof(float)) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
            cudaMemset(buf, 0, size_t(n) * sizeof(float));
          }
#endif
          if (!buf) {
            host.assign(static_cast<size_t>(n), 1e-3f * static_cast<float>(rank + 1));
            buf = host.data();
          }
          const int reps = mb >= 32 ? 3 : 5;
          const double ar = best_time(*c, reps, [&] { c->all_reduce(buf, n, ReduceOp::Sum); });
          const double rs = best_time(*c, reps, [&] { c->reduce_scatter(buf, counts); });
          const double ag = best_time(*c, reps, [&] { c->all_gather(buf, counts); });
          const double f = world > 1 ? double(world - 1) / world : 0.0;
          rows[static_cast<size_t>(rank)].push_back({"all_reduce", mb, ar, ar, 2 * f});
          rows[static_cast<size_t>(rank)].push_back({"reduce_scatter", mb, rs, ar, f});
          rows[static_cast<size_t>(rank)].push_back({"all_gather", mb, ag, ar, f});
#if VG_HAVE_CUDA
          if (backend == "nccl") cudaFree(buf);
#endif
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r)
    if (!errors[static_cast<size_t>(r)].empty()) {
      std::fprintf(stderr, "rank %d: %s\n", r, errors[static_cast<size_t>(r)].c_str());
      return 1;
    }
  std::printf("collectives, backend %s, %d ranks (threads of one process; loopback for gloo). Baseline: the same\n"
              "result through all_reduce alone. busbw as in nccl-tests.\n\n", backend.c_str(), world);
  std::printf("%-15s %8s %11s %11s %11s %13s %7s\n", "op", "MB", "ours ms", "algbw GB/s", "busbw GB/s", "all_reduce ms",
              "ratio");
  for (const Row& r : rows[0]) {
    const double bytes = r.mb * 1024 * 1024;
    std::printf("%-15s %8.1f %11.3f %11.2f %11.2f %13.3f %7.2f\n", r.op.c_str(), r.mb, r.ours * 1e3, bytes / r.ours / 1e9,
                bytes / r.ours / 1e9 * r.bus_factor, r.baseline * 1e3, r.baseline / r.ours);
  }
  return 0;
}
