// Fused GRPO loss against a plain per-token double reference for every option combination, gradients against
// central finite differences (double build, away from clip/clamp kinks), GSPO's stop-gradient surrogate,
// thread-count independence and argument errors.
#include <cmath>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "cpu/grpo_loss.h"
#include "test_framework.h"

using namespace vg;

namespace {

const KlEstimator kEstimators[] = {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3, KlEstimator::Abs};
const LossAgg kAggs[] = {LossAgg::TokenMean, LossAgg::SeqMeanTokenMean, LossAgg::SeqMeanTokenSum,
                         LossAgg::SeqMeanTokenSumNorm};

struct Inputs {
  int64_t N = 0, L = 0;
  std::vector<double> lp, lo, lr, adv, mask, ent;
};

// Random inputs: ragged masks (one sequence fully masked, holes), ratios mostly near 1 with many outside
// [0.8, 1.28], a few log-ratios beyond ±20, reference log-probs that push k3 past its clamp, some lp == lr,
// and some zero advantages.
Inputs make_inputs(std::mt19937_64& g, int64_t N, int64_t L, bool fractional_mask) {
  Inputs in;
  in.N = N;
  in.L = L;
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  const size_t n = static_cast<size_t>(N * L);
  in.lp.resize(n); in.lo.resize(n); in.lr.resize(n); in.mask.resize(n); in.ent.resize(n);
  in.adv.resize(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    in.adv[i] = ud(g) < 0.1 ? 0.0 : nd(g);
    int64_t len = static_cast<int64_t>(ud(g) * (L + 1));
    if (len > L) len = L;
    if (i == 1) len = 0;
    for (int64_t t = 0; t < L; ++t) {
      const size_t k = static_cast<size_t>(i * L + t);
      double m = (t < len && ud(g) > 0.1) ? 1.0 : 0.0;
      if (fractional_mask && m > 0) m = 0.25 + 0.75 * ud(g);
      in.mask[k] = m;
      in.lp[k] = -std::fabs(nd(g)) * 2.0 - 0.01;
      const double u = ud(g);
      double d = u < 0.6 ? 0.3 * nd(g) : (u < 0.94 ? nd(g) : (u < 0.97 ? 20.5 + 5 * ud(g) : -(20.5 + 5 * ud(g))));
      in.lo[k] = in.lp[k] - d;
      const double v = ud(g);
      in.lr[k] = v < 0.05 ? in.lp[k] : (v < 0.15 ? in.lp[k] + (ud(g) < 0.5 ? 4.0 : -14.0) + nd(g) * 0.1
                                                : in.lp[k] + 0.5 * nd(g));
      in.ent[k] = 3.0 * ud(g);
    }
  }
  // Guarantee every region at least once: sequence 0 (A > 0) gets a ratio above 1.28 and a log-ratio beyond
  // +20; sequence 2 (A < 0) gets a ratio below 0.8 and one above the dual-clip constant 3.
  if (N >= 3 && L >= 2) {
    in.adv[0] = 0.5 + std::fabs(in.adv[0]);
    in.adv[2] = -0.5 - std::fabs(in.adv[2]);
    auto force = [&](size_t k, double delta) {
      in.lo[k] = in.lp[k] - delta;
      in.mask[k] = 1;
    };
    force(0, 0.6);
    force(1, 25);
    force(static_cast<size_t>(2 * L), -0.5);
    force(static_cast<size_t>(2 * L + 1), 1.5);
  }
  return in;
}

struct Out {
  double loss = 0, pg = 0, klv = 0, entv = 0;
  double clip_low = 0, clip_high = 0, clip_dual = 0, kl = 0, ratio = 0, ppo_kl = 0, ntok = 0, nseq = 0;
  std::vector<double> grad, grad_ent;
};

// The plain reference: per-token loss and its derivative, then each aggregation written out separately.
Out reference(const GrpoLossConfig& cfg, const Inputs& in, bool use_ref, bool use_ent) {
  const int64_t N = in.N, L = in.L;
  const size_t n = static_cast<size_t>(N * L);
  std::vector<double> ell(n, 0), dell(n, 0), pgv(n, 0), klv(n, 0), entv(n, 0);
  Out o;
  o.grad.assign(n, 0);
  o.grad_ent.assign(n, 0);
  double cnt_low = 0, cnt_high = 0, cnt_dual = 0, kl_sum = 0, r_sum = 0, ppo_sum = 0, ntok = 0;
  for (int64_t i = 0; i < N; ++i) {
    double len = 0, dsum = 0;
    for (int64_t t = 0; t < L; ++t) {
      const size_t k = i * L + t;
      len += in.mask[k];
      dsum += in.mask[k] * (in.lp[k] - in.lo[k]);
    }
    const double log_s = dsum / (len < 1 ? 1 : len);
    const double a = in.adv[i];
    for (int64_t t = 0; t < L; ++t) {
      const size_t k = i * L + t;
      const double m = in.mask[k];
      if (m == 0) continue;
      double r, dr;
      if (cfg.ratio_level == RatioLevel::Sequence) {
        if (log_s > 10) { r = std::exp(10.0); dr = 0; }
        else { r = std::exp(log_s); dr = r; }
      } else {
        const double d = in.lp[k] - in.lo[k];
        if (d > 20) { r = std::exp(20.0); dr = 0; }
        else if (d < -20) { r = std::exp(-20.0); dr = 0; }
        else { r = std::exp(d); dr = r; }
      }
      const double lower = 1 - cfg.clip_low, upper = 1 + cfg.clip_high;
      const double rc = r < lower ? lower : (r > upper ? upper : r);
      const double unclipped = -a * r, d_unclipped = -a * dr;
      const double clipped = -a * rc, d_clipped = (r >= lower && r <= upper) ? -a * dr : 0.0;
      double pg, dpg;
      if (unclipped > clipped) { pg = unclipped; dpg = d_unclipped; }
      else if (clipped > unclipped) { pg = clipped; dpg = d_clipped; }
      else { pg = unclipped; dpg = 0.5 * d_unclipped + 0.5 * d_clipped; }
      const double pg_clip = pg;
      if (cfg.dual_clip > 0 && a < 0) {
        const double cap = -a * cfg.dual_clip;
        if (cap < pg) { pg = cap; dpg = 0; }
        else if (cap == pg) dpg *= 0.5;
        if (pg_clip > cap) cnt_dual += m;
      }
      double kv = 0, dk = 0;
      if (use_ref) {
        const double d = in.lp[k] - in.lr[k];
        switch (cfg.kl_estimator) {
          case KlEstimator::K1: kv = d; dk = 1; break;
          case KlEstimator::K2: kv = d * d / 2; dk = d; break;
          case KlEstimator::Abs: kv = std::fabs(d); dk = d > 0 ? 1 : (d < 0 ? -1 : 0); break;
          case KlEstimator::K3: {
            double x = -d, dx = -1;
            if (x > 20) { x = 20; dx = 0; }
            if (x < -20) { x = -20; dx = 0; }
            kv = std::exp(x) - x - 1;
            dk = (std::exp(x) - 1) * dx;
            if (kv > 10) { kv = 10; dk = 0; }
            if (kv < -10) { kv = -10; dk = 0; }
            break;
          }
        }
      }
      const double h = use_ent ? in.ent[k] : 0.0;
      ell[k] = pg + cfg.kl_coef * kv - cfg.entropy_coef * h;
      dell[k] = dpg + cfg.kl_coef * dk;
      pgv[k] = pg;
      klv[k] = kv;
      entv[k] = h;
      ntok += m;
      if (a > 0 && r > upper) cnt_high += m;
      if (a < 0 && r < lower) cnt_low += m;
      kl_sum += m * kv;
      r_sum += m * r;
      ppo_sum += m * (in.lo[k] - in.lp[k]);
    }
  }
  // Aggregation weights w[k] (loss = Σ w·ℓ), one mode at a time.
  std::vector<double> w(n, 0);
  double nseq = 0;
  std::vector<double> lens(N, 0);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t t = 0; t < L; ++t) lens[i] += in.mask[i * L + t];
    if (lens[i] > 0) nseq += 1;
  }
  const double S = cfg.sequence_count_normalizer > 0 ? cfg.sequence_count_normalizer : nseq;
  const double T = cfg.token_count_normalizer > 0 ? cfg.token_count_normalizer : ntok;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t t = 0; t < L; ++t) {
      const size_t k = i * L + t;
      const double m = in.mask[k];
      if (cfg.loss_agg == LossAgg::TokenMean) w[k] = T > 0 ? m / T : 0;
      if (cfg.loss_agg == LossAgg::SeqMeanTokenMean) w[k] = (lens[i] > 0 && S > 0) ? m / lens[i] / S : 0;
      if (cfg.loss_agg == LossAgg::SeqMeanTokenSum) w[k] = S > 0 ? m / S : 0;
      if (cfg.loss_agg == LossAgg::SeqMeanTokenSumNorm) w[k] = m / (cfg.loss_scale > 0 ? cfg.loss_scale : double(L));
    }
  for (size_t k = 0; k < n; ++k) {
    o.loss += w[k] * ell[k];
    o.pg += w[k] * pgv[k];
    o.klv += w[k] * klv[k];
    o.entv += w[k] * entv[k];
    o.grad[k] = w[k] * dell[k];
    o.grad_ent[k] = -cfg.entropy_coef * w[k];
  }
  o.ntok = ntok;
  o.nseq = nseq;
  if (ntok > 0) {
    o.clip_low = cnt_low / ntok;
    o.clip_high = cnt_high / ntok;
    o.clip_dual = cnt_dual / ntok;
    o.kl = kl_sum / ntok;
    o.ratio = r_sum / ntok;
    o.ppo_kl = ppo_sum / ntok;
  }
  return o;
}

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <typename T>
std::vector<double> back(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Inputs rounded to T, so the reference sees exactly what the kernel sees.
template <typename T>
Inputs rounded(const Inputs& in) {
  Inputs r = in;
  r.lp = back(as<T>(in.lp)); r.lo = back(as<T>(in.lo)); r.lr = back(as<T>(in.lr));
  r.adv = back(as<T>(in.adv)); r.mask = back(as<T>(in.mask)); r.ent = back(as<T>(in.ent));
  return r;
}

template <typename T, typename M>
Out run_kernel(const GrpoLossConfig& cfg, const Inputs& in, bool use_ref, bool use_ent) {
  auto lp = as<T>(in.lp), lo = as<T>(in.lo), lr = as<T>(in.lr), adv = as<T>(in.adv), ent = as<T>(in.ent);
  std::vector<M> mask(in.mask.begin(), in.mask.end());
  std::vector<T> grad(in.lp.size(), T(NAN)), grad_ent(in.lp.size(), T(NAN));  // must be fully overwritten
  GrpoLossStats s = grpo_loss<T, M>(cfg, lp.data(), lo.data(), use_ref ? lr.data() : nullptr, adv.data(), mask.data(),
                                    use_ent ? ent.data() : nullptr, grad.data(), use_ent ? grad_ent.data() : nullptr);
  Out o;
  o.loss = s.loss; o.pg = s.pg_loss; o.klv = s.kl_loss; o.entv = s.entropy_loss;
  o.clip_low = s.clip_frac_low; o.clip_high = s.clip_frac_high; o.clip_dual = s.clip_frac_dual;
  o.kl = s.kl; o.ratio = s.ratio_mean; o.ppo_kl = s.ppo_kl; o.ntok = s.num_tokens; o.nseq = s.num_valid_sequences;
  o.grad = back(grad);
  if (use_ent) o.grad_ent = back(grad_ent);
  return o;
}

void expect_close(double a, double b, double tol, const std::string& what) {
  VG_EXPECT(std::fabs(a - b) <= tol * (1 + std::fabs(b)), what, ": kernel ", a, " vs reference ", b, " (tol ", tol, ")");
}

void compare(const Out& k, const Out& r, double tol, bool use_ent, const std::string& tag) {
  expect_close(k.loss, r.loss, tol, tag + " loss");
  expect_close(k.pg, r.pg, tol, tag + " pg_loss");
  expect_close(k.klv, r.klv, tol, tag + " kl_loss");
  expect_close(k.entv, r.entv, tol, tag + " entropy_loss");
  expect_close(k.clip_low, r.clip_low, tol, tag + " clip_frac_low");
  expect_close(k.clip_high, r.clip_high, tol, tag + " clip_frac_high");
  expect_close(k.clip_dual, r.clip_dual, tol, tag + " clip_frac_dual");
  expect_close(k.kl, r.kl, tol, tag + " kl");
  expect_close(k.ratio, r.ratio, tol, tag + " ratio_mean");
  expect_close(k.ppo_kl, r.ppo_kl, tol, tag + " ppo_kl");
  expect_close(k.ntok, r.ntok, 1e-13, tag + " num_tokens");  // fractional masks: summation order
  expect_close(k.nseq, r.nseq, 0, tag + " num_valid_sequences");
  // Gradients are compared relative to the largest one (float rounding of tiny entries).
  double gmax = 0;
  for (double v : r.grad) gmax = std::max(gmax, std::fabs(v));
  size_t where = 0;
  const double err = vgtest::max_scaled_err(k.grad.data(), r.grad.data(), r.grad.size(), tol * (gmax + 1e-30), tol, &where);
  VG_EXPECT(err <= 1.0, tag, " grad[", where, "]: ", k.grad[where], " vs ", r.grad[where]);
  if (use_ent) VG_EXPECT_ALLCLOSE(k.grad_ent.data(), r.grad_ent.data(), r.grad_ent.size(), tol * 1e-3, tol);
}

std::string name_of(const GrpoLossConfig& c, bool ref, bool ent) {
  return vg::detail::concat("[est ", int(c.kl_estimator), " agg ", int(c.loss_agg), " dual ", c.dual_clip, " ent ", ent,
                            " ref ", ref, " gspo ", c.ratio_level == RatioLevel::Sequence, "]");
}

// Every estimator × aggregation × dual-clip × entropy × ratio level × (ref, KL coef) for T and mask type M.
template <typename T, typename M>
void check_all_combinations(bool fractional_mask, double tol, uint64_t salt) {
  auto g = vgtest::rng(salt);
  Inputs in = rounded<T>(make_inputs(g, 7, 23, fractional_mask));
  {
    GrpoLossConfig c;
    c.num_sequences = in.N; c.seq_len = in.L; c.clip_low = 0.2; c.clip_high = 0.28; c.dual_clip = 3;
    Out cover = reference(c, in, false, false);
    VG_EXPECT(cover.clip_low > 0 && cover.clip_high > 0 && cover.clip_dual > 0 && cover.nseq < in.N,
              "inputs must cover every clip region and a fully masked sequence");
  }
  for (KlEstimator est : kEstimators)
    for (LossAgg agg : kAggs)
      for (double dual : {0.0, 3.0})
        for (bool ent : {false, true})
          for (RatioLevel level : {RatioLevel::Token, RatioLevel::Sequence})
            for (int refmode = 0; refmode < 3; ++refmode) {  // 0: no ref; 1: ref, klCoef 0 (stats only); 2: klCoef > 0
              GrpoLossConfig c;
              c.num_sequences = in.N;
              c.seq_len = in.L;
              c.clip_low = 0.2;
              c.clip_high = 0.28;
              c.dual_clip = dual;
              c.kl_estimator = est;
              c.loss_agg = agg;
              c.ratio_level = level;
              c.kl_coef = refmode == 2 ? 0.05 : 0.0;
              c.entropy_coef = ent ? 0.01 : 0.0;
              c.loss_scale = agg == LossAgg::SeqMeanTokenSumNorm && est == KlEstimator::K2 ? 57.0 : 0.0;
              const bool ref = refmode > 0;
              Out k = run_kernel<T, M>(c, in, ref, ent);
              Out r = reference(c, in, ref, ent);
              compare(k, r, tol, ent, name_of(c, ref, ent));
            }
}

}  // namespace

VG_TEST(grpo_loss_all_options_double) { check_all_combinations<double, double>(false, 1e-12, 11); }
VG_TEST(grpo_loss_all_options_double_fractional_mask) { check_all_combinations<double, double>(true, 1e-12, 12); }
VG_TEST(grpo_loss_all_options_double_u8_mask) { check_all_combinations<double, uint8_t>(false, 1e-12, 13); }
VG_TEST(grpo_loss_all_options_float_u8_mask) { check_all_combinations<float, uint8_t>(false, 2e-6, 14); }
VG_TEST(grpo_loss_all_options_float_mask) { check_all_combinations<float, float>(true, 2e-6, 15); }

VG_TEST(grpo_loss_normalizers_replace_local_counts) {
  auto g = vgtest::rng(21);
  Inputs in = make_inputs(g, 5, 19, false);
  for (LossAgg agg : kAggs)
    for (RatioLevel level : {RatioLevel::Token, RatioLevel::Sequence}) {
      GrpoLossConfig c;
      c.num_sequences = in.N; c.seq_len = in.L; c.clip_low = 0.2; c.clip_high = 0.3; c.dual_clip = 3;
      c.kl_coef = 0.1; c.entropy_coef = 0.02; c.loss_agg = agg; c.ratio_level = level;
      c.token_count_normalizer = 131.0;
      c.sequence_count_normalizer = 9.0;
      Out k = run_kernel<double, double>(c, in, true, true);
      Out r = reference(c, in, true, true);
      compare(k, r, 1e-12, true, name_of(c, true, true) + " normalizers");
      // Local-count version scaled: the normalizer only rescales the loss (token-mean and seq-mean-*).
      GrpoLossConfig local = c;
      local.token_count_normalizer = 0;
      local.sequence_count_normalizer = 0;
      Out kl = run_kernel<double, double>(local, in, true, true);
      double factor = 1;
      if (agg == LossAgg::TokenMean) factor = kl.ntok / 131.0;
      if (agg == LossAgg::SeqMeanTokenMean || agg == LossAgg::SeqMeanTokenSum) factor = kl.nseq / 9.0;
      expect_close(k.loss, kl.loss * factor, 1e-12, "normalizer rescales the loss");
    }
}

// Finite differences of the kernel's own loss (double) w.r.t. every lp and every entropy entry, on inputs
// kept away from the kinks: the clip bounds, the dual-clip constant, the ±20 clamp edges, k3's clamp at 10
// and |d| at 0. Threshold: |fd − grad| <= 1e-7 + 1e-6·|grad| with h = 1e-6.
VG_TEST(grpo_loss_gradients_match_finite_differences) {
  auto g = vgtest::rng(31);
  const double lower = 0.8, upper = 1.28, c = 3.0;
  Inputs in = make_inputs(g, 5, 13, true);
  std::normal_distribution<double> nd(0.0, 1.0);
  auto near_kink = [&](size_t k) {
    const double d = in.lp[k] - in.lo[k], r = std::exp(d);
    const double x = in.lr[k] - in.lp[k], kv = std::exp(x) - x - 1;
    return std::fabs(r - lower) < 1e-3 || std::fabs(r - upper) < 1e-3 || std::fabs(r - c) < 1e-3 ||
           std::fabs(std::fabs(d) - 20) < 1e-3 || d > 20 || std::fabs(kv - 10) < 1e-3 || std::fabs(x) < 1e-3 ||
           std::fabs(std::fabs(x) - 20) < 1e-3;
  };
  for (size_t k = 0; k < in.lp.size(); ++k) {
    while (near_kink(k)) {
      in.lo[k] = in.lp[k] - 0.4 * nd(g);
      in.lr[k] = in.lp[k] + 0.7 * nd(g);
    }
  }
  int checked = 0;
  for (KlEstimator est : kEstimators)
    for (LossAgg agg : kAggs)
      for (double dual : {0.0, c}) {
        GrpoLossConfig cfg;
        cfg.num_sequences = in.N; cfg.seq_len = in.L; cfg.clip_low = 0.2; cfg.clip_high = 0.28; cfg.dual_clip = dual;
        cfg.kl_coef = 0.3; cfg.kl_estimator = est; cfg.loss_agg = agg; cfg.entropy_coef = 0.05;
        const size_t n = in.lp.size();
        std::vector<double> grad(n), grad_ent(n), scratch(n);
        grpo_loss<double, double>(cfg, in.lp.data(), in.lo.data(), in.lr.data(), in.adv.data(), in.mask.data(),
                                  in.ent.data(), grad.data(), grad_ent.data());
        auto loss_at = [&](std::vector<double>& v, size_t k, double x) {
          const double keep = v[k];
          v[k] = x;
          const double l = grpo_loss<double, double>(cfg, in.lp.data(), in.lo.data(), in.lr.data(), in.adv.data(),
                                                     in.mask.data(), in.ent.data(), scratch.data(), nullptr)
                               .loss;
          v[k] = keep;
          return l;
        };
        const double h = 1e-6;
        for (size_t k = 0; k < n; ++k) {
          const double fd = (loss_at(in.lp, k, in.lp[k] + h) - loss_at(in.lp, k, in.lp[k] - h)) / (2 * h);
          VG_EXPECT(std::fabs(fd - grad[k]) <= 1e-7 + 1e-6 * std::fabs(grad[k]), name_of(cfg, true, true), " d/dlp[", k,
                    "]: fd ", fd, " vs ", grad[k]);
          const double fe = (loss_at(in.ent, k, in.ent[k] + h) - loss_at(in.ent, k, in.ent[k] - h)) / (2 * h);
          VG_EXPECT(std::fabs(fe - grad_ent[k]) <= 1e-7 + 1e-6 * std::fabs(grad_ent[k]), " d/dentropy[", k, "]: fd ", fe,
                    " vs ", grad_ent[k]);
          ++checked;
        }
      }
  VG_EXPECT(checked == 4 * 4 * 2 * 5 * 13, "checked ", checked);
}

// GSPO: the loss value and gradient equal those of the token-level loss whose old log-probs are
// lo'_t = lp_t − log s_i held fixed (that is what sg(log s_i) + lp_t − sg(lp_t) means), so the gradient is the
// finite difference of that token-level loss in lp (with lo' fixed).
VG_TEST(grpo_loss_gspo_is_the_stop_gradient_surrogate) {
  auto g = vgtest::rng(41);
  std::normal_distribution<double> nd(0.0, 1.0);
  Inputs in = make_inputs(g, 6, 11, true);
  const int64_t N = in.N, L = in.L;
  std::vector<double> lo_prime(in.lo.size());
  // Resample the old log-probs until no sequence ratio sits near a kink (|log s_i| stays far below 10).
  for (bool near = true; near;) {
    near = false;
    for (size_t k = 0; k < in.lo.size(); ++k) in.lo[k] = in.lp[k] - 0.3 * nd(g);
    for (int64_t i = 0; i < N; ++i) {
      double len = 0, ds = 0;
      for (int64_t t = 0; t < L; ++t) {
        len += in.mask[i * L + t];
        ds += in.mask[i * L + t] * (in.lp[i * L + t] - in.lo[i * L + t]);
      }
      const double log_s = ds / std::max(len, 1.0);
      const double r = std::exp(log_s);
      near = near || std::fabs(r - 0.8) < 1e-4 || std::fabs(r - 1.28) < 1e-4 || std::fabs(r - 3.0) < 1e-4;
      for (int64_t t = 0; t < L; ++t) lo_prime[i * L + t] = in.lp[i * L + t] - log_s;
    }
  }
  for (LossAgg agg : kAggs)
    for (double dual : {0.0, 3.0}) {
      GrpoLossConfig cfg;
      cfg.num_sequences = N; cfg.seq_len = L; cfg.clip_low = 0.2; cfg.clip_high = 0.28; cfg.dual_clip = dual;
      cfg.kl_coef = 0.1; cfg.kl_estimator = KlEstimator::K2; cfg.loss_agg = agg;
      const size_t n = in.lp.size();
      std::vector<double> g_seq(n), g_tok(n), scratch(n);
      cfg.ratio_level = RatioLevel::Sequence;
      GrpoLossStats s_seq = grpo_loss<double, double>(cfg, in.lp.data(), in.lo.data(), in.lr.data(), in.adv.data(),
                                                      in.mask.data(), nullptr, g_seq.data(), nullptr);
      cfg.ratio_level = RatioLevel::Token;
      GrpoLossStats s_tok = grpo_loss<double, double>(cfg, in.lp.data(), lo_prime.data(), in.lr.data(), in.adv.data(),
                                                      in.mask.data(), nullptr, g_tok.data(), nullptr);
      expect_close(s_seq.loss, s_tok.loss, 1e-12, "gspo loss vs token loss with lo'");
      expect_close(s_seq.ratio_mean, s_tok.ratio_mean, 1e-12, "gspo ratio mean");
      VG_EXPECT_ALLCLOSE(g_seq.data(), g_tok.data(), n, 1e-13, 1e-10);
      const double h = 1e-6;
      for (size_t k = 0; k < n; ++k) {
        auto at = [&](double x) {
          std::vector<double> lp = in.lp;
          lp[k] = x;
          return grpo_loss<double, double>(cfg, lp.data(), lo_prime.data(), in.lr.data(), in.adv.data(), in.mask.data(),
                                           nullptr, scratch.data(), nullptr)
              .loss;
        };
        const double fd = (at(in.lp[k] + h) - at(in.lp[k] - h)) / (2 * h);
        VG_EXPECT(std::fabs(fd - g_seq[k]) <= 1e-7 + 1e-6 * std::fabs(g_seq[k]), "gspo d/dlp[", k, "]: fd ", fd, " vs ",
                  g_seq[k]);
      }
    }
}

// A hand-worked case: one sequence of 4 tokens, A = −1, ratios e^{−0.5}, e^{0}, e^{1.5}, e^{0.1} with the last
// token masked out; ε = 0.2, dual-clip 3, token-mean over 3 tokens.
VG_TEST(grpo_loss_hand_worked_example) {
  const double lp[4] = {-1.0, -2.0, -0.5, -3.0};
  const double lo[4] = {-0.5, -2.0, -2.0, -3.1};
  const double adv[1] = {-1.0};
  const uint8_t mask[4] = {1, 1, 1, 0};
  double grad[4];
  GrpoLossConfig c;
  c.num_sequences = 1; c.seq_len = 4; c.clip_low = 0.2; c.clip_high = 0.2; c.dual_clip = 3.0;
  GrpoLossStats s = grpo_loss<double, uint8_t>(c, lp, lo, nullptr, adv, mask, nullptr, grad, nullptr);
  // Token 0: ρ = e^{−0.5} = 0.6065 < 0.8: L = max(ρ, 0.8) = 0.8, clipped (no grad), clip_frac_low.
  // Token 1: ρ = 1: L = 1, grad = ρ/3. Token 2: ρ = e^{1.5} = 4.48 > 3: dual-clip L = 3, no grad.
  const double e15 = std::exp(1.5);
  expect_close(s.loss, (0.8 + 1.0 + 3.0) / 3, 1e-15, "loss");
  VG_EXPECT(grad[0] == 0 && grad[2] == 0 && grad[3] == 0, "clipped tokens have zero gradient");
  expect_close(grad[1], 1.0 / 3, 1e-15, "grad[1]");
  expect_close(s.clip_frac_low, 1.0 / 3, 1e-15, "clip_frac_low");
  expect_close(s.clip_frac_high, 0, 0, "clip_frac_high");
  expect_close(s.clip_frac_dual, 1.0 / 3, 1e-15, "clip_frac_dual");
  expect_close(s.ratio_mean, (std::exp(-0.5) + 1 + e15) / 3, 1e-15, "ratio_mean");
  expect_close(s.ppo_kl, (0.5 + 0 - 1.5) / 3, 1e-15, "ppo_kl");
  VG_EXPECT(s.num_tokens == 3 && s.num_valid_sequences == 1, "counts");
}

VG_TEST(grpo_loss_clamp_regions_block_the_gradient) {
  // Δ beyond +20 and below −20: ρ clamped, no gradient. k3 with lr − lp = 5: e^5 − 6 > 10: clamped, no gradient.
  // abs with lp == lr: gradient 0 (sign(0)). A = +1, ratios inside [0.8, 1.2] otherwise.
  const double lp[4] = {-1.0, -1.0, -1.0, -1.0};
  const double lo[4] = {-22.0, 21.0, -1.0, -1.0};
  const double lr[4] = {-1.0, -1.0, 4.0, -1.0};
  const double adv[1] = {1.0};
  const double mask[4] = {1, 1, 1, 1};
  double grad[4];
  GrpoLossConfig c;
  c.num_sequences = 1; c.seq_len = 4; c.clip_low = 0.2; c.clip_high = 1e9;  // no upper clip: only the ±20 clamp acts
  c.kl_coef = 1.0; c.kl_estimator = KlEstimator::K3; c.loss_agg = LossAgg::SeqMeanTokenSum;
  GrpoLossStats s = grpo_loss<double, double>(c, lp, lo, lr, adv, mask, nullptr, grad, nullptr);
  VG_EXPECT(grad[0] == 0.0, "Δ = 21 > 20 must block the gradient, got ", grad[0]);
  VG_EXPECT(grad[1] == 0.0, "Δ = −22 < −20 must block the gradient (A > 0 keeps the unclipped −ρ), got ", grad[1]);
  expect_close(grad[2], -1.0, 1e-15, "k3 clamped at 10 (no KL gradient), policy gradient −A·ρ = −1");
  expect_close(s.kl, 10.0 / 4, 1e-15, "kl stat uses the clamped k3 value");
  // ℓ = −e^20 (token 0) − e^−20 (token 1) + (−1 + 10) (token 2) − 1 (token 3), summed over the one sequence.
  expect_close(s.loss, -std::exp(20.0) - std::exp(-20.0) + 9.0 - 1.0, 1e-15, "loss");
  c.kl_estimator = KlEstimator::Abs;
  grpo_loss<double, double>(c, lp, lo, lr, adv, mask, nullptr, grad, nullptr);
  expect_close(grad[3], -1.0, 1e-15, "abs at d = 0 contributes no gradient (only −A·ρ)");
  expect_close(grad[2], -1.0 - 1.0, 1e-15, "abs at d = −5: sign −1");
}

VG_TEST(grpo_loss_is_thread_count_independent) {
  auto g = vgtest::rng(51);
  Inputs in = make_inputs(g, 300, 37, true);
  const int keep = num_threads();
  GrpoLossConfig c;
  c.num_sequences = in.N; c.seq_len = in.L; c.clip_low = 0.2; c.clip_high = 0.28; c.dual_clip = 3; c.kl_coef = 0.01;
  c.entropy_coef = 0.001; c.loss_agg = LossAgg::TokenMean;
  std::vector<float> lp = as<float>(in.lp), lo = as<float>(in.lo), lr = as<float>(in.lr), adv = as<float>(in.adv),
                     mask = as<float>(in.mask), ent = as<float>(in.ent);
  std::vector<std::vector<float>> grads;
  std::vector<double> losses;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<float> grad(lp.size());
    losses.push_back(grpo_loss<float, float>(c, lp.data(), lo.data(), lr.data(), adv.data(), mask.data(), ent.data(),
                                             grad.data(), nullptr)
                         .loss);
    grads.push_back(grad);
  }
  set_num_threads(keep);
  for (size_t j = 1; j < losses.size(); ++j) {
    VG_EXPECT(losses[j] == losses[0], "loss differs with thread count: ", losses[j], " vs ", losses[0]);
    VG_EXPECT(grads[j] == grads[0], "grad differs with thread count");
  }
}

VG_TEST(grpo_loss_empty_and_fully_masked_batches) {
  const double lp[3] = {-1, -2, -3}, lo[3] = {-1.1, -2.1, -2.9}, adv[1] = {0.7};
  const double mask[3] = {0, 0, 0};
  double grad[3] = {5, 5, 5};
  for (LossAgg agg : kAggs) {
    GrpoLossConfig c;
    c.num_sequences = 1; c.seq_len = 3; c.loss_agg = agg;
    GrpoLossStats s = grpo_loss<double, double>(c, lp, lo, nullptr, adv, mask, nullptr, grad, nullptr);
    VG_EXPECT(s.loss == 0 && grad[0] == 0 && grad[1] == 0 && grad[2] == 0 && s.num_tokens == 0 &&
                  s.num_valid_sequences == 0 && s.ratio_mean == 0,
              "fully masked batch");
    c.num_sequences = 0;
    s = grpo_loss<double, double>(c, nullptr, nullptr, nullptr, nullptr, static_cast<const double*>(nullptr), nullptr,
                                  nullptr, nullptr);
    VG_EXPECT(s.loss == 0, "empty batch");
  }
}

VG_TEST(grpo_loss_rejects_bad_arguments) {
  const double lp[2] = {-1, -2}, adv[1] = {1};
  const uint8_t mask[2] = {1, 1};
  double grad[2];
  auto call = [&](GrpoLossConfig c, const double* ref, const double* ent) {
    grpo_loss<double, uint8_t>(c, lp, lp, ref, adv, mask, ent, grad, nullptr);
  };
  GrpoLossConfig base;
  base.num_sequences = 1;
  base.seq_len = 2;
  GrpoLossConfig c = base;
  c.dual_clip = 1.0;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "dualClip must be > 1");
  c = base; c.clip_low = -0.1;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "clipLow must be >= 0, got -0.1");
  c = base; c.clip_high = -1;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "clipHigh must be >= 0");
  c = base; c.kl_coef = 0.5;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "needs refLogprobs");
  c = base; c.kl_coef = -0.5;
  VG_EXPECT_THROWS(call(c, lp, nullptr), "klCoef must be >= 0");
  c = base; c.entropy_coef = 0.1;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "needs entropy");
  c = base; c.loss_scale = -3;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "lossScale must be > 0");
  c = base; c.token_count_normalizer = -1;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "tokenCountNormalizer");
  c = base; c.sequence_count_normalizer = NAN;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "sequenceCountNormalizer");
  c = base; c.seq_len = -2;
  VG_EXPECT_THROWS(call(c, nullptr, nullptr), "seqLen=-2");
  try {
    c = base; c.dual_clip = 0.5;
    call(c, nullptr, nullptr);
  } catch (const ArgumentError&) {
    return;  // argument errors are ArgumentError (RangeError in JS)
  }
  VG_EXPECT(false, "expected vg::ArgumentError");
}

// Ties follow torch.minimum's backward: at ρ exactly equal to the dual-clip constant (A < 0) the unclipped
// branch and the constant each get half of the gradient. c = e (as a double) so that ρ = exp(1 − 0) hits it.
VG_TEST(grpo_loss_dual_clip_tie_splits_the_gradient) {
  const double e = std::exp(1.0);
  const double lp[2] = {1.0, 0.0}, lo[2] = {0.0, 0.0}, adv[1] = {-2.0};
  const double mask[2] = {1, 1};
  double grad[2];
  GrpoLossConfig c;
  c.num_sequences = 1; c.seq_len = 2; c.clip_low = 0.2; c.clip_high = 0.2; c.dual_clip = e;
  c.loss_agg = LossAgg::SeqMeanTokenSum;
  GrpoLossStats s = grpo_loss<double, double>(c, lp, lo, nullptr, adv, mask, nullptr, grad, nullptr);
  expect_close(grad[0], 0.5 * 2.0 * e, 1e-15, "half of −A·ρ at the tie");
  expect_close(grad[1], 2.0, 1e-15, "ρ = 1: −A·ρ");
  expect_close(s.loss, 2.0 * e + 2.0, 1e-15, "loss");
  VG_EXPECT(s.clip_frac_dual == 0, "a tie is not 'Lclip > −A·c'");
}
