// The GPU backend of communicator.h on NCCL, loaded at run time: libnccl.so.2 is opened with dlopen and the few
// entry points of nccl_api.h are resolved by name, so the package builds (and runs on CPU) where NCCL is absent.
// Buffers are CUDA device pointers. Rank 0 creates the NCCL unique id and shares it through the TcpStore.
// Each collective is enqueued on the communicator's own stream and waited for by polling, so a dead peer turns into
// ncclCommAbort + an exception after the timeout instead of a hang. NCCL's reduce-scatter and all-gather need equal
// counts per rank: uneven counts are padded to the largest count in a scratch device buffer.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/nccl_api.h"
#include "dist/tcp_store.h"

#if VG_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace vg::dist {

static const char* kNcclHint =
    "NCCL backend needs libnccl.so.2 (install NCCL / nvidia-nccl-cu12) and a CUDA build; use backend 'gloo'";

namespace nccl {

namespace {
std::once_flag g_once;
Api g_api;
std::string g_error;

template <typename F>
bool resolve(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

void load_once() {
  void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    g_error = std::string("dlopen(libnccl.so.2) failed: ") + (e ? e : "unknown error");
    return;
  }
  Api a;
  a.lib = lib;
  const char* missing = nullptr;
  if (!resolve(lib, "ncclGetUniqueId", a.ncclGetUniqueId)) missing = "ncclGetUniqueId";
  else if (!resolve(lib, "ncclCommInitRank", a.ncclCommInitRank)) missing = "ncclCommInitRank";
  else if (!resolve(lib, "ncclAllReduce", a.ncclAllReduce)) missing = "ncclAllReduce";
  else if (!resolve(lib, "ncclReduceScatter", a.ncclReduceScatter)) missing = "ncclReduceScatter";
  else if (!resolve(lib, "ncclAllGather", a.ncclAllGather)) missing = "ncclAllGather";
  else if (!resolve(lib, "ncclBroadcast", a.ncclBroadcast)) missing = "ncclBroadcast";
  else if (!resolve(lib, "ncclCommDestroy", a.ncclCommDestroy)) missing = "ncclCommDestroy";
  else if (!resolve(lib, "ncclCommAbort", a.ncclCommAbort)) missing = "ncclCommAbort";
  else if (!resolve(lib, "ncclGetErrorString", a.ncclGetErrorString)) missing = "ncclGetErrorString";
  else if (!resolve(lib, "ncclCommGetAsyncError", a.ncclCommGetAsyncError)) missing = "ncclCommGetAsyncError";
  resolve(lib, "ncclGetVersion", a.ncclGetVersion);  // optional
  if (missing) {
    g_error = std::string("libnccl.so.2 has no entry point ") + missing + " (NCCL older than 2.4?)";
    dlclose(lib);
    return;
  }
  g_api = a;
}
}  // namespace

const Api& load_api() {
  std::call_once(g_once, load_once);
  VG_CHECK(g_api.lib != nullptr, kNcclHint, " (", g_error, ")");
  return g_api;
}

bool library_available() {
  std::call_once(g_once, load_once);
  return g_api.lib != nullptr;
}

}  // namespace nccl

#if VG_HAVE_CUDA
namespace {

using namespace nccl;

#define VG_CUDA_OK(expr, what)                                                                      \
  do {                                                                                              \
    cudaError_t e_ = (expr);                                                                        \
    VG_CHECK(e_ == cudaSuccess, "nccl communicator: ", what, " failed: ", cudaGetErrorString(e_));  \
  } while (0)

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const RendezvousOptions& o, int device) : opts_(o), api_(load_api()), device_(device) {
    timeout_ = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(o.timeout_s * 1000)));
    int ndev = 0;
    VG_CUDA_OK(cudaGetDeviceCount(&ndev), "cudaGetDeviceCount");
    VG_CHECK_ARG(device >= 0 && device < ndev, "cudaDevice=", device, " must be in [0, ", ndev,
                 ") on this host (set LOCAL_RANK / the device per rank)");
    VG_CUDA_OK(cudaSetDevice(device), "cudaSetDevice");
    if (o.rank == 0) server_ = std::make_unique<TcpStoreServer>(o.master_addr, o.master_port, 0);
    store_ = std::make_unique<TcpStore>(o.master_addr, o.master_port, o.rank, timeout_);
    ncclUniqueId id{};
    if (o.rank == 0) {
      check(api_.ncclGetUniqueId(&id), "ncclGetUniqueId");
      store_->set("nccl/id", std::vector<char>(id.internal, id.internal + kUniqueIdBytes));
    } else {
      const std::vector<char> v = store_->get("nccl/id");
      VG_CHECK(v.size() == size_t(kUniqueIdBytes), "nccl rendezvous: malformed unique id (", v.size(), " bytes)");
      std::memcpy(id.internal, v.data(), kUniqueIdBytes);
    }
    // Everyone present before ncclCommInitRank, which would otherwise block without a timeout.
    if (store_->add("nccl/joined", 1) == o.world_size) store_->set("nccl/all_joined", {'1'});
    store_->wait({"nccl/all_joined"});
    VG_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(api_.ncclCommInitRank(&comm_, o.world_size, id, o.rank), "ncclCommInitRank");
    barrier();
  }

  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_) {
      if (broken_.empty()) api_.ncclCommDestroy(comm_);
      else api_.ncclCommAbort(comm_);
    }
    if (stream_) cudaStreamDestroy(stream_);
    if (scratch_) cudaFree(scratch_);
  }

  int rank() const override { return opts_.rank; }
  int world_size() const override { return opts_.world_size; }
  const char* backend() const override { return "nccl"; }

  void all_reduce(float* buf, int64_t n, ReduceOp op) override { all_reduce_impl(buf, n, op, ncclFloat32); }
  void all_reduce(double* buf, int64_t n, ReduceOp op) override { all_reduce_impl(buf, n, op, ncclFloat64); }

  void reduce_scatter(float* buf, const std::vector<int64_t>& counts) override {
    const int64_t total = check_counts("reduce_scatter", counts, opts_.world_size);
    if (total == 0) return;
    live("reduce_scatter");
    const int W = opts_.world_size, r = opts_.rank;
    const int64_t maxc = *std::max_element(counts.begin(), counts.end());
    if (maxc * W == total) {  // even: NCCL's in-place form (recvbuff = sendbuff + rank * count)
      check(api_.ncclReduceScatter(buf, buf + r * maxc, size_t(maxc), ncclFloat32, ncclSum, comm_, stream_),
            "ncclReduceScatter");
    } else {
      float* pad = scratch(maxc * W);
      int64_t off = 0;
      for (int k = 0; k < W; ++k) {
        if (counts[k]) VG_CUDA_OK(cudaMemcpyAsync(pad + k * maxc, buf + off, counts[k] * sizeof(float),
                                                  cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
        off += counts[k];
      }
      check(api_.ncclReduceScatter(pad, pad + r * maxc, size_t(maxc), ncclFloat32, ncclSum, comm_, stream_),
            "ncclReduceScatter");
      const int64_t mine = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
      if (counts[r]) VG_CUDA_OK(cudaMemcpyAsync(buf + mine, pad + r * maxc, counts[r] * sizeof(float),
                                                cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
    }
    wait("reduce_scatter");
  }

  void all_gather(float* buf, const std::vector<int64_t>& counts) override {
    const int64_t total = check_counts("all_gather", counts, opts_.world_size);
    if (total == 0) return;
    live("all_gather");
    const int W = opts_.world_size, r = opts_.rank;
    const int64_t maxc = *std::max_element(counts.begin(), counts.end());
    if (maxc * W == total) {  // even: in place (sendbuff = recvbuff + rank * count)
      check(api_.ncclAllGather(buf + r * maxc, buf, size_t(maxc), ncclFloat32, comm_, stream_), "ncclAllGather");
    } else {
      float* pad = scratch(maxc * W);
      const int64_t mine = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
      if (counts[r]) VG_CUDA_OK(cudaMemcpyAsync(pad + r * maxc, buf + mine, counts[r] * sizeof(float),
                                                cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
      check(api_.ncclAllGather(pad + r * maxc, pad, size_t(maxc), ncclFloat32, comm_, stream_), "ncclAllGather");
      int64_t off = 0;
      for (int k = 0; k < W; ++k) {
        if (counts[k]) VG_CUDA_OK(cudaMemcpyAsync(buf + off, pad + k * maxc, counts[k] * sizeof(float),
                                                  cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
        off += counts[k];
      }
    }
    wait("all_gather");
  }

  void broadcast(float* buf, int64_t n, int root) override { broadcast_impl(buf, n, root, ncclFloat32); }
  void broadcast(uint8_t* buf, int64_t n, int root) override { broadcast_impl(buf, n, root, ncclUint8); }

  void barrier() override {
    live("barrier");
    float* one = scratch(1);
    check(api_.ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce (barrier)");
    wait("barrier");
  }

 private:
  void live(const char* op) {
    VG_CHECK(broken_.empty(), "nccl ", op, " on rank ", opts_.rank, ": the communicator is unusable after an earlier "
             "failure (", broken_, "). Restart the job (resume from the last checkpoint)");
    VG_CUDA_OK(cudaSetDevice(device_), "cudaSetDevice");
  }

  void check(ncclResult_t r, const char* what) {
    if (r == ncclSuccess) return;
    broken_ = std::string(what) + ": " + api_.ncclGetErrorString(r);
    VG_CHECK(false, "nccl ", what, " failed on rank ", opts_.rank, " of ", opts_.world_size, ": ",
             api_.ncclGetErrorString(r), ". Set NCCL_DEBUG=WARN for details");
  }

  // Waits for the stream, polling NCCL's asynchronous error; aborts the communicator after the timeout.
  void wait(const char* op) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) {
        broken_ = std::string(op) + ": " + cudaGetErrorString(q);
        VG_CHECK(false, "nccl ", op, " failed on rank ", opts_.rank, ": ", cudaGetErrorString(q));
      }
      ncclResult_t async = ncclSuccess;
      api_.ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        broken_ = std::string(op) + ": " + api_.ncclGetErrorString(async);
        VG_CHECK(false, "nccl ", op, " failed on rank ", opts_.rank, " of ", opts_.world_size, ": ",
                 api_.ncclGetErrorString(async), ". A peer rank failed; check the other ranks' output");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        broken_ = std::string(op) + ": timed out";
        VG_CHECK(false, "nccl ", op, " timed out on rank ", opts_.rank, " of ", opts_.world_size, " after ",
                 opts_.timeout_s, " s. A peer rank exited or stopped calling collectives; check the other ranks' output");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  float* scratch(int64_t n) {
    if (n > scratch_len_) {
      if (scratch_) {
        VG_CUDA_OK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
        cudaFree(scratch_);
        scratch_ = nullptr;
      }
      VG_CUDA_OK(cudaMalloc(&scratch_, size_t(n) * sizeof(float)), "cudaMalloc of the collective scratch buffer");
      scratch_len_ = n;
    }
    return scratch_;
  }

  template <typename T>
  void all_reduce_impl(T* buf, int64_t n, ReduceOp op, ncclDataType_t type) {
    VG_CHECK_ARG(n >= 0, "all_reduce: n=", n, " must be >= 0");
    if (n == 0) return;
    live("all_reduce");
    const ncclRedOp_t rop = op == ReduceOp::Sum ? ncclSum : op == ReduceOp::Max ? ncclMax : ncclMin;
    check(api_.ncclAllReduce(buf, buf, size_t(n), type, rop, comm_, stream_), "ncclAllReduce");
    wait("all_reduce");
  }

  template <typename T>
  void broadcast_impl(T* buf, int64_t n, int root, ncclDataType_t type) {
    VG_CHECK_ARG(root >= 0 && root < opts_.world_size, "broadcast: root=", root, " must be in [0, worldSize=",
                 opts_.world_size, ")");
    VG_CHECK_ARG(n >= 0, "broadcast: n=", n, " must be >= 0");
    if (n == 0) return;
    live("broadcast");
    check(api_.ncclBroadcast(buf, buf, size_t(n), type, root, comm_, stream_), "ncclBroadcast");
    wait("broadcast");
  }

  RendezvousOptions opts_;
  const Api& api_;
  int device_;
  std::chrono::milliseconds timeout_{0};
  std::unique_ptr<TcpStoreServer> server_;
  std::unique_ptr<TcpStore> store_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  float* scratch_ = nullptr;
  int64_t scratch_len_ = 0;
  std::string broken_;
};

}  // namespace

std::unique_ptr<Communicator> create_nccl_communicator(const RendezvousOptions& opts, int cuda_device) {
  validate_rendezvous(opts);
  nccl::load_api();  // throws the install hint when libnccl.so.2 is missing
  return std::make_unique<NcclCommunicator>(opts, cuda_device);
}

#else

std::unique_ptr<Communicator> create_nccl_communicator(const RendezvousOptions& opts, int cuda_device) {
  validate_rendezvous(opts);
  VG_CHECK(false, kNcclHint, " (this build has no CUDA: rebuild on a machine with the CUDA toolkit)");
}

#endif

}  // namespace vg::dist
