// Fused GRPO loss kernels: see grpo_loss.h. The per-token math mirrors native/cpu/grpo_loss.cpp line for line.
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/grpo_loss.h"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSums = 10;  // loss, pg, kl_agg, ent_agg, clip_low, clip_high, clip_dual, kl, ratio, ppo_kl

struct DevCfg {
  int64_t N, L;
  double lo_b, hi_b, c, beta, ecoef, scale, tok_norm, seq_norm;
  KlEstimator kl_est;
  LossAgg agg;
  bool gspo, cispo, dual, has_ref, has_ent;
};

__device__ __forceinline__ double clamp_d(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

__device__ __forceinline__ void max_with_grad(double a, double da, double b, double db, double& v, double& dv) {
  if (a > b) { v = a; dv = da; }
  else if (b > a) { v = b; dv = db; }
  else { v = a; dv = 0.5 * (da + db); }
}

__device__ __forceinline__ void min_with_grad(double a, double da, double b, double db, double& v, double& dv) {
  if (a < b) { v = a; dv = da; }
  else if (b < a) { v = b; dv = db; }
  else { v = a; dv = 0.5 * (da + db); }
}

__device__ __forceinline__ void kl_with_grad(KlEstimator est, double lp, double lr, double& k, double& dk) {
  const double d = lp - lr;
  switch (est) {
    case KlEstimator::K1: k = d; dk = 1; break;
    case KlEstimator::K2: k = 0.5 * d * d; dk = d; break;
    case KlEstimator::Abs: k = fabs(d); dk = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0); break;
    case KlEstimator::K3: {
      const double x0 = lr - lp;
      const double x = clamp_d(x0, -20.0, 20.0);
      const double dx = (x0 >= -20.0 && x0 <= 20.0) ? -1.0 : 0.0;
      const double ex = exp(x);
      const double k0 = ex - x - 1.0;
      k = clamp_d(k0, -10.0, 10.0);
      dk = (k0 >= -10.0 && k0 <= 10.0) ? (ex - 1.0) * dx : 0.0;
      break;
    }
  }
}

template <typename M>
__global__ void mask_sums_kernel(DevCfg cfg, const float* __restrict__ lp, const float* __restrict__ lo,
                                 const M* __restrict__ mask, double* __restrict__ msum, double* __restrict__ dsum) {
  __shared__ double red[32];
  const int64_t i = blockIdx.x;
  double ms = 0, ds = 0;
  for (int64_t t = i * cfg.L + threadIdx.x; t < (i + 1) * cfg.L; t += blockDim.x) {
    const double m = static_cast<double>(mask[t]);
    if (m == 0) continue;
    ms += m;
    if (cfg.gspo) ds += m * (static_cast<double>(lp[t]) - static_cast<double>(lo[t]));
  }
  ms = dev::block_sum(ms, red);
  ds = dev::block_sum(ds, red);
  if (threadIdx.x == 0) msum[i] = ms, dsum[i] = ds;
}

// One block: counts[0] = Σ msum (tokens), counts[1] = #{msum > 0} (valid sequences).
__global__ void counts_kernel(const double* __restrict__ msum, int64_t N, double* __restrict__ counts) {
  __shared__ double red[32];
  double nt = 0, ns = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    nt += msum[i];
    ns += msum[i] > 0 ? 1.0 : 0.0;
  }
  nt = dev::block_sum(nt, red);
  ns = dev::block_sum(ns, red);
  if (threadIdx.x == 0) counts[0] = nt, counts[1] = ns;
}

template <typename M>
__global__ void loss_kernel(DevCfg cfg, const float* __restrict__ lp, const float* __restrict__ lo,
                            const float* __restrict__ lr, const float* __restrict__ adv, const M* __restrict__ mask,
                            const float* __restrict__ ent, const double* __restrict__ msum,
                            const double* __restrict__ dsum, const double* __restrict__ counts,
                            float* __restrict__ grad, float* __restrict__ grad_ent, double* __restrict__ seq_sums) {
  __shared__ double red[32];
  const int64_t i = blockIdx.x;
  const double ntok = counts[0], nseq = counts[1];
  const double tok_den = cfg.tok_norm > 0 ? cfg.tok_norm : ntok;
  const double seq_den = cfg.seq_norm > 0 ? cfg.seq_norm : nseq;
  double f = 0.0;
  switch (cfg.agg) {
    case LossAgg::TokenMean: f = tok_den > 0 ? 1.0 / tok_den : 0.0; break;
    case LossAgg::SeqMeanTokenMean: f = (msum[i] > 0 && seq_den > 0) ? 1.0 / (msum[i] * seq_den) : 0.0; break;
    case LossAgg::SeqMeanTokenSum: f = seq_den > 0 ? 1.0 / seq_den : 0.0; break;
    case LossAgg::SeqMeanTokenSumNorm: f = 1.0 / cfg.scale; break;
  }
  const double A = static_cast<double>(adv[i]);
  const double log_s = dsum[i] / fmax(msum[i], 1.0);
  double s[kSums] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t t = i * cfg.L + threadIdx.x; t < (i + 1) * cfg.L; t += blockDim.x) {
    const double m = static_cast<double>(mask[t]);
    if (m == 0) {
      grad[t] = 0.f;
      if (grad_ent) grad_ent[t] = 0.f;
      continue;
    }
    const double p = static_cast<double>(lp[t]), q = static_cast<double>(lo[t]);
    double r, dr;
    if (cfg.gspo) {
      r = exp(fmin(log_s, 10.0));
      dr = log_s <= 10.0 ? r : 0.0;
    } else {
      const double d = p - q;
      r = exp(clamp_d(d, -20.0, 20.0));
      dr = (d >= -20.0 && d <= 20.0) ? r : 0.0;
    }
    const double L1 = -A * r, dL1 = -A * dr;
    const double rc = clamp_d(r, cfg.lo_b, cfg.hi_b);
    const double L2 = -A * rc, dL2 = (r >= cfg.lo_b && r <= cfg.hi_b) ? dL1 : 0.0;
    double Lc, dLc;
    max_with_grad(L1, dL1, L2, dL2, Lc, dLc);
    double Lt = Lc, dLt = dLc;
    bool dual_active = false;
    if (cfg.cispo) {
      Lt = -rc * A * p;
      dLt = -rc * A;
    } else if (cfg.dual && A < 0) {
      const double L3 = -A * cfg.c;
      dual_active = Lc > L3;
      min_with_grad(Lc, dLc, L3, 0.0, Lt, dLt);
    }
    double k = 0, dk = 0;
    if (cfg.has_ref) kl_with_grad(cfg.kl_est, p, static_cast<double>(lr[t]), k, dk);
    const double h = cfg.has_ent ? static_cast<double>(ent[t]) : 0.0;
    const double ell = Lt + cfg.beta * k - cfg.ecoef * h;
    const double w = m * f;
    grad[t] = static_cast<float>(w * (dLt + cfg.beta * dk));
    if (grad_ent) grad_ent[t] = static_cast<float>(-cfg.ecoef * w);
    s[0] += m * ell;
    s[1] += m * Lt;
    s[2] += m * k;
    s[3] += m * h;
    s[4] += ((cfg.cispo || A < 0) && r < cfg.lo_b) ? m : 0.0;
    s[5] += ((cfg.cispo || A > 0) && r > cfg.hi_b) ? m : 0.0;
    s[6] += dual_active ? m : 0.0;
    s[7] += m * k;
    s[8] += m * r;
    s[9] += m * (q - p);
  }
#pragma unroll
  for (int j = 0; j < kSums; ++j) {
    const double v = dev::block_sum(s[j], red);
    if (threadIdx.x == 0) seq_sums[i * kSums + j] = j < 4 ? v * f : v;
  }
}

// One block: totals[j] = Σ_i seq_sums[i, j] in a fixed order.
__global__ void totals_kernel(const double* __restrict__ seq_sums, int64_t N, double* __restrict__ totals) {
  __shared__ double red[32];
  for (int j = 0; j < kSums; ++j) {
    double v = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) v += seq_sums[i * kSums + j];
    v = dev::block_sum(v, red);
    if (threadIdx.x == 0) totals[j] = v;
  }
}

}  // namespace

template <typename M>
GrpoLossStats grpo_loss(const GrpoLossConfig& cfg, const float* lp, const float* lo, const float* lr,
                        const float* adv, const M* mask, const float* ent, float* grad, float* grad_ent,
                        cudaStream_t stream) {
  const int64_t N = cfg.num_sequences, L = cfg.seq_len;
  VG_CHECK_ARG(N >= 0 && L >= 0, "cuda::grpo_loss: numSequences=", N, " and seqLen=", L, " must be >= 0");
  VG_CHECK_ARG(N <= 0x7fffffff, "cuda::grpo_loss: numSequences=", N, " exceeds the grid limit");
  VG_CHECK_ARG(std::isfinite(cfg.clip_low) && cfg.clip_low >= 0, "cuda::grpo_loss: clipLow must be >= 0, got ", cfg.clip_low);
  VG_CHECK_ARG(std::isfinite(cfg.clip_high) && cfg.clip_high >= 0, "cuda::grpo_loss: clipHigh must be >= 0, got ",
               cfg.clip_high);
  VG_CHECK_ARG(cfg.dual_clip == 0 || (std::isfinite(cfg.dual_clip) && cfg.dual_clip > 1),
               "cuda::grpo_loss: dualClip must be > 1 (or 0 for off), got ", cfg.dual_clip);
  VG_CHECK_ARG(std::isfinite(cfg.kl_coef) && cfg.kl_coef >= 0, "cuda::grpo_loss: klCoef must be >= 0, got ", cfg.kl_coef);
  const bool empty = N * L == 0;
  VG_CHECK_ARG(cfg.kl_coef == 0 || lr != nullptr || empty, "cuda::grpo_loss: klCoef=", cfg.kl_coef,
               " > 0 needs refLogprobs");
  VG_CHECK_ARG(std::isfinite(cfg.entropy_coef), "cuda::grpo_loss: entropyCoef must be finite, got ", cfg.entropy_coef);
  VG_CHECK_ARG(cfg.entropy_coef == 0 || ent != nullptr || empty, "cuda::grpo_loss: entropyCoef=", cfg.entropy_coef,
               " != 0 needs entropy");
  VG_CHECK_ARG(std::isfinite(cfg.loss_scale) && cfg.loss_scale >= 0,
               "cuda::grpo_loss: lossScale must be > 0 (or 0 for seqLen), got ", cfg.loss_scale);
  VG_CHECK_ARG(std::isfinite(cfg.token_count_normalizer) && cfg.token_count_normalizer >= 0,
               "cuda::grpo_loss: tokenCountNormalizer must be > 0 (or 0 for the local count), got ",
               cfg.token_count_normalizer);
  VG_CHECK_ARG(std::isfinite(cfg.sequence_count_normalizer) && cfg.sequence_count_normalizer >= 0,
               "cuda::grpo_loss: sequenceCountNormalizer must be > 0 (or 0 for the local count), got ",
               cfg.sequence_count_normalizer);
  GrpoLossStats st;
  if (empty) return st;
  VG_CHECK_ARG(lp && lo && mask && grad && adv, "cuda::grpo_loss: null input or output pointer");

  DevCfg d;
  d.N = N;
  d.L = L;
  d.lo_b = 1.0 - cfg.clip_low;
  d.hi_b = 1.0 + cfg.clip_high;
  d.c = cfg.dual_clip;
  d.beta = cfg.kl_coef;
  d.ecoef = cfg.entropy_coef;
  d.scale = cfg.loss_scale > 0 ? cfg.loss_scale : (L > 0 ? double(L) : 1.0);
  d.tok_norm = cfg.token_count_normalizer;
  d.seq_norm = cfg.sequence_count_normalizer;
  d.kl_est = cfg.kl_estimator;
  d.agg = cfg.loss_agg;
  d.gspo = cfg.ratio_level == RatioLevel::Sequence;
  d.cispo = cfg.policy_loss == PolicyLoss::Cispo;
  d.dual = cfg.dual_clip > 0;
  d.has_ref = lr != nullptr;
  d.has_ent = ent != nullptr;

  // Scratch: msum [N], dsum [N], counts [2], seq_sums [N, 10], totals [10].
  Scratch scratch(static_cast<size_t>(N * (2 + kSums) + 2 + kSums) * sizeof(double), stream);
  double* msum = scratch.as<double>();
  double* dsum = msum + N;
  double* counts = dsum + N;
  double* seq_sums = counts + 2;
  double* totals = seq_sums + N * kSums;
  const unsigned grid = static_cast<unsigned>(N);
  mask_sums_kernel<M><<<grid, kThreads, 0, stream>>>(d, lp, lo, mask, msum, dsum);
  VG_CUDA_CHECK_LAUNCH();
  counts_kernel<<<1, 1024, 0, stream>>>(msum, N, counts);
  VG_CUDA_CHECK_LAUNCH();
  loss_kernel<M><<<grid, kThreads, 0, stream>>>(d, lp, lo, lr, adv, mask, ent, msum, dsum, counts, grad, grad_ent,
                                                seq_sums);
  VG_CUDA_CHECK_LAUNCH();
  totals_kernel<<<1, 1024, 0, stream>>>(seq_sums, N, totals);
  VG_CUDA_CHECK_LAUNCH();
  double h[2 + kSums];
  VG_CUDA_CHECK(cudaMemcpyAsync(h, counts, 2 * sizeof(double), cudaMemcpyDeviceToHost, stream));
  VG_CUDA_CHECK(cudaMemcpyAsync(h + 2, totals, kSums * sizeof(double), cudaMemcpyDeviceToHost, stream));
  VG_CUDA_CHECK(cudaStreamSynchronize(stream));
  const double ntok = h[0], nseq = h[1];
  const double* tot = h + 2;
  st.loss = tot[0];
  st.pg_loss = tot[1];
  st.kl_loss = tot[2];
  st.entropy_loss = tot[3];
  st.num_tokens = ntok;
  st.num_valid_sequences = nseq;
  if (ntok > 0) {
    st.clip_frac_low = tot[4] / ntok;
    st.clip_frac_high = tot[5] / ntok;
    st.clip_frac_dual = tot[6] / ntok;
    st.kl = tot[7] / ntok;
    st.ratio_mean = tot[8] / ntok;
    st.ppo_kl = tot[9] / ntok;
  }
  return st;
}

template GrpoLossStats grpo_loss<uint8_t>(const GrpoLossConfig&, const float*, const float*, const float*,
                                          const float*, const uint8_t*, const float*, float*, float*, cudaStream_t);
template GrpoLossStats grpo_loss<float>(const GrpoLossConfig&, const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, cudaStream_t);

}  // namespace cuda
}  // namespace vg
