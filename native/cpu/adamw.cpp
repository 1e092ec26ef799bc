#include "cpu/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {

template <typename T>
void adamw_step(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamWConfig& cfg) {
  VG_CHECK_ARG(n >= 0, "adamw_step: n=", n, " must be >= 0");
  VG_CHECK_ARG(cfg.step >= 1, "adamw_step: step must be >= 1 (1-based), got ", cfg.step);
  VG_CHECK_ARG(std::isfinite(cfg.lr) && cfg.lr >= 0, "adamw_step: lr must be finite and >= 0, got ", cfg.lr);
  VG_CHECK_ARG(cfg.beta1 >= 0 && cfg.beta1 < 1, "adamw_step: beta1 must be in [0, 1), got ", cfg.beta1);
  VG_CHECK_ARG(cfg.beta2 >= 0 && cfg.beta2 < 1, "adamw_step: beta2 must be in [0, 1), got ", cfg.beta2);
  VG_CHECK_ARG(std::isfinite(cfg.eps) && cfg.eps >= 0, "adamw_step: eps must be finite and >= 0, got ", cfg.eps);
  VG_CHECK_ARG(std::isfinite(cfg.weight_decay) && cfg.weight_decay >= 0,
               "adamw_step: weightDecay must be finite and >= 0, got ", cfg.weight_decay);
  if (n == 0) return;
  VG_CHECK_ARG(params && grads && exp_avg && exp_avg_sq, "adamw_step: null buffer");

  const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
  const double decay = 1.0 - cfg.lr * cfg.weight_decay;
  const double bc1 = 1.0 - std::pow(b1, double(cfg.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, double(cfg.step)));
  const double step_size = cfg.lr / bc1;
  const double inv_bc2_sqrt = 1.0 / bc2_sqrt;
  parallel_for(0, n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double g = double(grads[i]);
      const double m = b1 * double(exp_avg[i]) + (1.0 - b1) * g;
      const double v = b2 * double(exp_avg_sq[i]) + (1.0 - b2) * g * g;
      const double p = double(params[i]) * decay - step_size * m / (std::sqrt(v) * inv_bc2_sqrt + eps);
      exp_avg[i] = static_cast<T>(m);
      exp_avg_sq[i] = static_cast<T>(v);
      params[i] = static_cast<T>(p);
    }
  });
}

namespace {

constexpr int64_t kNormBlock = 1 << 15;

struct Block {
  int64_t buf, begin, end;
};

std::vector<Block> make_blocks(const int64_t* lens, int64_t count) {
  std::vector<Block> blocks;
  for (int64_t k = 0; k < count; ++k) {
    VG_CHECK_ARG(lens[k] >= 0, "clip_grad_norm: buffer ", k, " has negative length ", lens[k]);
    for (int64_t b = 0; b < lens[k]; b += kNormBlock) blocks.push_back({k, b, std::min(lens[k], b + kNormBlock)});
  }
  return blocks;
}

}  // namespace

template <typename T>
double global_grad_norm(const T* const* bufs, const int64_t* lens, int64_t count) {
  VG_CHECK_ARG(count >= 0, "global_grad_norm: count=", count, " must be >= 0");
  const std::vector<Block> blocks = make_blocks(lens, count);
  for (int64_t k = 0; k < count; ++k) VG_CHECK_ARG(lens[k] == 0 || bufs[k], "global_grad_norm: buffer ", k, " is null");
  std::vector<double> partial(blocks.size(), 0.0);
  parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const Block& blk = blocks[b];
      const T* g = bufs[blk.buf];
      // Four interleaved accumulators for throughput; the order is fixed, so the sum is reproducible.
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = blk.begin;
      for (; i + 4 <= blk.end; i += 4) {
        const double a0 = double(g[i]), a1 = double(g[i + 1]), a2 = double(g[i + 2]), a3 = double(g[i + 3]);
        s0 += a0 * a0; s1 += a1 * a1; s2 += a2 * a2; s3 += a3 * a3;
      }
      for (; i < blk.end; ++i) s0 += double(g[i]) * double(g[i]);
      partial[b] = (s0 + s1) + (s2 + s3);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return std::sqrt(total);
}

template <typename T>
ClipGradNormResult clip_grad_norm(T* const* bufs, const int64_t* lens, int64_t count, double max_norm) {
  VG_CHECK_ARG(!std::isnan(max_norm), "clip_grad_norm: maxNorm is NaN");
  ClipGradNormResult r;
  r.total_norm = global_grad_norm<T>(bufs, lens, count);
  if (!(max_norm > 0) || std::isinf(max_norm) || !std::isfinite(r.total_norm)) return r;
  const double coef = max_norm / (r.total_norm + 1e-6);
  if (coef >= 1.0) return r;
  r.scale = coef;
  const std::vector<Block> blocks = make_blocks(lens, count);
  parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* g = bufs[blocks[b].buf];
      for (int64_t i = blocks[b].begin; i < blocks[b].end; ++i) g[i] = static_cast<T>(double(g[i]) * coef);
    }
  });
  return r;
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamWConfig&);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, const AdamWConfig&);
template double global_grad_norm<float>(const float* const*, const int64_t*, int64_t);
template double global_grad_norm<double>(const double* const*, const int64_t*, int64_t);
template ClipGradNormResult clip_grad_norm<float>(float* const*, const int64_t*, int64_t, double);
template ClipGradNormResult clip_grad_norm<double>(double* const*, const int64_t*, int64_t, double);

}  // namespace vg
