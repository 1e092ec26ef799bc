// AdamW and gradient-norm kernels: see adamw.h.
#include <cmath>

#include "cuda/adamw.h"
#include "cuda/device_common.cuh"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kNormBlock = 1 << 15;  // elements per pass-1 partial (matches the CPU's block size)
constexpr int kReduceThreads = 1024;

struct AdamWConsts {
  double b1, b2, eps, decay, step_size, inv_bc2_sqrt;
};

__device__ __forceinline__ double scaled_grad(float g, const double* scale) {
  if (!scale) return static_cast<double>(g);
  const double s = *scale;
  return s == 1.0 ? static_cast<double>(g) : static_cast<double>(static_cast<float>(static_cast<double>(g) * s));
}

__global__ void adamw_kernel(float* __restrict__ master, const float* __restrict__ grads, float* __restrict__ m_buf,
                             float* __restrict__ v_buf, bf16* __restrict__ model, int64_t n, AdamWConsts c,
                             const double* __restrict__ grad_scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double g = scaled_grad(grads[i], grad_scale);
    const double m = c.b1 * static_cast<double>(m_buf[i]) + (1.0 - c.b1) * g;
    const double v = c.b2 * static_cast<double>(v_buf[i]) + (1.0 - c.b2) * g * g;
    const double p = static_cast<double>(master[i]) * c.decay - c.step_size * m / (sqrt(v) * c.inv_bc2_sqrt + c.eps);
    m_buf[i] = static_cast<float>(m);
    v_buf[i] = static_cast<float>(v);
    const float pf = static_cast<float>(p);
    master[i] = pf;
    if (model) model[i] = __float2bfloat16_rn(pf);
  }
}

// Pass 1: partial[b] = Σ g² over elements [b·kNormBlock, (b+1)·kNormBlock), one block per partial.
__global__ void sumsq_partials_kernel(const float* __restrict__ g, int64_t n, double* __restrict__ partial) {
  __shared__ double red[32];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kNormBlock;
  const int64_t end = begin + kNormBlock < n ? begin + kNormBlock : n;
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double x = static_cast<double>(g[i]);
    s += x * x;
  }
  s = dev::block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Pass 2 (one block): total = sqrt(Σ partials) in a fixed order, and the clip factor.
__global__ void norm_finish_kernel(const double* __restrict__ partial, int64_t count, double max_norm,
                                   double* total_norm, double* scale) {
  __shared__ double red[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = dev::block_sum(s, red);
  if (threadIdx.x == 0) {
    const double total = sqrt(s);
    double coef = 1.0;
    if (max_norm > 0 && !isinf(max_norm) && isfinite(total)) {
      const double c = max_norm / (total + 1e-6);
      if (c < 1.0) coef = c;
    }
    *total_norm = total;
    *scale = coef;
  }
}

__global__ void scale_kernel(float* __restrict__ g, int64_t n, const double* __restrict__ scale) {
  const double s = *scale;
  if (s == 1.0) return;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    g[i] = static_cast<float>(static_cast<double>(g[i]) * s);
}

}  // namespace

void adamw_step(float* master, const float* grads, float* exp_avg, float* exp_avg_sq, bf16* model, int64_t n,
                const AdamWConfig& cfg, const double* grad_scale, cudaStream_t stream) {
  VG_CHECK_ARG(n >= 0, "cuda::adamw_step: n=", n, " must be >= 0");
  VG_CHECK_ARG(cfg.step >= 1, "cuda::adamw_step: step must be >= 1 (1-based), got ", cfg.step);
  VG_CHECK_ARG(std::isfinite(cfg.lr) && cfg.lr >= 0, "cuda::adamw_step: lr must be finite and >= 0, got ", cfg.lr);
  VG_CHECK_ARG(cfg.beta1 >= 0 && cfg.beta1 < 1, "cuda::adamw_step: beta1 must be in [0, 1), got ", cfg.beta1);
  VG_CHECK_ARG(cfg.beta2 >= 0 && cfg.beta2 < 1, "cuda::adamw_step: beta2 must be in [0, 1), got ", cfg.beta2);
  VG_CHECK_ARG(std::isfinite(cfg.eps) && cfg.eps >= 0, "cuda::adamw_step: eps must be finite and >= 0, got ", cfg.eps);
  VG_CHECK_ARG(std::isfinite(cfg.weight_decay) && cfg.weight_decay >= 0,
               "cuda::adamw_step: weightDecay must be finite and >= 0, got ", cfg.weight_decay);
  if (n == 0) return;
  VG_CHECK_ARG(master && grads && exp_avg && exp_avg_sq, "cuda::adamw_step: null buffer");
  // The step constants exactly as the CPU forms them (host double).
  AdamWConsts c;
  c.b1 = cfg.beta1;
  c.b2 = cfg.beta2;
  c.eps = cfg.eps;
  c.decay = 1.0 - cfg.lr * cfg.weight_decay;
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(cfg.step));
  c.step_size = cfg.lr / bc1;
  c.inv_bc2_sqrt = 1.0 / std::sqrt(1.0 - std::pow(cfg.beta2, double(cfg.step)));
  adamw_kernel<<<grid_for(n, kThreads, 4096), kThreads, 0, stream>>>(master, grads, exp_avg, exp_avg_sq, model, n, c,
                                                                     grad_scale);
  VG_CUDA_CHECK_LAUNCH();
}

void grad_norm_clip_scale(const float* grads, int64_t n, double max_norm, double* total_norm, double* scale,
                          cudaStream_t stream) {
  VG_CHECK_ARG(n >= 0, "cuda::grad_norm_clip_scale: n=", n, " must be >= 0");
  VG_CHECK_ARG(!std::isnan(max_norm), "cuda::clip_grad_norm: maxNorm is NaN");
  VG_CHECK_ARG(total_norm && scale && (n == 0 || grads), "cuda::grad_norm_clip_scale: null pointer");
  const int64_t blocks = (n + kNormBlock - 1) / kNormBlock;
  VG_CHECK_ARG(blocks <= 0x7fffffff, "cuda::grad_norm_clip_scale: n=", n, " is too large");
  Scratch partial(static_cast<size_t>(blocks > 0 ? blocks : 1) * sizeof(double), stream);
  if (blocks > 0) {
    sumsq_partials_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(grads, n, partial.as<double>());
    VG_CUDA_CHECK_LAUNCH();
  }
  norm_finish_kernel<<<1, kReduceThreads, 0, stream>>>(partial.as<double>(), blocks, max_norm, total_norm, scale);
  VG_CUDA_CHECK_LAUNCH();
}

ClipGradNormResult clip_grad_norm(float* grads, int64_t n, double max_norm, cudaStream_t stream) {
  Scratch out(2 * sizeof(double), stream);
  double* d = out.as<double>();
  grad_norm_clip_scale(grads, n, max_norm, d, d + 1, stream);
  if (n > 0) {
    scale_kernel<<<grid_for(n, kThreads, 4096), kThreads, 0, stream>>>(grads, n, d + 1);
    VG_CUDA_CHECK_LAUNCH();
  }
  double h[2] = {0, 1};
  VG_CUDA_CHECK(cudaMemcpyAsync(h, d, sizeof(h), cudaMemcpyDeviceToHost, stream));
  VG_CUDA_CHECK(cudaStreamSynchronize(stream));
  ClipGradNormResult r;
  r.total_norm = h[0];
  r.scale = h[1];
  return r;
}

}  // namespace cuda
}  // namespace vg
