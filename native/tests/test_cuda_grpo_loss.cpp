// GPU fused GRPO loss against the CPU kernel on the same fp32 inputs. Both do the per-token math in double and
// round the gradient to fp32 once, so gradients agree to 1 fp32 ulp (rtol 3e-7); the statistics are double sums
// in a different order (rtol 1e-9, atol 1e-12).
#if VG_HAVE_CUDA
#include "cpu/grpo_loss.h"
#include "cuda/grpo_loss.h"
#include "test_cuda_util.h"

using namespace vg::cuda;
using vg::GrpoLossConfig;

namespace {

void expect_stats_close(const vg::GrpoLossStats& a, const vg::GrpoLossStats& b) {
  const double ga[] = {a.loss, a.pg_loss, a.kl_loss, a.entropy_loss, a.clip_frac_low, a.clip_frac_high,
                       a.clip_frac_dual, a.kl, a.ratio_mean, a.ppo_kl, a.num_tokens, a.num_valid_sequences};
  const double gb[] = {b.loss, b.pg_loss, b.kl_loss, b.entropy_loss, b.clip_frac_low, b.clip_frac_high,
                       b.clip_frac_dual, b.kl, b.ratio_mean, b.ppo_kl, b.num_tokens, b.num_valid_sequences};
  VG_EXPECT_ALLCLOSE(ga, gb, 12, 1e-12, 1e-9);
}

template <typename M>
void grpo_case(GrpoLossConfig cfg, bool with_ref, bool with_ent, uint64_t salt) {
  auto g = vgtest::rng(salt);
  const int64_t N = cfg.num_sequences, L = cfg.seq_len, n = N * L;
  auto lp = vgtest::randn<float>(n, g, 0.5), lo = lp, lr = lp;
  auto noise = vgtest::randn<float>(n, g, 0.3), noise2 = vgtest::randn<float>(n, g, 0.2);
  for (int64_t t = 0; t < n; ++t) lo[t] = lp[t] + noise[t], lr[t] = lp[t] + noise2[t];
  auto adv = vgtest::randn<float>(N, g);
  auto ent = vgtest::randu<float>(n, g, 0.0, 3.0);
  std::vector<M> mask(n);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t t = 0; t < L; ++t)  // ragged lengths; sequence 1 fully masked
      mask[i * L + t] = static_cast<M>((i != 1 && t < L - (i * 7) % L && u(g) < 0.9) ? 1 : 0);
  std::vector<float> grad_ref(n), gent_ref(n);
  auto ref = vg::grpo_loss<float, M>(cfg, lp.data(), lo.data(), with_ref ? lr.data() : nullptr, adv.data(), mask.data(),
                                     with_ent ? ent.data() : nullptr, grad_ref.data(), gent_ref.data());
  auto dlp = to_device(lp), dlo = to_device(lo), dlr = to_device(lr), dadv = to_device(adv), dent = to_device(ent);
  auto dmask = to_device(mask);
  DeviceBuffer<float> dgrad(n), dgent(n);
  dgrad.fill_bytes(0xFF);
  dgent.fill_bytes(0xFF);
  auto st = grpo_loss<M>(cfg, dlp.get(), dlo.get(), with_ref ? dlr.get() : nullptr, dadv.get(), dmask.get(),
                         with_ent ? dent.get() : nullptr, dgrad.get(), dgent.get(), 0);
  auto grad = dgrad.to_host(), gent = dgent.to_host();
  VG_EXPECT_ALLCLOSE(grad.data(), grad_ref.data(), static_cast<size_t>(n), 1e-30, 3e-7);
  VG_EXPECT_ALLCLOSE(gent.data(), gent_ref.data(), static_cast<size_t>(n), 1e-30, 3e-7);
  expect_stats_close(st, ref);
  VG_EXPECT(st.num_tokens > 0 && st.num_valid_sequences == N - 1, st.num_valid_sequences);
  // Reproducible bit for bit.
  auto st2 = grpo_loss<M>(cfg, dlp.get(), dlo.get(), with_ref ? dlr.get() : nullptr, dadv.get(), dmask.get(),
                          with_ent ? dent.get() : nullptr, dgrad.get(), dgent.get(), 0);
  VG_EXPECT(st2.loss == st.loss && dgrad.to_host() == grad, "not reproducible");
}

}  // namespace

VG_TEST(cuda_grpo_loss_matches_cpu_all_modes) {
  VG_CUDA_TEST_REQUIRE_GPU();
  GrpoLossConfig cfg;
  cfg.num_sequences = 9;
  cfg.seq_len = 300;  // more than one block of threads per sequence
  uint64_t salt = 0;
  for (auto agg : {vg::LossAgg::TokenMean, vg::LossAgg::SeqMeanTokenMean, vg::LossAgg::SeqMeanTokenSum,
                   vg::LossAgg::SeqMeanTokenSumNorm})
    for (auto est : {vg::KlEstimator::K1, vg::KlEstimator::K2, vg::KlEstimator::K3, vg::KlEstimator::Abs}) {
      cfg.loss_agg = agg;
      cfg.kl_estimator = est;
      cfg.kl_coef = 0.05;
      cfg.dual_clip = 3.0;
      cfg.entropy_coef = 0.01;
      grpo_case<uint8_t>(cfg, true, true, ++salt);
    }
  cfg.loss_agg = vg::LossAgg::SeqMeanTokenMean;
  cfg.ratio_level = vg::RatioLevel::Sequence;
  cfg.dual_clip = 0;
  grpo_case<float>(cfg, true, false, ++salt);
  cfg.ratio_level = vg::RatioLevel::Token;
  cfg.policy_loss = vg::PolicyLoss::Cispo;
  cfg.kl_coef = 0;
  cfg.entropy_coef = 0;
  cfg.token_count_normalizer = 1234;
  grpo_case<float>(cfg, false, false, ++salt);
}

VG_TEST(cuda_grpo_loss_rejects_bad_config) {
  GrpoLossConfig cfg;
  cfg.num_sequences = 2;
  cfg.seq_len = 3;
  cfg.dual_clip = 0.5;
  VG_EXPECT_THROWS((grpo_loss<uint8_t>(cfg, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0)),
                   "dualClip");
  cfg.dual_clip = 0;
  cfg.kl_coef = 0.1;
  VG_EXPECT_THROWS((grpo_loss<uint8_t>(cfg, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0)),
                   "needs refLogprobs");
}
#endif
