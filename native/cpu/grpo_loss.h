// Fused GRPO policy loss (verl's "vanilla" PPO-clip loss with dual-clip, optional GSPO sequence ratio), KL
// penalty to a reference policy, entropy bonus and loss aggregation, with the gradient w.r.t. the current
// log-probs in the same pass. Spec: shared/reference/peers.md §c.1. All math is done in double whatever T is.
//
// Inputs are row-major [num_sequences, seq_len]; advantages are one value per sequence. m = mask (a weight,
// normally 0/1). Per token (only where m != 0):
//   Δ = lp − lo
//   token ratio (RatioLevel::Token):     ρ = exp(clamp(Δ, −20, 20))
//   GSPO ratio (RatioLevel::Sequence):   log s_i = Σ_t m·Δ / max(Σ_t m, 1); the token surrogate is
//                                        log s_it = sg(log s_i) + lp_t − sg(lp_t), clamped to <= 10, ρ = exp(log s_it);
//                                        so its value is exp(min(log s_i, 10)) and dρ/dlp_t = ρ (0 when clamped).
//                                        Δ is not clamped to ±20 here (as in verl's gspo).
//   L1 = −A·ρ, L2 = −A·clip(ρ, 1−clip_low, 1+clip_high), Lclip = max(L1, L2)
//   dual-clip (dual_clip = c > 1, only for A < 0): L = min(Lclip, −A·c); otherwise L = Lclip
//   (applied with either ratio level; verl's gspo has no dual-clip: leave dual_clip = 0 for parity).
//   KL (when ref is given), d = lp − lr:  k1 = d;  k2 = ½d²;  abs = |d|;
//                                        k3: x = clamp(−d, −20, 20), k = clamp(eˣ − x − 1, −10, 10)
//   CISPO (PolicyLoss::Cispo, verl cispo): L = −sg(clip(ρ, 1−clip_low, 1+clip_high))·A·lp, so dL/dlp = −clip(ρ)·A
//   (the clipped ratio is a constant weight; no max/min branches, dual_clip is ignored). Its clip fractions count
//   ratios outside the interval whatever the sign of A.
//   per-token total ℓ = L + kl_coef·KL − entropy_coef·H
// Aggregation: loss = Σ_it w_it·ℓ_it with w_it = m_it·f_i, where
//   token-mean:               f_i = 1 / Ntok         Ntok = token_count_normalizer, or Σ_it m when it is 0
//   seq-mean-token-mean:      f_i = 1 / (Σ_t m_it · Nseq)  (0 for a sequence with Σ_t m = 0)
//   seq-mean-token-sum:       f_i = 1 / Nseq         Nseq = sequence_count_normalizer, or #{i : Σ_t m_it > 0} when 0
//   seq-mean-token-sum-norm:  f_i = 1 / loss_scale   (peers.md: ΣΣ L·m / loss_scale_factor; no division by the
//                             number of sequences. Pass loss_scale = B·max_len to get TRL's dr_grpo Σ/(B·L).)
// A zero denominator (no valid token / sequence) gives a zero loss and zero gradient. The same aggregation is
// used for every ratio level (verl always aggregates gspo with seq-mean-token-mean: choose that mode for parity).
//
// Gradients, as autograd gives them: grad[i,t] = w_it · ∂ℓ_it/∂lp_it (overwritten; 0 where m = 0), and
// grad_entropy[i,t] = −entropy_coef · w_it. A clamp/clip passes the gradient on its closed interval
// (boundaries included, like torch.clamp) and blocks it outside; the clipped branch of max(L1, L2) and the
// dual-clip constant carry no gradient. Ties follow torch.maximum/minimum (each side gets half the gradient),
// and |d| at d = 0 has gradient 0 (torch.sign(0) = 0).
//
// Statistics (masked means: Σ m·x / Σ m over the local tokens, 0 when Σ m = 0; normalizers are not used):
//   clip_frac_high = mean[A > 0 ∧ ρ > 1+clip_high]    (the clipped branch of L is active, upper side)
//   clip_frac_low  = mean[A < 0 ∧ ρ < 1−clip_low]     (the clipped branch of L is active, lower side)
//   clip_frac_dual = mean[A < 0 ∧ Lclip > −A·c]       (the dual-clip constant is active; 0 when dual_clip = 0)
//   kl             = mean KL value (estimator above, before kl_coef; 0 when ref is null, even if kl_coef = 0)
//   ratio_mean     = mean ρ (the ratio the surrogate used: token ratio, or the GSPO ratio)
//   ppo_kl         = mean(lo − lp)
//   pg_loss / kl_loss / entropy_loss = the aggregated L, KL and H (loss = pg_loss + kl_coef·kl_loss −
//                                      entropy_coef·entropy_loss up to rounding)
//   num_tokens = Σ m, num_valid_sequences = #{i : Σ_t m_it > 0} (local counts)
// Work is split over sequences and per-sequence partial sums are added in order, so results do not depend on
// the thread count.
#pragma once
#include <cstdint>

namespace vg {

enum class KlEstimator { K1, K2, K3, Abs };
enum class LossAgg { TokenMean, SeqMeanTokenMean, SeqMeanTokenSum, SeqMeanTokenSumNorm };
enum class RatioLevel { Token, Sequence };
enum class PolicyLoss { Ppo, Cispo };

struct GrpoLossConfig {
  int64_t num_sequences = 0;
  int64_t seq_len = 0;
  double clip_low = 0.2;
  double clip_high = 0.2;
  double dual_clip = 0;   // 0: off; otherwise must be > 1
  double kl_coef = 0;     // >= 0; > 0 needs ref_logprobs
  KlEstimator kl_estimator = KlEstimator::K3;
  LossAgg loss_agg = LossAgg::TokenMean;
  double loss_scale = 0;  // seq-mean-token-sum-norm constant; 0 means seq_len (1 when seq_len = 0)
  double entropy_coef = 0;  // != 0 needs entropy
  RatioLevel ratio_level = RatioLevel::Token;
  PolicyLoss policy_loss = PolicyLoss::Ppo;
  double token_count_normalizer = 0;     // > 0 replaces the local Σ m in token-mean
  double sequence_count_normalizer = 0;  // > 0 replaces the local valid-sequence count in seq-mean-*
};

struct GrpoLossStats {
  double loss = 0;
  double pg_loss = 0, kl_loss = 0, entropy_loss = 0;
  double clip_frac_low = 0, clip_frac_high = 0, clip_frac_dual = 0;
  double kl = 0, ratio_mean = 0, ppo_kl = 0;
  double num_tokens = 0, num_valid_sequences = 0;
};

// logprobs, old_logprobs, mask: [num_sequences * seq_len]; advantages: [num_sequences]. ref_logprobs and
// entropy may be null. grad [num_sequences * seq_len] is overwritten; grad_entropy (same size) is written when
// not null. M is the mask element type (uint8_t, float or double).
template <typename T, typename M>
GrpoLossStats grpo_loss(const GrpoLossConfig& cfg, const T* logprobs, const T* old_logprobs, const T* ref_logprobs,
                        const T* advantages, const M* mask, const T* entropy, T* grad, T* grad_entropy);

}  // namespace vg
