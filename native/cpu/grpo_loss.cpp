#include "cpu/grpo_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {
namespace {

// Masked per-sequence sums; added in sequence order at the end so the result is thread-count independent.
struct SeqSums {
  double loss = 0, pg = 0, kl_agg = 0, ent_agg = 0;  // Σ_t m·x (multiplied by f_i afterwards)
  double clip_low = 0, clip_high = 0, clip_dual = 0, kl = 0, ratio = 0, ppo_kl = 0;  // Σ_t m·x for the stats
};

inline double clamp_d(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

// max(a, b) with torch.maximum's backward: the larger side gets the gradient, a tie splits it in half.
inline void max_with_grad(double a, double da, double b, double db, double& v, double& dv) {
  if (a > b) { v = a; dv = da; }
  else if (b > a) { v = b; dv = db; }
  else { v = a; dv = 0.5 * (da + db); }
}

inline void min_with_grad(double a, double da, double b, double db, double& v, double& dv) {
  if (a < b) { v = a; dv = da; }
  else if (b < a) { v = b; dv = db; }
  else { v = a; dv = 0.5 * (da + db); }
}

// KL estimator value and its derivative w.r.t. lp, for d = lp − lr.
inline void kl_with_grad(KlEstimator est, double lp, double lr, double& k, double& dk) {
  const double d = lp - lr;
  switch (est) {
    case KlEstimator::K1: k = d; dk = 1; break;
    case KlEstimator::K2: k = 0.5 * d * d; dk = d; break;
    case KlEstimator::Abs: k = std::fabs(d); dk = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0); break;
    case KlEstimator::K3: {
      const double x0 = lr - lp;
      const double x = clamp_d(x0, -20.0, 20.0);
      const double dx = (x0 >= -20.0 && x0 <= 20.0) ? -1.0 : 0.0;
      const double ex = std::exp(x);
      const double k0 = ex - x - 1.0;
      k = clamp_d(k0, -10.0, 10.0);
      dk = (k0 >= -10.0 && k0 <= 10.0) ? (ex - 1.0) * dx : 0.0;
      break;
    }
  }
}

}  // namespace

template <typename T, typename M>
GrpoLossStats grpo_loss(const GrpoLossConfig& cfg, const T* lp, const T* lo, const T* lr, const T* adv, const M* mask,
                        const T* ent, T* grad, T* grad_ent) {
  const int64_t N = cfg.num_sequences, L = cfg.seq_len;
  VG_CHECK_ARG(N >= 0 && L >= 0, "grpo_loss: numSequences=", N, " and seqLen=", L, " must be >= 0");
  VG_CHECK_ARG(std::isfinite(cfg.clip_low) && cfg.clip_low >= 0, "grpo_loss: clipLow must be >= 0, got ", cfg.clip_low);
  VG_CHECK_ARG(std::isfinite(cfg.clip_high) && cfg.clip_high >= 0, "grpo_loss: clipHigh must be >= 0, got ",
               cfg.clip_high);
  VG_CHECK_ARG(cfg.dual_clip == 0 || (std::isfinite(cfg.dual_clip) && cfg.dual_clip > 1),
               "grpo_loss: dualClip must be > 1 (or 0 for off), got ", cfg.dual_clip);
  VG_CHECK_ARG(std::isfinite(cfg.kl_coef) && cfg.kl_coef >= 0, "grpo_loss: klCoef must be >= 0, got ", cfg.kl_coef);
  const bool empty = N * L == 0;  // empty typed arrays may have null data: nothing to read then
  VG_CHECK_ARG(cfg.kl_coef == 0 || lr != nullptr || empty, "grpo_loss: klCoef=", cfg.kl_coef, " > 0 needs refLogprobs");
  VG_CHECK_ARG(std::isfinite(cfg.entropy_coef), "grpo_loss: entropyCoef must be finite, got ", cfg.entropy_coef);
  VG_CHECK_ARG(cfg.entropy_coef == 0 || ent != nullptr || empty, "grpo_loss: entropyCoef=", cfg.entropy_coef,
               " != 0 needs entropy");
  VG_CHECK_ARG(std::isfinite(cfg.loss_scale) && cfg.loss_scale >= 0, "grpo_loss: lossScale must be > 0 (or 0 for seqLen), got ",
               cfg.loss_scale);
  VG_CHECK_ARG(std::isfinite(cfg.token_count_normalizer) && cfg.token_count_normalizer >= 0,
               "grpo_loss: tokenCountNormalizer must be > 0 (or 0 for the local count), got ", cfg.token_count_normalizer);
  VG_CHECK_ARG(std::isfinite(cfg.sequence_count_normalizer) && cfg.sequence_count_normalizer >= 0,
               "grpo_loss: sequenceCountNormalizer must be > 0 (or 0 for the local count), got ", cfg.sequence_count_normalizer);
  if (!empty) VG_CHECK_ARG(lp && lo && mask && grad && adv, "grpo_loss: null input or output pointer");

  // Pass 1: per-sequence mask sums (and Σ m·Δ for the GSPO ratio).
  std::vector<double> msum(static_cast<size_t>(N), 0.0), dsum(static_cast<size_t>(N), 0.0);
  const bool gspo = cfg.ratio_level == RatioLevel::Sequence;
  parallel_for(0, N, std::max<int64_t>(1, 8192 / std::max<int64_t>(L, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double ms = 0, ds = 0;
      for (int64_t t = i * L; t < (i + 1) * L; ++t) {
        const double m = static_cast<double>(mask[t]);
        if (m == 0) continue;
        ms += m;
        if (gspo) ds += m * (double(lp[t]) - double(lo[t]));
      }
      msum[i] = ms;
      dsum[i] = ds;
    }
  });
  double ntok = 0, nseq = 0;
  for (int64_t i = 0; i < N; ++i) {
    ntok += msum[i];
    if (msum[i] > 0) nseq += 1;
  }

  const double tok_den = cfg.token_count_normalizer > 0 ? cfg.token_count_normalizer : ntok;
  const double seq_den = cfg.sequence_count_normalizer > 0 ? cfg.sequence_count_normalizer : nseq;
  const double scale = cfg.loss_scale > 0 ? cfg.loss_scale : (L > 0 ? double(L) : 1.0);
  auto seq_factor = [&](int64_t i) -> double {
    switch (cfg.loss_agg) {
      case LossAgg::TokenMean: return tok_den > 0 ? 1.0 / tok_den : 0.0;
      case LossAgg::SeqMeanTokenMean: return (msum[i] > 0 && seq_den > 0) ? 1.0 / (msum[i] * seq_den) : 0.0;
      case LossAgg::SeqMeanTokenSum: return seq_den > 0 ? 1.0 / seq_den : 0.0;
      case LossAgg::SeqMeanTokenSumNorm: return 1.0 / scale;
    }
    return 0.0;
  };

  const double lo_b = 1.0 - cfg.clip_low, hi_b = 1.0 + cfg.clip_high;
  const double c = cfg.dual_clip, beta = cfg.kl_coef, ecoef = cfg.entropy_coef;
  const bool dual = c > 0;
  std::vector<SeqSums> sums(static_cast<size_t>(N));

  // Pass 2: per-token loss, gradient and statistics.
  parallel_for(0, N, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double A = double(adv[i]);
      const double f = seq_factor(i);
      // GSPO: value of the clamped sequence log-ratio, shared by all tokens of the sequence.
      const double log_s = dsum[i] / std::max(msum[i], 1.0);
      SeqSums s;
      for (int64_t t = i * L; t < (i + 1) * L; ++t) {
        const double m = static_cast<double>(mask[t]);
        if (m == 0) {
          grad[t] = T(0);
          if (grad_ent) grad_ent[t] = T(0);
          continue;
        }
        const double p = double(lp[t]), q = double(lo[t]);
        double r, dr;
        if (gspo) {
          r = std::exp(std::min(log_s, 10.0));
          dr = log_s <= 10.0 ? r : 0.0;
        } else {
          const double d = p - q;
          r = std::exp(clamp_d(d, -20.0, 20.0));
          dr = (d >= -20.0 && d <= 20.0) ? r : 0.0;
        }
        const double L1 = -A * r, dL1 = -A * dr;
        const double rc = clamp_d(r, lo_b, hi_b);
        const double L2 = -A * rc, dL2 = (r >= lo_b && r <= hi_b) ? dL1 : 0.0;
        double Lc, dLc;
        max_with_grad(L1, dL1, L2, dL2, Lc, dLc);
        double Lt = Lc, dLt = dLc;
        bool dual_active = false;
        const bool cispo = cfg.policy_loss == PolicyLoss::Cispo;
        if (cispo) {  // −sg(clip(ρ))·A·lp: the clipped ratio is a constant weight on the log-prob
          Lt = -rc * A * p;
          dLt = -rc * A;
        } else if (dual && A < 0) {
          const double L3 = -A * c;
          dual_active = Lc > L3;
          min_with_grad(Lc, dLc, L3, 0.0, Lt, dLt);
        }
        double k = 0, dk = 0;
        if (lr) kl_with_grad(cfg.kl_estimator, p, double(lr[t]), k, dk);
        const double h = ent ? double(ent[t]) : 0.0;
        const double ell = Lt + beta * k - ecoef * h;
        const double w = m * f;
        grad[t] = static_cast<T>(w * (dLt + beta * dk));
        if (grad_ent) grad_ent[t] = static_cast<T>(-ecoef * w);
        s.loss += m * ell;
        s.pg += m * Lt;
        s.kl_agg += m * k;
        s.ent_agg += m * h;
        s.clip_high += ((cispo || A > 0) && r > hi_b) ? m : 0.0;
        s.clip_low += ((cispo || A < 0) && r < lo_b) ? m : 0.0;
        s.clip_dual += dual_active ? m : 0.0;
        s.kl += m * k;
        s.ratio += m * r;
        s.ppo_kl += m * (q - p);
      }
      s.loss *= f;
      s.pg *= f;
      s.kl_agg *= f;
      s.ent_agg *= f;
      sums[i] = s;
    }
  });

  GrpoLossStats st;
  SeqSums tot;
  for (int64_t i = 0; i < N; ++i) {
    const SeqSums& s = sums[i];
    tot.loss += s.loss; tot.pg += s.pg; tot.kl_agg += s.kl_agg; tot.ent_agg += s.ent_agg;
    tot.clip_low += s.clip_low; tot.clip_high += s.clip_high; tot.clip_dual += s.clip_dual;
    tot.kl += s.kl; tot.ratio += s.ratio; tot.ppo_kl += s.ppo_kl;
  }
  st.loss = tot.loss;
  st.pg_loss = tot.pg;
  st.kl_loss = tot.kl_agg;
  st.entropy_loss = tot.ent_agg;
  st.num_tokens = ntok;
  st.num_valid_sequences = nseq;
  if (ntok > 0) {
    st.clip_frac_low = tot.clip_low / ntok;
    st.clip_frac_high = tot.clip_high / ntok;
    st.clip_frac_dual = tot.clip_dual / ntok;
    st.kl = tot.kl / ntok;
    st.ratio_mean = tot.ratio / ntok;
    st.ppo_kl = tot.ppo_kl / ntok;
  }
  return st;
}

#define VG_GRPO_INSTANTIATE(T, M)                                                                             \
  template GrpoLossStats grpo_loss<T, M>(const GrpoLossConfig&, const T*, const T*, const T*, const T*, const M*, \
                                         const T*, T*, T*);
VG_GRPO_INSTANTIATE(float, uint8_t)
VG_GRPO_INSTANTIATE(float, float)
VG_GRPO_INSTANTIATE(double, uint8_t)
VG_GRPO_INSTANTIATE(double, double)
#undef VG_GRPO_INSTANTIATE

}  // namespace vg
