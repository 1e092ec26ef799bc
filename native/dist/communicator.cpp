// Backend-independent helpers of communicator.h: shard sizes and argument checks shared by both backends.
#include "dist/communicator.h"

#include "core/error.h"

namespace vg::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

std::vector<int64_t> shard_counts(int64_t n, int world_size) {
  VG_CHECK_ARG(n >= 0, "shard_counts: n=", n, " must be >= 0");
  VG_CHECK_ARG(world_size >= 1, "shard_counts: worldSize=", world_size, " must be >= 1");
  std::vector<int64_t> c(static_cast<size_t>(world_size), n / world_size);
  for (int64_t r = 0; r < n % world_size; ++r) c[static_cast<size_t>(r)] += 1;
  return c;
}

void validate_rendezvous(const RendezvousOptions& o) {
  VG_CHECK_ARG(o.world_size >= 1, "worldSize=", o.world_size, " must be >= 1");
  VG_CHECK_ARG(o.rank >= 0 && o.rank < o.world_size, "rank=", o.rank, " must be in [0, worldSize=", o.world_size, ")");
  VG_CHECK_ARG(o.master_port >= 1 && o.master_port <= 65535, "masterPort=", o.master_port, " must be in [1, 65535]");
  VG_CHECK_ARG(!o.master_addr.empty(), "masterAddr must not be empty");
  VG_CHECK_ARG(o.timeout_s > 0 && o.timeout_s <= 1e6, "timeout=", o.timeout_s, " s must be in (0, 1e6]");
}

int64_t check_counts(const char* op, const std::vector<int64_t>& counts, int world_size) {
  VG_CHECK_ARG(static_cast<int64_t>(counts.size()) == world_size, op, ": counts has ", counts.size(),
               " entries, expected worldSize=", world_size);
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    VG_CHECK_ARG(counts[r] >= 0, op, ": counts[", r, "]=", counts[r], " must be >= 0");
    total += counts[r];
  }
  return total;
}

}  // namespace vg::dist
