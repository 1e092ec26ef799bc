// Helpers for ZeRO-style sharding over the one contiguous parameter/gradient buffer (llm.c layout): which part of
// a range a rank owns, the sum of squares of a shard (for the global gradient norm), and clipping with a norm
// measured across ranks.
//
// shard_range(n, world, rank): [begin, end) of rank's contiguous shard of n values, sizes from shard_counts (differ
//   by at most 1, first ranks larger).
// squared_norm(g, n) = Σ g[i]² in double, over fixed 32768-element blocks whose partial sums are added in order, so
//   the value does not depend on the thread count (the same blocking as clip_grad_norm in cpu/adamw.h).
// clip_with_norm(g, n, total_norm, max_norm): clip_grad_norm's formula with a norm computed elsewhere (the global
//   norm over all ranks): when max_norm is finite and > 0 and total_norm is finite, g *= coef with
//   coef = max_norm / (total_norm + 1e-6) if coef < 1 (each element rounded once from double), bit-identical to what
//   clip_grad_norm does to the same elements given the same total.
#pragma once
#include <cstdint>

#include "cpu/adamw.h"

namespace vg::dist {

struct ShardRange {
  int64_t begin = 0, end = 0;
};

ShardRange shard_range(int64_t n, int world_size, int rank);

double squared_norm(const float* g, int64_t n);

ClipGradNormResult clip_with_norm(float* g, int64_t n, double total_norm, double max_norm);

}  // namespace vg::dist
