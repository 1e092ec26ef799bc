#include "dist/zero.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "dist/communicator.h"

namespace vg::dist {

namespace {
constexpr int64_t kBlock = 1 << 15;  // the block size clip_grad_norm uses, so partial sums group the same way
}

ShardRange shard_range(int64_t n, int world_size, int rank) {
  VG_CHECK_ARG(rank >= 0 && rank < world_size, "shard_range: rank=", rank, " must be in [0, worldSize=", world_size, ")");
  const std::vector<int64_t> c = shard_counts(n, world_size);
  ShardRange r;
  for (int k = 0; k < rank; ++k) r.begin += c[static_cast<size_t>(k)];
  r.end = r.begin + c[static_cast<size_t>(rank)];
  return r;
}

double squared_norm(const float* g, int64_t n) {
  VG_CHECK_ARG(n >= 0, "squared_norm: n=", n, " must be >= 0");
  if (n == 0) return 0.0;
  VG_CHECK_ARG(g != nullptr, "squared_norm: null buffer");
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(nb), 0.0);
  parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = i0;
      for (; i + 4 <= i1; i += 4) {
        const double a0 = g[i], a1 = g[i + 1], a2 = g[i + 2], a3 = g[i + 3];
        s0 += a0 * a0; s1 += a1 * a1; s2 += a2 * a2; s3 += a3 * a3;
      }
      for (; i < i1; ++i) s0 += double(g[i]) * double(g[i]);
      partial[static_cast<size_t>(b)] = (s0 + s1) + (s2 + s3);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

ClipGradNormResult clip_with_norm(float* g, int64_t n, double total_norm, double max_norm) {
  VG_CHECK_ARG(n >= 0, "clip_with_norm: n=", n, " must be >= 0");
  VG_CHECK_ARG(!std::isnan(max_norm), "clip_with_norm: maxNorm is NaN");
  ClipGradNormResult r;
  r.total_norm = total_norm;
  if (!(max_norm > 0) || std::isinf(max_norm) || !std::isfinite(total_norm)) return r;
  const double coef = max_norm / (total_norm + 1e-6);
  if (coef >= 1.0) return r;
  r.scale = coef;
  if (n == 0) return r;
  VG_CHECK_ARG(g != nullptr, "clip_with_norm: null buffer");
  parallel_for(0, n, kBlock, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) g[i] = static_cast<float>(double(g[i]) * coef);
  });
  return r;
}

}  // namespace vg::dist
