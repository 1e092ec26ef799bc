// Collectives (Gloo backend) against plain references on random data, with world sizes 1, 2 and 3 run as threads
// in this process (each thread its own communicator, meeting through the TCP store on a free port); uneven counts,
// float and double; barrier ordering; timeouts and dead peers; store errors; the NCCL loader's message; the ZeRO
// helpers (shard ranges, squared norm, clipping with an external norm) against clip_grad_norm.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "cpu/adamw.h"
#include "dist/communicator.h"
#include "dist/nccl_api.h"
#include "dist/tcp_store.h"
#include "dist/zero.h"
#include "test_framework.h"

using namespace vg;
using namespace vg::dist;
using Clock = std::chrono::steady_clock;

// Tests that need the Gloo backend skip (with a line saying so) in builds without libgloo-dev.
#define VG_NEEDS_GLOO()                                                                                  \
  do {                                                                                                   \
    if (!VG_HAVE_GLOO) {                                                                                 \
      std::printf("  [skip] built without Gloo (sudo apt-get install libgloo-dev)\n");                  \
      VG_EXPECT_THROWS(create_gloo_communicator(opts(29500, 0, 1)), "libgloo-dev");                      \
      return;                                                                                            \
    }                                                                                                    \
  } while (0)

namespace {

// A TCP port that was free a moment ago (bind to port 0, read it, close).
int free_port() {
  signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write must not kill the test process
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  VG_EXPECT(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

RendezvousOptions opts(int port, int rank, int world, double timeout_s = 10) {
  RendezvousOptions o;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.rank = rank;
  o.world_size = world;
  o.timeout_s = timeout_s;
  return o;
}

// Runs fn(comm) on `world` threads, each with its own Gloo communicator; rethrows the first failure.
void run_world(int world, const std::function<void(Communicator&)>& fn, double timeout_s = 10) {
  const int port = free_port();
  std::vector<std::exception_ptr> errs(static_cast<size_t>(world));
  std::vector<std::thread> ts;
  for (int r = 0; r < world; ++r) {
    ts.emplace_back([&, r] {
      try {
        auto c = create_gloo_communicator(opts(port, r, world, timeout_s));
        fn(*c);
      } catch (...) {
        errs[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : ts) t.join();
  std::string all;  // every rank's failure: the first one is often only "peer closed" caused by another
  for (int r = 0; r < world; ++r) {
    if (!errs[static_cast<size_t>(r)]) continue;
    try {
      std::rethrow_exception(errs[static_cast<size_t>(r)]);
    } catch (const std::exception& e) {
      all += "\n    rank " + std::to_string(r) + ": " + e.what();
    }
  }
  if (!all.empty()) throw vgtest::Failure("world of " + std::to_string(world) + " failed:" + all);
}

// Per-rank random data that every thread can regenerate (for the reference).
template <typename T>
std::vector<T> rank_data(int rank, size_t n, uint64_t salt) {
  auto g = vgtest::rng(salt * 131 + static_cast<uint64_t>(rank));
  return vgtest::randn<T>(n, g);
}

std::vector<int64_t> offsets_of(const std::vector<int64_t>& counts) {
  std::vector<int64_t> off(counts.size() + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) off[i + 1] = off[i] + counts[i];
  return off;
}

template <typename T>
void check_all_reduce(int world, uint64_t salt, double rtol) {
  const size_t n = 1537;  // odd: the ring's chunks are uneven
  std::mutex m;
  std::vector<std::vector<T>> results(static_cast<size_t>(world) * 3);
  run_world(world, [&](Communicator& c) {
    for (int k = 0; k < 3; ++k) {
      std::vector<T> buf = rank_data<T>(c.rank(), n, salt);
      c.all_reduce(buf.data(), static_cast<int64_t>(n), k == 0 ? ReduceOp::Sum : k == 1 ? ReduceOp::Max : ReduceOp::Min);
      std::lock_guard<std::mutex> lk(m);
      results[static_cast<size_t>(c.rank()) * 3 + k] = std::move(buf);
    }
  });
  std::vector<double> sum(n, 0.0), mx(n, -INFINITY), mn(n, INFINITY);
  for (int r = 0; r < world; ++r) {
    const auto d = rank_data<T>(r, n, salt);
    for (size_t i = 0; i < n; ++i) {
      sum[i] += double(d[i]);
      mx[i] = std::max(mx[i], double(d[i]));
      mn[i] = std::min(mn[i], double(d[i]));
    }
  }
  for (int r = 0; r < world; ++r) {
    const auto& s = results[static_cast<size_t>(r) * 3];
    VG_EXPECT_ALLCLOSE(s.data(), sum.data(), n, rtol, rtol);
    VG_EXPECT_ALLCLOSE(results[static_cast<size_t>(r) * 3 + 1].data(), mx.data(), n, 1e-30, 0.0);
    VG_EXPECT_ALLCLOSE(results[static_cast<size_t>(r) * 3 + 2].data(), mn.data(), n, 1e-30, 0.0);
    // Every rank holds the same bits (ranks must never drift apart).
    VG_EXPECT(std::memcmp(s.data(), results[0].data(), n * sizeof(T)) == 0, "rank ", r, " differs from rank 0");
  }
}

// Uneven count layouts for a world size, including a rank with nothing.
std::vector<std::vector<int64_t>> count_layouts(int world) {
  std::vector<std::vector<int64_t>> out = {shard_counts(1001, world), shard_counts(world - 1 > 0 ? world - 1 : 1, world)};
  if (world == 3) out.push_back({7, 0, 12});
  if (world == 2) out.push_back({0, 9});
  return out;
}

}  // namespace

VG_TEST(dist_shard_counts_and_ranges) {
  for (int w = 1; w <= 7; ++w) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(5), int64_t(1001), int64_t(65537)}) {
      const auto c = shard_counts(n, w);
      VG_EXPECT(static_cast<int>(c.size()) == w);
      VG_EXPECT(std::accumulate(c.begin(), c.end(), int64_t(0)) == n, "n=", n, " w=", w);
      for (int r = 0; r < w; ++r) {
        VG_EXPECT(c[r] == n / w + (r < n % w ? 1 : 0), "n=", n, " w=", w, " r=", r, " count=", c[r]);
        const ShardRange s = shard_range(n, w, r);
        VG_EXPECT(s.end - s.begin == c[r]);
        VG_EXPECT(s.begin == std::accumulate(c.begin(), c.begin() + r, int64_t(0)));
      }
    }
  }
  VG_EXPECT_THROWS(shard_counts(10, 0), "worldSize=0");
  VG_EXPECT_THROWS(shard_range(10, 2, 2), "rank=2");
}

VG_TEST(dist_all_reduce_float_double) {
  VG_NEEDS_GLOO();
  for (int w : {1, 2, 3}) {
    check_all_reduce<float>(w, 11 + w, 1e-5);
    check_all_reduce<double>(w, 17 + w, 1e-12);
  }
}

void check_reduce_scatter(int w, const std::vector<std::vector<int64_t>>& layouts) {
  {
    for (const auto& counts : layouts) {
      const auto off = offsets_of(counts);
      const size_t n = static_cast<size_t>(off.back());
      std::mutex m;
      std::vector<std::vector<float>> res(static_cast<size_t>(w));
      run_world(w, [&](Communicator& c) {
        std::vector<float> buf = rank_data<float>(c.rank(), n, 23);
        c.reduce_scatter(buf.data(), counts);
        std::lock_guard<std::mutex> lk(m);
        res[static_cast<size_t>(c.rank())] = std::move(buf);
      });
      std::vector<double> sum(n, 0.0);
      for (int r = 0; r < w; ++r) {
        const auto d = rank_data<float>(r, n, 23);
        for (size_t i = 0; i < n; ++i) sum[i] += d[i];
      }
      for (int r = 0; r < w; ++r)
        VG_EXPECT_ALLCLOSE(res[r].data() + off[r], sum.data() + off[r], static_cast<size_t>(counts[r]), 1e-5, 1e-5);
    }
  }
}

VG_TEST(dist_reduce_scatter_uneven) {
  VG_NEEDS_GLOO();
  for (int w : {1, 2, 3}) check_reduce_scatter(w, count_layouts(w));
}

VG_TEST(dist_reduce_scatter_large_uses_allreduce_path) {
  VG_NEEDS_GLOO();
  check_reduce_scatter(3, {shard_counts((int64_t(5) << 20) / 4 + 3, 3)});  // > 4 MB: Gloo's allreduce is used
}

VG_TEST(dist_all_gather_uneven) {
  VG_NEEDS_GLOO();
  for (int w : {1, 2, 3}) {
    for (const auto& counts : count_layouts(w)) {
      const auto off = offsets_of(counts);
      const size_t n = static_cast<size_t>(off.back());
      std::mutex m;
      std::vector<std::vector<float>> res(static_cast<size_t>(w));
      run_world(w, [&](Communicator& c) {
        // Only this rank's slice is meaningful; the rest is garbage that must be overwritten.
        std::vector<float> buf = rank_data<float>(c.rank() + 100, n, 29);
        const auto mine = rank_data<float>(c.rank(), n, 29);
        std::copy(mine.begin() + off[c.rank()], mine.begin() + off[c.rank() + 1], buf.begin() + off[c.rank()]);
        c.all_gather(buf.data(), counts);
        std::lock_guard<std::mutex> lk(m);
        res[static_cast<size_t>(c.rank())] = std::move(buf);
      });
      std::vector<float> expect(n);
      for (int r = 0; r < w; ++r) {
        const auto d = rank_data<float>(r, n, 29);
        std::copy(d.begin() + off[r], d.begin() + off[r + 1], expect.begin() + off[r]);
      }
      for (int r = 0; r < w; ++r) VG_EXPECT_ALLCLOSE(res[r].data(), expect.data(), n, 1e-30, 0.0);
    }
  }
}

VG_TEST(dist_broadcast_float_and_bytes) {
  VG_NEEDS_GLOO();
  for (int w : {1, 2, 3}) {
    for (int root = 0; root < w; ++root) {
      const size_t n = 777;
      std::mutex m;
      std::vector<std::vector<float>> res(static_cast<size_t>(w));
      std::vector<std::vector<uint8_t>> bytes(static_cast<size_t>(w));
      run_world(w, [&](Communicator& c) {
        std::vector<float> buf = rank_data<float>(c.rank(), n, 31);
        c.broadcast(buf.data(), static_cast<int64_t>(n), root);
        std::vector<uint8_t> b(13);
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(c.rank() * 50 + i);
        c.broadcast(b.data(), static_cast<int64_t>(b.size()), root);
        std::lock_guard<std::mutex> lk(m);
        res[static_cast<size_t>(c.rank())] = std::move(buf);
        bytes[static_cast<size_t>(c.rank())] = std::move(b);
      });
      const auto expect = rank_data<float>(root, n, 31);
      for (int r = 0; r < w; ++r) {
        VG_EXPECT_ALLCLOSE(res[r].data(), expect.data(), n, 1e-30, 0.0);
        for (size_t i = 0; i < 13; ++i) VG_EXPECT(bytes[r][i] == static_cast<uint8_t>(root * 50 + i), "rank ", r, " byte ", i);
      }
    }
  }
}

VG_TEST(dist_barrier_orders_ranks) {
  VG_NEEDS_GLOO();
  std::atomic<int64_t> last_enter{0};
  std::vector<int64_t> left(3);
  const auto t0 = Clock::now();
  run_world(3, [&](Communicator& c) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60 * c.rank()));
    const int64_t enter = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    int64_t prev = last_enter.load();
    while (enter > prev && !last_enter.compare_exchange_weak(prev, enter)) {
    }
    c.barrier();
    left[static_cast<size_t>(c.rank())] = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
  });
  for (int r = 0; r < 3; ++r) VG_EXPECT(left[r] >= last_enter.load(), "rank ", r, " left the barrier before the last rank entered");
}

VG_TEST(dist_collective_timeout_names_op) {
  VG_NEEDS_GLOO();
  // Rank 1 stays alive but never calls all_reduce: rank 0 must throw after ~1 s, naming the op, then refuse reuse.
  std::atomic<bool> done{false};
  std::string msg, again;
  double seconds = 0;
  run_world(2, [&](Communicator& c) {
    if (c.rank() == 1) {
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return;
    }
    std::vector<float> buf(100, 1.0f);
    const auto t = Clock::now();
    try {
      c.all_reduce(buf.data(), 100, ReduceOp::Sum);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    seconds = std::chrono::duration<double>(Clock::now() - t).count();
    try {
      c.barrier();
    } catch (const std::exception& e) {
      again = e.what();
    }
    done = true;
  }, 1.0);
  VG_EXPECT(msg.find("all_reduce") != std::string::npos && msg.find("rank 0") != std::string::npos, "message: ", msg);
  VG_EXPECT(seconds >= 0.8 && seconds < 2.5, "threw after ", seconds, " s (timeout 1 s)");
  VG_EXPECT(again.find("unusable") != std::string::npos, "reuse message: ", again);
}

VG_TEST(dist_dead_peer_fails_fast) {
  VG_NEEDS_GLOO();
  // Rank 1 leaves (its communicator is destroyed) while rank 0 waits in broadcast: rank 0 throws, not hangs.
  std::string msg;
  double seconds = 0;
  run_world(2, [&](Communicator& c) {
    if (c.rank() == 1) return;
    std::vector<float> buf(64, 0.0f);
    const auto t = Clock::now();
    try {
      c.broadcast(buf.data(), 64, 1);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    seconds = std::chrono::duration<double>(Clock::now() - t).count();
  }, 1.5);
  VG_EXPECT(msg.find("broadcast") != std::string::npos, "message: ", msg);
  VG_EXPECT(seconds < 2.5, "threw after ", seconds, " s");
}

VG_TEST(dist_rendezvous_missing_rank_times_out) {
  VG_NEEDS_GLOO();
  const int port = free_port();
  const auto t = Clock::now();
  VG_EXPECT_THROWS(create_gloo_communicator(opts(port, 0, 2, 0.8)), "timed out");
  const double s = std::chrono::duration<double>(Clock::now() - t).count();
  VG_EXPECT(s >= 0.7 && s < 2.5, "gave up after ", s, " s (timeout 0.8 s)");
}

VG_TEST(dist_rendezvous_argument_checks) {
  VG_NEEDS_GLOO();
  VG_EXPECT_THROWS(create_gloo_communicator(opts(free_port(), 2, 2)), "rank=2");
  VG_EXPECT_THROWS(create_gloo_communicator(opts(free_port(), 0, 0)), "worldSize=0");
  VG_EXPECT_THROWS(create_gloo_communicator(opts(0, 0, 1)), "masterPort=0");
  VG_EXPECT_THROWS(create_gloo_communicator(opts(free_port(), 0, 1, -1)), "timeout");
  // Ranks started with different world sizes: the odd one names both numbers.
  const int port = free_port();
  std::string msg1;
  std::thread t0([&] {
    try {
      create_gloo_communicator(opts(port, 0, 2, 0.8));
    } catch (const std::exception&) {
    }
  });
  std::thread t1([&] {
    try {
      create_gloo_communicator(opts(port, 1, 3, 0.8));
    } catch (const std::exception& e) {
      msg1 = e.what();
    }
  });
  t0.join();
  t1.join();
  VG_EXPECT(msg1.find("WORLD_SIZE=3") != std::string::npos && msg1.find("WORLD_SIZE=2") != std::string::npos, "message: ", msg1);
}

VG_TEST(dist_store_operations) {
  TcpStoreServer server("127.0.0.1", 0, 0);
  const int port = server.port();
  VG_EXPECT(port > 0);
  TcpStore a("127.0.0.1", port, 0, std::chrono::milliseconds(2000));
  TcpStore b("127.0.0.1", port, 1, std::chrono::milliseconds(2000));
  a.set("k", {'x', 'y', '\0', 'z'});
  const auto v = b.get("k");
  VG_EXPECT(v.size() == 4 && v[0] == 'x' && v[2] == '\0' && v[3] == 'z');
  VG_EXPECT(a.add("cnt", 5) == 5);
  VG_EXPECT(b.add("cnt", -2) == 3);
  // A blocking get released by another client's set.
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    a.set("late", {'1'});
    a.set("later", {'2'});
  });
  const auto t = Clock::now();
  const auto late = b.get("late");
  b.wait({"late", "later"});
  setter.join();
  VG_EXPECT(late.size() == 1 && late[0] == '1');
  VG_EXPECT(std::chrono::duration<double>(Clock::now() - t).count() >= 0.08);
  std::vector<char> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  a.set("big", big);
  VG_EXPECT(b.get("big") == big);
}

VG_TEST(dist_store_errors) {
  TcpStoreServer server("127.0.0.1", 0, 0);
  const int port = server.port();
  // Address in use: a second server on the same port names it and the fix.
  VG_EXPECT_THROWS(TcpStoreServer("127.0.0.1", port, 0), "--master-port");
  // get timeout names the key.
  TcpStore a("127.0.0.1", port, 3, std::chrono::milliseconds(300));
  VG_EXPECT_THROWS(a.get("never"), "'never'");
  VG_EXPECT_THROWS(a.wait({"never"}), "timed out");
  // Connection refused until the timeout: names host:port and the rank.
  const int closed = free_port();
  const auto t = Clock::now();
  VG_EXPECT_THROWS(TcpStore("127.0.0.1", closed, 5, std::chrono::milliseconds(300)),
                   "rank 5 could not connect to the rendezvous store at 127.0.0.1:" + std::to_string(closed));
  VG_EXPECT(std::chrono::duration<double>(Clock::now() - t).count() >= 0.25);
  VG_EXPECT_THROWS(TcpStore("no-such-host.invalid", closed, 0, std::chrono::milliseconds(100)), "cannot resolve");
}

VG_TEST(dist_store_server_gone) {
  auto server = std::make_unique<TcpStoreServer>("127.0.0.1", 0, 0);
  TcpStore a("127.0.0.1", server->port(), 1, std::chrono::milliseconds(1000));
  a.set("x", {'1'});
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.reset();
  });
  VG_EXPECT_THROWS(a.get("never"), "closed the connection");  // blocked in get when the server stops
  killer.join();
}

VG_TEST(dist_nccl_without_library) {
  if (VG_HAVE_CUDA && nccl::library_available()) {
    std::printf("  [skip] libnccl.so.2 is present and CUDA is compiled: the missing-library message is not reachable\n");
    return;
  }
  VG_EXPECT_THROWS(create_nccl_communicator(opts(free_port(), 0, 1), 0), "libnccl.so.2");
  VG_EXPECT_THROWS(create_nccl_communicator(opts(free_port(), 0, 1), 0), "use backend 'gloo'");
  VG_EXPECT_THROWS(create_nccl_communicator(opts(free_port(), 3, 1), 0), "rank=3");
}

VG_TEST(dist_zero_squared_norm_and_clip) {
  auto g = vgtest::rng(41);
  const size_t n = 100003;  // several 32768-element blocks and a tail
  std::vector<float> grad = vgtest::randn<float>(n, g, 0.3);
  double ref = 0;
  for (float x : grad) ref += double(x) * double(x);
  const int saved = num_threads();
  set_num_threads(1);
  const double s1 = squared_norm(grad.data(), static_cast<int64_t>(n));
  set_num_threads(2);
  const double s2 = squared_norm(grad.data(), static_cast<int64_t>(n));
  set_num_threads(saved);
  VG_EXPECT(s1 == s2, "thread-count dependent: ", s1, " vs ", s2);
  VG_EXPECT(std::fabs(s1 - ref) <= 1e-12 * ref, s1, " vs ", ref);
  // Split into two shards: the sum of shard sums is the global sum (what ZeRO's norm all-reduce computes).
  const double split = squared_norm(grad.data(), 40000) + squared_norm(grad.data() + 40000, static_cast<int64_t>(n) - 40000);
  VG_EXPECT(std::fabs(split - ref) <= 1e-12 * ref);
  // clip_with_norm given clip_grad_norm's own total reproduces clip_grad_norm bit for bit.
  for (double max_norm : {0.5, 1e9, 0.0}) {
    std::vector<float> a = grad, b = grad;
    float* bufs[1] = {a.data()};
    const int64_t lens[1] = {static_cast<int64_t>(n)};
    const ClipGradNormResult ra = clip_grad_norm<float>(bufs, lens, 1, max_norm > 0 ? max_norm : INFINITY);
    const ClipGradNormResult rb = clip_with_norm(b.data(), static_cast<int64_t>(n), ra.total_norm, max_norm);
    VG_EXPECT(ra.scale == rb.scale && rb.total_norm == ra.total_norm, "max_norm ", max_norm);
    VG_EXPECT(std::memcmp(a.data(), b.data(), n * sizeof(float)) == 0, "clipped values differ at max_norm ", max_norm);
    if (max_norm == 0.5) VG_EXPECT(rb.scale < 1.0);
  }
  // A non-finite norm leaves the gradients untouched.
  std::vector<float> c = grad;
  const ClipGradNormResult rn = clip_with_norm(c.data(), static_cast<int64_t>(n), NAN, 1.0);
  VG_EXPECT(std::isnan(rn.total_norm) && rn.scale == 1.0);
  VG_EXPECT(std::memcmp(c.data(), grad.data(), n * sizeof(float)) == 0);
}
