// Philox4x32-10 known answers and the sampler: greedy, chi-square goodness of fit of the draws against a plain
// filtered-softmax reference for each filter, reproducibility across batches / row order / threads, seeds,
// banned ids, returned log-probs against a double recomputation, and bad input.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "cpu/sampling.h"
#include "test_framework.h"

using namespace vg;

namespace {

// ---- chi-square p-value: Q(df/2, x/2), the regularised upper incomplete gamma (series / continued fraction).
double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double log_pre = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {  // series for P, Q = 1 - P
    double ap = a, del = 1.0 / a, sum = del;
    for (int n = 0; n < 10000 && std::fabs(del) > std::fabs(sum) * 1e-16; ++n) {
      ap += 1;
      del *= x / ap;
      sum += del;
    }
    return 1.0 - sum * std::exp(log_pre);
  }
  const double tiny = 1e-300;  // Lentz's continued fraction for Q
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-16) break;
  }
  return std::exp(log_pre) * h;
}
double chi2_pvalue(double stat, int df) { return gamma_q(0.5 * df, 0.5 * stat); }

// The chi-square tests reject at p < 1e-6. Inputs and seeds are fresh every run, so with 7 such tests a
// correct sampler fails about once in 140,000 suite runs (at 1e-4 it was once in ~1,400, which we saw in
// 121-seed sweeps); a wrong distribution still scores p < 1e-20 at 20,000 draws (see the power test below).
constexpr double kRejectP = 1e-6;

// ---- plain reference of the filtered, renormalised distribution (full sort, filters one after another).
std::vector<double> reference_probs(const std::vector<float>& x, double T, int64_t k, double p, double minp,
                                    const std::vector<int32_t>& banned) {
  const int64_t V = static_cast<int64_t>(x.size());
  std::vector<bool> ban(V, false);
  for (int32_t b : banned) ban[b] = true;
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });  // ties: lower id
  double mx = -INFINITY;
  for (int64_t j = 0; j < V; ++j)
    if (!ban[j]) mx = std::max(mx, double(x[j]));
  std::vector<double> pr(V, 0.0);
  for (int64_t j = 0; j < V; ++j)
    if (!ban[j]) pr[j] = std::exp((double(x[j]) - mx) / T);
  auto normalise = [&] {
    double s = 0;
    for (double v : pr) s += v;
    for (double& v : pr) v /= s;
  };
  normalise();
  if (k > 0) {
    int64_t seen = 0;
    for (int32_t j : order)
      if (!ban[j] && seen++ >= k) pr[j] = 0;
    normalise();
  }
  if (p < 1) {
    double before = 0;
    for (int32_t j : order) {
      const double keep = pr[j];
      if (before >= p) pr[j] = 0;
      before += keep;
    }
    normalise();
  }
  if (minp > 0) {
    const double pmax = *std::max_element(pr.begin(), pr.end());
    for (double& v : pr)
      if (v < minp * pmax) v = 0;
    normalise();
  }
  return pr;
}

// log_softmax(x / T)[tok] over the whole vocabulary, nothing banned, in double.
double full_logprob(const float* x, int64_t V, double T, int32_t tok) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(x[j]));
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += std::exp((double(x[j]) - mx) / T);
  return (double(x[tok]) - mx) / T - std::log(s);
}

struct Draws {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs, filtered;
};

// n draws of one logits row: the row repeated at positions 0..n-1 of one sequence.
Draws draw_many(const std::vector<float>& x, int64_t n, const SamplingOptions& o, uint32_t seq) {
  const int64_t V = static_cast<int64_t>(x.size());
  std::vector<float> logits(n * V);
  for (int64_t i = 0; i < n; ++i) std::copy(x.begin(), x.end(), logits.begin() + i * V);
  std::vector<uint32_t> seqs(n, seq), pos(n);
  std::iota(pos.begin(), pos.end(), 0u);
  Draws d{std::vector<int32_t>(n), std::vector<float>(n), std::vector<float>(n)};
  sample_tokens<float>(logits.data(), n, V, seqs.data(), pos.data(), o, d.tokens.data(), d.logprobs.data(),
                       d.filtered.data());
  return d;
}

// Chi-square goodness of fit of `tokens` against `probs`. Tokens with probability 0 must never appear (a hard
// failure); tokens with expected count < 5 are pooled into one bin. Returns the p-value.
double chi_square_fit(const std::vector<int32_t>& tokens, const std::vector<double>& probs) {
  const double n = static_cast<double>(tokens.size());
  std::vector<double> count(probs.size(), 0.0);
  for (int32_t t : tokens) {
    VG_EXPECT(t >= 0 && t < static_cast<int32_t>(probs.size()), "token ", t, " out of range");
    VG_EXPECT(probs[t] > 0, "token ", t, " was drawn but the filtered distribution gives it probability 0");
    count[t] += 1;
  }
  std::vector<double> obs, expct;
  double pool_o = 0, pool_e = 0;
  for (size_t j = 0; j < probs.size(); ++j) {
    if (probs[j] == 0) continue;
    if (probs[j] * n >= 5) {
      obs.push_back(count[j]);
      expct.push_back(probs[j] * n);
    } else {
      pool_o += count[j];
      pool_e += probs[j] * n;
    }
  }
  if (pool_e > 0) {
    if (pool_e >= 5 || obs.empty()) {
      obs.push_back(pool_o);
      expct.push_back(pool_e);
    } else {  // too small on its own: merge into the smallest bin
      const size_t s = std::min_element(expct.begin(), expct.end()) - expct.begin();
      obs[s] += pool_o;
      expct[s] += pool_e;
    }
  }
  if (obs.size() < 2) return 1.0;  // a single bin: the draw is forced, nothing to test
  double stat = 0;
  for (size_t i = 0; i < obs.size(); ++i) stat += (obs[i] - expct[i]) * (obs[i] - expct[i]) / expct[i];
  return chi2_pvalue(stat, static_cast<int>(obs.size()) - 1);
}

struct FilterCase {
  const char* name;
  double T;
  int64_t k;
  double p, minp;
  std::vector<int32_t> banned;
};

// 20,000 draws for the case; checks the fit and that both returned log-probs match the double recomputation.
void check_filter_case(const FilterCase& c, uint64_t salt) {
  auto g = vgtest::rng(salt);
  const int64_t V = 40, n = 20000;
  // Fresh logits until the filters keep at least 3 tokens and drop at least 3 (a case that tests something).
  std::vector<float> x;
  std::vector<double> probs;
  for (int attempt = 0;; ++attempt) {
    VG_EXPECT(attempt < 1000, c.name, ": no logits found that the filters leave non-trivial");
    x = vgtest::randn<float>(V, g, 1.5);
    probs = reference_probs(x, c.T, c.k, c.p, c.minp, c.banned);
    int kept = 0;
    for (double v : probs) kept += v > 0;
    const bool filters = c.k > 0 || c.p < 1 || c.minp > 0;
    if (kept >= 3 && (!filters || kept + 3 <= V - static_cast<int64_t>(c.banned.size()))) break;
  }
  SamplingOptions o;
  o.seed = g();
  o.temperature = c.T, o.top_k = c.k, o.top_p = c.p, o.min_p = c.minp;
  o.banned = c.banned.data(), o.num_banned = static_cast<int64_t>(c.banned.size());
  const Draws d = draw_many(x, n, o, static_cast<uint32_t>(g()));
  const double pv = chi_square_fit(d.tokens, probs);
  VG_EXPECT(pv >= kRejectP, c.name, ": chi-square p-value ", pv, " < ", kRejectP);
  for (int64_t i = 0; i < n; i += 97) {
    const int32_t t = d.tokens[i];
    VG_EXPECT(std::fabs(d.logprobs[i] - full_logprob(x.data(), V, c.T, t)) < 1e-5, c.name, ": logprob of draw ", i);
    VG_EXPECT(std::fabs(d.filtered[i] - std::log(probs[t])) < 1e-5, c.name, ": filtered logprob of draw ", i, " = ",
              d.filtered[i], " vs ", std::log(probs[t]));
  }
}

}  // namespace

VG_TEST(sampling_philox_known_answers) {
  // Random123's kat_vectors for philox4x32_10 (counter, key -> output).
  VG_EXPECT((philox4x32_10({0, 0, 0, 0}, {0, 0}) == Philox4x32Counter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  VG_EXPECT((philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
             Philox4x32Counter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  VG_EXPECT((philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
             Philox4x32Counter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
  // Key halves: low 32 bits first.
  VG_EXPECT((philox_key(0x0123456789abcdefull) == Philox4x32Key{0x89abcdef, 0x01234567}));
  // uniform53 uses 53 bits of words 0 and 1: all-ones gives the largest double below 1.
  VG_EXPECT(uniform53({0xffffffff, 0xffffffff, 0, 0}) == 1.0 - 0x1.0p-53);
  VG_EXPECT(uniform53({0, 0x7ff, 0, 0}) == 0.0);
  VG_EXPECT(uniform53({0, 0x800, 0, 0}) == 0x1.0p-53);
}

VG_TEST(sampling_uniform_is_uniform) {
  // 100,000 draws over (sequence, position) counters into 50 equal bins: chi-square at p < 1e-4, and the mean.
  const int bins = 50, n = 100000;
  std::vector<double> count(bins, 0.0);
  double mean = 0;
  const uint64_t seed = vgtest::rng(10)();
  for (int i = 0; i < n; ++i) {
    const double u = sampling_uniform(seed, static_cast<uint32_t>(i % 7), static_cast<uint32_t>(i / 7));
    VG_EXPECT(u >= 0 && u < 1, "u = ", u);
    count[static_cast<int>(u * bins)] += 1;
    mean += u / n;
  }
  double stat = 0;
  for (double c : count) stat += (c - n / bins) * (c - n / bins) / (n / bins);
  VG_EXPECT(chi2_pvalue(stat, bins - 1) >= kRejectP, "uniform chi-square ", stat);
  VG_EXPECT(std::fabs(mean - 0.5) < 5 * std::sqrt(1.0 / 12 / n), "mean ", mean);
}

VG_TEST(sampling_chi2_pvalue_matches_tables) {
  // Table values (7 significant digits, hence the 1e-3 relative tolerance): the chi2 critical values at
  // p = 0.05 (df 1) and p = 1e-4 (df 10).
  VG_EXPECT(std::fabs(chi2_pvalue(3.841459, 1) - 0.05) < 1e-6, chi2_pvalue(3.841459, 1));
  VG_EXPECT(std::fabs(chi2_pvalue(35.56371, 10) / 1e-4 - 1) < 1e-3, chi2_pvalue(35.56371, 10));
  // Even df has a closed form: Q = exp(-x/2) sum_{i < df/2} (x/2)^i / i!. Both branches (series, fraction).
  for (int df : {2, 4, 12, 40})
    for (double x : {0.5, 3.0, 11.0, 30.0, 60.0, 95.0}) {
      double term = 1, sum = 0;
      for (int i = 0; i < df / 2; ++i) {
        sum += term;
        term *= (x / 2) / (i + 1);
      }
      const double want = std::exp(-x / 2) * sum;
      VG_EXPECT(std::fabs(chi2_pvalue(x, df) - want) <= 1e-10 * want + 1e-14, "df ", df, " x ", x, ": ",
                chi2_pvalue(x, df), " vs ", want);
    }
}

VG_TEST(sampling_greedy_is_argmax) {
  auto g = vgtest::rng(11);
  const int64_t B = 20, V = 1000;
  auto x = vgtest::randn<float>(B * V, g, 2.0);
  // Row 3: a tie for the max -> the lower id. Row 5: the max is banned -> the next best.
  x[3 * V + 700] = 50.f, x[3 * V + 200] = 50.f;
  x[5 * V + 17] = 60.f, x[5 * V + 900] = 55.f;
  const std::vector<int32_t> banned = {17, 4};
  SamplingOptions o;
  o.temperature = 0, o.top_k = 3, o.top_p = 0.5, o.seed = g();
  o.banned = banned.data(), o.num_banned = 2;
  std::vector<uint32_t> seqs(B), pos(B);
  for (int64_t b = 0; b < B; ++b) seqs[b] = static_cast<uint32_t>(g()), pos[b] = static_cast<uint32_t>(b);
  std::vector<int32_t> tok(B);
  std::vector<float> lp(B), flp(B);
  sample_tokens<float>(x.data(), B, V, seqs.data(), pos.data(), o, tok.data(), lp.data(), flp.data());
  for (int64_t b = 0; b < B; ++b) {
    const float* r = x.data() + b * V;
    int32_t best = -1;
    for (int32_t j = 0; j < V; ++j)
      if (j != 17 && j != 4 && (best < 0 || r[j] > r[best])) best = j;
    VG_EXPECT(tok[b] == best, "row ", b, ": ", tok[b], " vs argmax ", best);
    VG_EXPECT(std::fabs(lp[b] - full_logprob(r, V, 1.0, best)) < 1e-5, "row ", b, " logprob");
    VG_EXPECT(flp[b] == 0.f, "greedy filtered logprob is log 1");
  }
  VG_EXPECT(tok[3] == 200 && tok[5] == 900, "tie / banned max: ", tok[3], " ", tok[5]);
  // A one-token vocabulary.
  float one = 0.3f;
  uint32_t z = 0;
  int32_t t1 = -1;
  float l1 = 1, f1 = 1;
  SamplingOptions o1;
  o1.temperature = 0.8;
  sample_tokens<float>(&one, 1, 1, &z, &z, o1, &t1, &l1, &f1);
  VG_EXPECT(t1 == 0 && std::fabs(l1) < 1e-7 && std::fabs(f1) < 1e-7, "V = 1");
}

VG_TEST(sampling_chi_square_temperature) { check_filter_case({"temperature 0.7", 0.7, 0, 1.0, 0.0, {}}, 20); }
VG_TEST(sampling_chi_square_plain) { check_filter_case({"temperature 1", 1.0, 0, 1.0, 0.0, {}}, 21); }
VG_TEST(sampling_chi_square_top_k) { check_filter_case({"top-k 6", 1.0, 6, 1.0, 0.0, {}}, 22); }
VG_TEST(sampling_chi_square_top_p) { check_filter_case({"top-p 0.8", 1.2, 0, 0.8, 0.0, {}}, 23); }
VG_TEST(sampling_chi_square_min_p) { check_filter_case({"min-p 0.08", 1.0, 0, 1.0, 0.08, {}}, 24); }
VG_TEST(sampling_chi_square_combined) {
  check_filter_case({"T 0.8 + top-k 15 + top-p 0.9 + min-p 0.03 + banned", 0.8, 15, 0.9, 0.03, {0, 5, 11, 39}}, 25);
}

// The goodness-of-fit test has power: draws at temperature 1 are rejected against the temperature-0.8
// distribution, and top-k 6 draws against top-k 7.
VG_TEST(sampling_chi_square_rejects_wrong_distribution) {
  auto g = vgtest::rng(26);
  const int64_t V = 40;
  auto x = vgtest::randn<float>(V, g, 1.5);
  SamplingOptions o;
  o.seed = g();
  const Draws d = draw_many(x, 20000, o, 3);
  const double p1 = chi_square_fit(d.tokens, reference_probs(x, 0.8, 0, 1.0, 0.0, {}));
  VG_EXPECT(p1 < kRejectP, "T=1 draws vs T=0.8 distribution: p = ", p1);
  o.top_k = 6;
  const Draws d6 = draw_many(x, 20000, o, 3);
  auto p7 = reference_probs(x, 1.0, 7, 1.0, 0.0, {});
  const double p2 = chi_square_fit(d6.tokens, reference_probs(x, 1.0, 6, 1.0, 0.0, {}));
  VG_EXPECT(p2 >= kRejectP, "top-k 6 fit p = ", p2);
  // Against top-k 7 the 7th token is expected but never drawn: chi-square must reject.
  const double p3 = chi_square_fit(d6.tokens, p7);
  VG_EXPECT(p3 < kRejectP, "top-k 6 draws vs top-k 7: p = ", p3);
}

VG_TEST(sampling_reproducible_across_batches_order_and_threads) {
  auto g = vgtest::rng(30);
  const int64_t R = 64, V = 500, extra = 37;
  auto x = vgtest::randn<float>(R * V, g, 2.0);
  std::vector<uint32_t> seqs(R), pos(R);
  for (int64_t r = 0; r < R; ++r) seqs[r] = static_cast<uint32_t>(g()), pos[r] = static_cast<uint32_t>(g() % 4096);
  SamplingOptions o;
  o.seed = g();
  o.temperature = 0.9, o.top_k = 50, o.top_p = 0.95, o.min_p = 0.01;
  const int saved = num_threads();

  set_num_threads(1);
  std::vector<int32_t> tok(R);
  std::vector<float> lp(R), flp(R);
  sample_tokens<float>(x.data(), R, V, seqs.data(), pos.data(), o, tok.data(), lp.data(), flp.data());

  // The same rows shuffled among unrelated rows, on 2 threads.
  set_num_threads(2);
  std::vector<int64_t> slot(R);
  std::iota(slot.begin(), slot.end(), 0);
  std::shuffle(slot.begin(), slot.end(), g);
  const int64_t B = R + extra;
  auto big = vgtest::randn<float>(B * V, g, 2.0);
  std::vector<uint32_t> bseq(B), bpos(B);
  for (int64_t i = 0; i < B; ++i) bseq[i] = static_cast<uint32_t>(g()), bpos[i] = static_cast<uint32_t>(g());
  std::vector<int64_t> where(R);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t at = slot[r] + (slot[r] * extra) / R;  // spread the original rows among the extra ones
    where[r] = at;
    std::copy(x.begin() + r * V, x.begin() + (r + 1) * V, big.begin() + at * V);
    bseq[at] = seqs[r], bpos[at] = pos[r];
  }
  std::vector<int32_t> btok(B);
  std::vector<float> blp(B), bflp(B);
  sample_tokens<float>(big.data(), B, V, bseq.data(), bpos.data(), o, btok.data(), blp.data(), bflp.data());
  set_num_threads(saved);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t at = where[r];
    VG_EXPECT(btok[at] == tok[r] && blp[at] == lp[r] && bflp[at] == flp[r], "row ", r, " (moved to ", at,
              "): token ", tok[r], " became ", btok[at]);
  }
  // Each row alone.
  for (int64_t r = 0; r < R; r += 9) {
    int32_t t1;
    float l1, f1;
    sample_tokens<float>(x.data() + r * V, 1, V, &seqs[r], &pos[r], o, &t1, &l1, &f1);
    VG_EXPECT(t1 == tok[r] && l1 == lp[r] && f1 == flp[r], "row ", r, " alone");
  }
}

VG_TEST(sampling_seeds_and_counters_change_draws) {
  auto g = vgtest::rng(31);
  const int64_t B = 200, V = 1000;
  auto x = vgtest::randn<float>(B * V, g, 0.3);  // flat: two independent draws rarely agree
  std::vector<uint32_t> seqs(B), pos(B);
  for (int64_t b = 0; b < B; ++b) seqs[b] = static_cast<uint32_t>(b), pos[b] = 10;
  auto draw = [&](uint64_t seed, const std::vector<uint32_t>& s, const std::vector<uint32_t>& p) {
    SamplingOptions o;
    o.seed = seed;
    std::vector<int32_t> t(B);
    std::vector<float> l(B), f(B);
    sample_tokens<float>(x.data(), B, V, s.data(), p.data(), o, t.data(), l.data(), f.data());
    return t;
  };
  auto same = [&](const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    int n = 0;
    for (int64_t i = 0; i < B; ++i) n += a[i] == b[i];
    return n;
  };
  const uint64_t s0 = g();
  const auto base = draw(s0, seqs, pos);
  VG_EXPECT(same(base, draw(s0, seqs, pos)) == B, "same seed must repeat");
  VG_EXPECT(same(base, draw(s0 + 1, seqs, pos)) < B / 4, "seed + 1");
  VG_EXPECT(same(base, draw(s0 ^ (uint64_t(1) << 40), seqs, pos)) < B / 4, "seed differing in the high half");
  auto pos2 = pos;
  for (auto& p : pos2) p += 1;
  VG_EXPECT(same(base, draw(s0, seqs, pos2)) < B / 4, "next position");
  auto seqs2 = seqs;
  for (auto& s : seqs2) s += B;
  VG_EXPECT(same(base, draw(s0, seqs2, pos)) < B / 4, "other sequence ids");
}

VG_TEST(sampling_banned_ids_never_drawn) {
  auto g = vgtest::rng(32);
  const int64_t V = 300, n = 5000;
  auto x = vgtest::randn<float>(V, g, 1.0);
  const std::vector<int32_t> banned = {0, 7, 150, 151, 299, 7};  // repeats are fine
  for (int32_t b : banned) x[b] = 8.f;                           // the banned ids would dominate otherwise
  for (double T : {1.5, 0.0}) {
    SamplingOptions o;
    o.seed = g();
    o.temperature = T;
    o.banned = banned.data(), o.num_banned = static_cast<int64_t>(banned.size());
    const Draws d = draw_many(x, T == 0 ? 10 : n, o, 5);
    for (size_t i = 0; i < d.tokens.size(); ++i)
      VG_EXPECT(std::find(banned.begin(), banned.end(), d.tokens[i]) == banned.end(), "draw ", i, " = banned id ",
                d.tokens[i]);
    // logprob stays the unbanned full-vocabulary one (what the trainer recomputes); filtered excludes them.
    const int32_t t = d.tokens[0];
    VG_EXPECT(std::fabs(d.logprobs[0] - full_logprob(x.data(), V, T == 0 ? 1.0 : T, t)) < 1e-5, "logprob");
    if (T > 0) {
      const auto pr = reference_probs(x, T, 0, 1.0, 0.0, banned);
      VG_EXPECT(std::fabs(d.filtered[0] - std::log(pr[t])) < 1e-5, "filtered logprob");
    }
  }
}

VG_TEST(sampling_logprobs_match_double_recompute_large_vocab) {
  // A Qwen-sized vocabulary, every filter: both returned log-probs against a double recompute. The double
  // instantiation is used (on float-valued logits) so the filtered log-prob pins the kept set exactly: one
  // token too many or too few at a filter's boundary moves log(mass kept) by >= ~1e-9, above the 1e-10
  // tolerance.
  auto g = vgtest::rng(33);
  const int64_t B = 3, V = 151936;
  auto xf = vgtest::randn<float>(B * V, g, 2.5);
  std::vector<double> x(xf.begin(), xf.end());
  std::vector<uint32_t> seqs(B), pos(B);
  for (int64_t b = 0; b < B; ++b) seqs[b] = static_cast<uint32_t>(g()), pos[b] = static_cast<uint32_t>(b * 3);
  const std::vector<int32_t> banned = {151655, 151652, 151653};  // Qwen2.5-VL's vision special tokens
  struct Cfg {
    double T;
    int64_t k;
    double p, minp;
  };
  for (const Cfg& c : {Cfg{1.0, 0, 1.0, 0.0}, Cfg{0.6, 0, 0.9, 0.0}, Cfg{1.1, 0, 0.995, 0.0}, Cfg{1.3, 200, 0.95, 0.001},
                       Cfg{0.9, 0, 1.0, 0.02}}) {
    SamplingOptions o;
    o.seed = g();
    o.temperature = c.T, o.top_k = c.k, o.top_p = c.p, o.min_p = c.minp;
    o.banned = banned.data(), o.num_banned = 3;
    std::vector<int32_t> tok(B);
    std::vector<double> lp(B), flp(B);
    sample_tokens<double>(x.data(), B, V, seqs.data(), pos.data(), o, tok.data(), lp.data(), flp.data());
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> row(xf.begin() + b * V, xf.begin() + (b + 1) * V);
      const auto pr = reference_probs(row, c.T, c.k, c.p, c.minp, banned);
      VG_EXPECT(pr[tok[b]] > 0, "row ", b, " drew a filtered-out token ", tok[b]);
      const double want = full_logprob(row.data(), V, c.T, tok[b]);
      VG_EXPECT(std::fabs(lp[b] - want) < 1e-10 * (1 + std::fabs(want)), "row ", b, " logprob ", lp[b], " vs ", want);
      const double wantf = std::log(pr[tok[b]]);
      VG_EXPECT(std::fabs(flp[b] - wantf) < 1e-10 * (1 + std::fabs(wantf)), "row ", b, " filtered ", flp[b], " vs ",
                wantf, " (T ", c.T, ", k ", c.k, ", p ", c.p, ", min-p ", c.minp, ")");
    }
  }
}

VG_TEST(sampling_ties_broken_by_lower_id) {
  // Ten equal logits: top-k 3 keeps ids {0, 1, 2}; top-p 0.35 keeps {0, 1, 2, 3} (the mass before id 3 is 0.3
  // < 0.35, before id 4 it is 0.4); top-k 7 then top-p 0.35 renormalises to 1/7 each and keeps {0, 1, 2}
  // (mass before id 3 is 3/7 > 0.35). Every kept id is drawn, with prob 1/|kept|.
  // Then a tie group straddling the top-k boundary among other logits.
  const int64_t V = 10, n = 4000;
  const std::vector<float> flat(V, 0.25f);
  struct Case {
    int64_t k;
    double p;
    int32_t kept;
  };
  for (const Case& c : {Case{3, 1.0, 3}, Case{0, 0.35, 4}, Case{7, 0.35, 3}}) {
    SamplingOptions o;
    o.seed = vgtest::rng(40)();
    o.top_k = c.k, o.top_p = c.p;
    const Draws d = draw_many(flat, n, o, 9);
    std::vector<int> count(V, 0);
    for (int32_t t : d.tokens) count[t]++;
    for (int32_t j = 0; j < V; ++j) {
      if (j < c.kept) VG_EXPECT(count[j] > n / c.kept / 2, "k ", c.k, " p ", c.p, ": id ", j, " drawn ", count[j], " times");
      else VG_EXPECT(count[j] == 0, "k ", c.k, " p ", c.p, ": id ", j, " must be filtered out, drawn ", count[j], " times");
    }
    VG_EXPECT(std::fabs(d.filtered[0] - std::log(1.0 / c.kept)) < 1e-6, "filtered logprob ", d.filtered[0]);
  }
  // Logits 5 (id 8), then a tie group at 3 (ids 2, 4, 6, 9), then the rest at 0: top-k 3 keeps 8, 2, 4.
  std::vector<float> x(V, 0.f);
  x[8] = 5.f, x[2] = x[4] = x[6] = x[9] = 3.f;
  SamplingOptions o;
  o.seed = vgtest::rng(41)();
  o.top_k = 3;
  o.temperature = 2.5;  // flatten so every kept id shows up
  const Draws d = draw_many(x, n, o, 4);
  std::vector<int> count(V, 0);
  for (int32_t t : d.tokens) count[t]++;
  VG_EXPECT(count[8] > 0 && count[2] > 0 && count[4] > 0, "kept ids drawn: ", count[8], " ", count[2], " ", count[4]);
  VG_EXPECT(count[8] + count[2] + count[4] == n, "ids outside {8, 2, 4} drawn: 6 -> ", count[6], ", 9 -> ", count[9]);
}

VG_TEST(sampling_rejects_bad_input) {
  const int64_t B = 3, V = 600;
  std::vector<float> x(B * V, 0.5f);
  std::vector<uint32_t> s(B, 1), p(B, 2);
  std::vector<int32_t> t(B);
  std::vector<float> l(B), f(B);
  auto run = [&](SamplingOptions o) { sample_tokens<float>(x.data(), B, V, s.data(), p.data(), o, t.data(), l.data(), f.data()); };
  SamplingOptions o;
  const std::vector<int32_t> bad = {3, 600};
  o.banned = bad.data(), o.num_banned = 2;
  VG_EXPECT_THROWS(run(o), "bannedTokens[1] = 600 is not a token id (vocabSize is 600)");
  o = SamplingOptions{};
  o.top_p = 0;
  VG_EXPECT_THROWS(run(o), "topP must be in (0, 1]");
  o = SamplingOptions{};
  o.temperature = -1;
  VG_EXPECT_THROWS(run(o), "temperature must be a finite number >= 0");
  o = SamplingOptions{};
  o.min_p = 1.5;
  VG_EXPECT_THROWS(run(o), "minP must be in [0, 1]");
  o = SamplingOptions{};
  o.top_k = -2;
  VG_EXPECT_THROWS(run(o), "topK must be >= 0");
  o = SamplingOptions{};
  x[2 * V + 5] = NAN;
  VG_EXPECT_THROWS(run(o), "logits[2, 5] = nan");
  x[2 * V + 5] = INFINITY;
  VG_EXPECT_THROWS(run(o), "logits[2, 5] = inf");
  x[2 * V + 5] = 0.f;
  std::vector<int32_t> all(V);
  std::iota(all.begin(), all.end(), 0);
  o.banned = all.data(), o.num_banned = V;
  VG_EXPECT_THROWS(run(o), "row 0 has no token left to sample");
  // -inf logits are masked tokens, not errors.
  std::fill(x.begin(), x.end(), -INFINITY);
  for (int64_t b = 0; b < B; ++b) x[b * V + 42 + b] = 1.f;
  run(SamplingOptions{});
  VG_EXPECT(t[0] == 42 && t[1] == 43 && t[2] == 44 && l[0] == 0.f && f[0] == 0.f, "only finite logit wins");
}
