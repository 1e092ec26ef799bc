// The one collective-communication interface of the native core (data-parallel training, ZeRO sharding), with
// two backends: Gloo over TCP for CPU ranks (gloo_communicator.cpp) and NCCL for GPU ranks, loaded with dlopen
// at run time (nccl_communicator.cpp). Ranks meet through a small TCP key/value store (tcp_store.h) served by
// rank 0 at master_addr:master_port, like torchrun's MASTER_ADDR / MASTER_PORT.
//
// Semantics (every rank calls the same collectives in the same order; all operations are in place and blocking):
//   all_reduce(buf, n, op)      every rank ends with op over ranks of buf[i], elementwise (identical bits on all ranks)
//   reduce_scatter(buf, counts) buf holds sum(counts) values laid out rank by rank (rank r's slice starts at
//                               sum(counts[0..r))). Afterwards rank r's slice holds the Sum over ranks of that slice;
//                               the other slices hold unspecified values.
//   all_gather(buf, counts)     each rank contributes its own slice of buf; afterwards every rank holds all slices.
//   broadcast(buf, n, root)     every rank ends with root's buf.
//   barrier()                   returns once every rank has entered it.
// Counts may be uneven (parameter buffers are rarely divisible by the world size); counts.size() == world_size.
// A peer that dies or stops calling collectives makes the others throw vg::Error (naming the operation, this rank
// and the timeout) within the rendezvous timeout instead of hanging; the communicator is unusable afterwards.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vg::dist {

enum class ReduceOp { Sum, Max, Min };

const char* reduce_op_name(ReduceOp op);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* backend() const = 0;

  // All in place. float and double overloads (double is used for exact statistics such as norms and counts).
  virtual void all_reduce(float* buf, int64_t n, ReduceOp op) = 0;
  virtual void all_reduce(double* buf, int64_t n, ReduceOp op) = 0;
  virtual void reduce_scatter(float* buf, const std::vector<int64_t>& counts) = 0;
  virtual void all_gather(float* buf, const std::vector<int64_t>& counts) = 0;
  virtual void broadcast(float* buf, int64_t n, int root) = 0;
  virtual void broadcast(uint8_t* buf, int64_t n, int root) = 0;  // small blobs (ids, metadata)
  virtual void barrier() = 0;
};

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;   // rendezvous and per-collective timeout
  std::string iface_addr;   // optional local address to bind (default: the local address that routes to master_addr)
};

// Throws vg::Error with the install hint when this build has no Gloo.
std::unique_ptr<Communicator> create_gloo_communicator(const RendezvousOptions& opts);
// Throws vg::Error when this build has no CUDA or libnccl.so.2 cannot be loaded. Buffers are device pointers.
std::unique_ptr<Communicator> create_nccl_communicator(const RendezvousOptions& opts, int cuda_device);

// Contiguous shard sizes of n values over world_size ranks: sizes differ by at most 1, the first ranks larger.
std::vector<int64_t> shard_counts(int64_t n, int world_size);

// Checks RendezvousOptions (rank in [0, world), world >= 1, port in [1, 65535], timeout > 0); throws ArgumentError.
void validate_rendezvous(const RendezvousOptions& opts);

// Checks that counts has world_size non-negative entries; returns their sum. `op` names the caller in messages.
int64_t check_counts(const char* op, const std::vector<int64_t>& counts, int world_size);

}  // namespace vg::dist
