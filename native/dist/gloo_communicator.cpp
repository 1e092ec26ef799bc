// The CPU backend of communicator.h on Gloo (Debian's libgloo-dev, the library PyTorch uses for CPU collectives)
// over its TCP transport. Rendezvous: rank 0 serves a TcpStore; Gloo's connectFullMesh exchanges the pair
// addresses through it (GlooStore adapts TcpStore to gloo::rendezvous::Store).
// Algorithms: allreduce (ring), ReduceScatterHalvingDoubling (recvCounts = the uneven shard sizes; it leaves rank
// r's result at the start of the buffer, so it is moved to the slice; for buffers above 4 MB, where it is slower,
// and for one layout it cannot take, allreduce is used instead, see reduce_scatter), allgatherv, broadcast, barrier. Every
// operation carries the rendezvous timeout, so a dead or stalled peer makes it throw instead of hanging.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/tcp_store.h"

#if VG_HAVE_GLOO
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/reduce_scatter.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#endif

namespace vg::dist {

#if VG_HAVE_GLOO
namespace {

constexpr int64_t kHalvingDoublingMaxBytes = int64_t(4) << 20;

// gloo::rendezvous::Store over our TcpStore (keeps tcp_store.h free of Gloo headers).
class GlooStore : public gloo::rendezvous::Store {
 public:
  explicit GlooStore(TcpStore& s) : s_(s) {}
  void set(const std::string& key, const std::vector<char>& data) override { s_.set("gloo/" + key, data); }
  std::vector<char> get(const std::string& key) override { return s_.get("gloo/" + key); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, s_.timeout()); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> k;
    for (const auto& x : keys) k.push_back("gloo/" + x);
    s_.wait(k, timeout);
  }

 private:
  TcpStore& s_;
};

class GlooCommunicator : public Communicator {
 public:
  explicit GlooCommunicator(const RendezvousOptions& o) : opts_(o) {
    validate_rendezvous(o);
    timeout_ = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(o.timeout_s * 1000)));
    if (o.rank == 0) server_ = std::make_unique<TcpStoreServer>(o.master_addr, o.master_port, 0);
    store_ = std::make_unique<TcpStore>(o.master_addr, o.master_port, o.rank, timeout_);
    check_membership();
    gloo::transport::tcp::attr attr;
    attr.hostname = o.iface_addr.empty() ? local_address_towards(o.master_addr, o.master_port) : o.iface_addr;
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      context_ = std::make_shared<gloo::rendezvous::Context>(o.rank, o.world_size);
      context_->setTimeout(timeout_);
      GlooStore gs(*store_);
      context_->connectFullMesh(gs, device_);
    } catch (const gloo::Exception& e) {
      VG_CHECK(false, "gloo rendezvous failed on rank ", o.rank, " of ", o.world_size, " (local address ", attr.hostname,
               ", master ", o.master_addr, ":", o.master_port, ", timeout ", o.timeout_s, " s): ", e.what(),
               ". Check that every rank can reach this address (set the bind address when the host has several "
               "networks) and that all ranks were started");
    }
    // Every rank leaves the rendezvous only when all have finished it, so rank 0 may drop the store server later.
    barrier();
  }

  int rank() const override { return opts_.rank; }
  int world_size() const override { return opts_.world_size; }
  const char* backend() const override { return "gloo"; }

  void all_reduce(float* buf, int64_t n, ReduceOp op) override { all_reduce_impl(buf, n, op); }
  void all_reduce(double* buf, int64_t n, ReduceOp op) override { all_reduce_impl(buf, n, op); }

  void reduce_scatter(float* buf, const std::vector<int64_t>& counts) override {
    const int64_t total = check_counts("reduce_scatter", counts, opts_.world_size);
    if (total == 0) return;
    VG_CHECK_ARG(buf != nullptr, "reduce_scatter: null buffer");
    const size_t r = static_cast<size_t>(opts_.rank);
    const int64_t offset = std::accumulate(counts.begin(), counts.begin() + opts_.rank, int64_t(0));
    // Gloo's ReduceScatterHalvingDoubling is used only where it is both correct and faster than Gloo's ring
    // allreduce, which gives the same slice (the other slices hold the full sum, allowed by the contract):
    // - above kHalvingDoublingMaxBytes it is slower than allreduce (it allocates two full-size scratch buffers and
    //   sends unsegmented messages: measured with benchmarks/native/collectives_bench.cpp on loopback, 2 ranks:
    //   1.6-1.9x faster than allreduce at 2-4 MB, 0.5x at 8 MB, 0.03x at 64 MB);
    // - a rank with count 0 followed by a rank with a nonzero count deadlocks its distribution phase (Gloo 0.5 /
    //   Debian 2022, e.g. counts {7, 0, 12}; test_dist.cpp covers it). shard_counts never produces this.
    bool zero_gap = false;
    for (size_t k = 0; k + 1 < counts.size(); ++k)
      if (counts[k] == 0 && std::any_of(counts.begin() + k + 1, counts.end(), [](int64_t c) { return c > 0; })) zero_gap = true;
    if (total * int64_t(sizeof(float)) > kHalvingDoublingMaxBytes || zero_gap) {
      all_reduce_impl(buf, total, ReduceOp::Sum);
      return;
    }
    run("reduce_scatter", [&] {
      std::vector<int> recv(counts.begin(), counts.end());
      gloo::ReduceScatterHalvingDoubling<float> algo(context_, std::vector<float*>{buf}, static_cast<int>(total), recv);
      algo.run();
      // run() can return while its last notification to a peer is still queued on the pair; if this rank then
      // destroyed the algorithm (or the communicator) the peer would wait forever (seen as an intermittent
      // "Connection closed by peer" with 3 ranks). Once every rank has left run(), every notification was received.
      gloo::BarrierOptions b(context_);
      b.setTag(next_tag());
      b.setTimeout(timeout_);
      gloo::barrier(b);
    });
    // The algorithm leaves this rank's reduced slice at the start of the buffer.
    if (offset != 0 && counts[r] > 0) std::memmove(buf + offset, buf, static_cast<size_t>(counts[r]) * sizeof(float));
  }

  void all_gather(float* buf, const std::vector<int64_t>& counts) override {
    const int64_t total = check_counts("all_gather", counts, opts_.world_size);
    if (total == 0) return;
    VG_CHECK_ARG(buf != nullptr, "all_gather: null buffer");
    run("all_gather", [&] {
      gloo::AllgathervOptions o(context_);
      o.setOutput<float>(buf, std::vector<size_t>(counts.begin(), counts.end()));  // in place: no separate input
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::allgatherv(o);
    });
  }

  void broadcast(float* buf, int64_t n, int root) override { broadcast_impl(buf, n, root); }
  void broadcast(uint8_t* buf, int64_t n, int root) override { broadcast_impl(buf, n, root); }

  void barrier() override {
    run("barrier", [&] {
      gloo::BarrierOptions o(context_);
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::barrier(o);
    });
  }

 private:
  // Refuses two processes with the same rank and ranks started with different world sizes.
  void check_membership() {
    const int64_t seen = store_->add("vg/rank/" + std::to_string(opts_.rank), 1);
    VG_CHECK(seen == 1, "rank ", opts_.rank, " joined the rendezvous at ", opts_.master_addr, ":", opts_.master_port,
             " twice: two processes were started with RANK=", opts_.rank, ". Give every process a distinct rank");
    std::vector<char> ws(sizeof(int));
    std::memcpy(ws.data(), &opts_.world_size, sizeof(int));
    if (opts_.rank == 0) store_->set("vg/world_size", ws);
    const std::vector<char> w0 = store_->get("vg/world_size");
    int world0 = 0;
    if (w0.size() == sizeof(int)) std::memcpy(&world0, w0.data(), sizeof(int));
    VG_CHECK(world0 == opts_.world_size, "rank ", opts_.rank, " was started with WORLD_SIZE=", opts_.world_size,
             " but rank 0 with WORLD_SIZE=", world0, ". Start every rank with the same world size");
  }

  uint32_t next_tag() { return tag_++; }

  template <typename F>
  void run(const char* op, F&& f) {
    VG_CHECK(broken_.empty(), "gloo ", op, " on rank ", opts_.rank, ": the communicator is unusable after an earlier "
             "failure (", broken_, "). Restart the job (resume from the last checkpoint)");
    try {
      f();
    } catch (const gloo::Exception& e) {
      broken_ = std::string(op) + ": " + e.what();
      VG_CHECK(false, "gloo ", op, " failed on rank ", opts_.rank, " of ", opts_.world_size, " (timeout ",
               opts_.timeout_s, " s): ", e.what(), ". A peer rank exited or stopped calling collectives; check the "
               "other ranks' output");
    }
  }

  template <typename T>
  void all_reduce_impl(T* buf, int64_t n, ReduceOp op) {
    VG_CHECK_ARG(n >= 0, "all_reduce: n=", n, " must be >= 0");
    if (n == 0) return;
    VG_CHECK_ARG(buf != nullptr, "all_reduce: null buffer");
    using Fn = void (*)(void*, const void*, const void*, size_t);
    Fn fn = op == ReduceOp::Sum ? static_cast<Fn>(&gloo::sum<T>)
            : op == ReduceOp::Max ? static_cast<Fn>(&gloo::max<T>)
                                  : static_cast<Fn>(&gloo::min<T>);
    run("all_reduce", [&] {
      gloo::AllreduceOptions o(context_);
      o.setOutput<T>(buf, static_cast<size_t>(n));
      o.setReduceFunction(fn);
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::allreduce(o);
    });
  }

  template <typename T>
  void broadcast_impl(T* buf, int64_t n, int root) {
    VG_CHECK_ARG(root >= 0 && root < opts_.world_size, "broadcast: root=", root, " must be in [0, worldSize=",
                 opts_.world_size, ")");
    VG_CHECK_ARG(n >= 0, "broadcast: n=", n, " must be >= 0");
    if (n == 0) return;
    VG_CHECK_ARG(buf != nullptr, "broadcast: null buffer");
    run("broadcast", [&] {
      gloo::BroadcastOptions o(context_);
      o.setOutput<T>(buf, static_cast<size_t>(n));
      o.setRoot(root);
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::broadcast(o);
    });
  }

  RendezvousOptions opts_;
  std::chrono::milliseconds timeout_{0};
  std::unique_ptr<TcpStoreServer> server_;
  std::unique_ptr<TcpStore> store_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  uint32_t tag_ = 0;
  std::string broken_;
};

}  // namespace

std::unique_ptr<Communicator> create_gloo_communicator(const RendezvousOptions& opts) {
  return std::make_unique<GlooCommunicator>(opts);
}

#else

std::unique_ptr<Communicator> create_gloo_communicator(const RendezvousOptions& opts) {
  validate_rendezvous(opts);
  VG_CHECK(false, "this build of vlm-grpo has no Gloo (the CPU collective backend). Install it with "
           "`sudo apt-get install libgloo-dev`, then rebuild: npm run build:native");
}

#endif

}  // namespace vg::dist
