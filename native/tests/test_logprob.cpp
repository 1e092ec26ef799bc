// Chunked log-prob gather: forward against a plain full-softmax reference in double, backward against central
// finite differences in double, the full-logits path, float vs double, thread-count invariance and bad input.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "cpu/logprob.h"
#include "test_framework.h"

using namespace vg;

namespace {

struct Ref {
  std::vector<double> logprob, entropy, lse;
};

// Plain reference: whole logits row in double, two-pass log-softmax, entropy from the definition.
template <typename T>
Ref reference(const std::vector<T>& h, const std::vector<T>& W, const std::vector<int32_t>& t, int64_t N, int64_t H,
              int64_t V, double temp) {
  Ref r{std::vector<double>(N), std::vector<double>(N), std::vector<double>(N)};
  std::vector<double> z(V);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t k = 0; k < H; ++k) s += double(h[n * H + k]) * double(W[v * H + k]);
      z[v] = s / temp;
    }
    const double m = *std::max_element(z.begin(), z.end());
    double s = 0;
    for (double v : z) s += std::exp(v - m);
    const double lse = m + std::log(s);
    double ent = 0;
    for (double v : z) ent -= std::exp(v - lse) * (v - lse);
    r.lse[n] = lse;
    r.logprob[n] = t[n] >= 0 ? z[t[n]] - lse : 0.0;
    r.entropy[n] = t[n] >= 0 ? ent : 0.0;
  }
  return r;
}

// Random targets in [0, V), with roughly one row in five ignored (-1 or -100).
std::vector<int32_t> random_targets(int64_t N, int64_t V, std::mt19937_64& g, bool with_ignored = true) {
  std::vector<int32_t> t(N);
  std::uniform_int_distribution<int64_t> d(0, V - 1), ign(0, 4);
  for (auto& x : t) x = static_cast<int32_t>(d(g));
  if (with_ignored && N > 1)
    for (int64_t n = 0; n < N; ++n)
      if (ign(g) == 0) t[n] = (n & 1) ? -1 : -100;
  return t;
}

struct Shape {
  int64_t N, H, V, chunk;
};

}  // namespace

VG_TEST(logprob_forward_matches_reference_double) {
  auto g = vgtest::rng(1);
  // V not a multiple of the chunk, V < chunk, N = 1, chunk = 1, many chunks.
  const Shape shapes[] = {{6, 7, 23, 8}, {3, 6, 5, 16}, {1, 9, 40, 7}, {17, 13, 100, 32}, {4, 3, 9, 1}, {9, 16, 700, 64}};
  for (const Shape& s : shapes) {
    for (double temp : {1.0, 0.7, 1.6}) {
      auto h = vgtest::randn<double>(s.N * s.H, g), W = vgtest::randn<double>(s.V * s.H, g, 0.8);
      auto t = random_targets(s.N, s.V, g);
      std::vector<double> lp(s.N), ent(s.N), lse(s.N);
      logprob_forward<double>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), s.N, s.H, s.V, temp,
                              s.chunk);
      Ref ref = reference(h, W, t, s.N, s.H, s.V, temp);
      VG_EXPECT_ALLCLOSE(lp.data(), ref.logprob.data(), size_t(s.N), 1e-11, 1e-11);
      VG_EXPECT_ALLCLOSE(ent.data(), ref.entropy.data(), size_t(s.N), 1e-11, 1e-11);
      VG_EXPECT_ALLCLOSE(lse.data(), ref.lse.data(), size_t(s.N), 1e-11, 1e-11);
      // Without the entropy output the other two are unchanged.
      std::vector<double> lp2(s.N), lse2(s.N);
      logprob_forward<double>(h.data(), W.data(), t.data(), lp2.data(), nullptr, lse2.data(), s.N, s.H, s.V, temp,
                              s.chunk);
      VG_EXPECT(lp2 == lp && lse2 == lse, "entropy flag changed logprob/lse");
    }
  }
}

VG_TEST(logprob_forward_float_matches_reference) {
  auto g = vgtest::rng(2);
  const int64_t N = 21, H = 40, V = 3001, C = 512;
  // Large logits (scale ~ 12) so the online max rescaling is exercised.
  auto h = vgtest::randn<float>(N * H, g), W = vgtest::randn<float>(V * H, g, 2.0);
  auto t = random_targets(N, V, g);
  std::vector<float> lp(N), ent(N), lse(N);
  logprob_forward<float>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), N, H, V, 0.9, C);
  Ref ref = reference(h, W, t, N, H, V, 0.9);
  // float logits of magnitude ~ 15: absolute error ~ 1e-5 in log space.
  VG_EXPECT_ALLCLOSE(lp.data(), ref.logprob.data(), size_t(N), 1e-4, 1e-5);
  VG_EXPECT_ALLCLOSE(ent.data(), ref.entropy.data(), size_t(N), 1e-4, 1e-5);
  VG_EXPECT_ALLCLOSE(lse.data(), ref.lse.data(), size_t(N), 1e-4, 1e-5);
}

VG_TEST(logprob_float_vs_double) {
  auto g = vgtest::rng(3);
  const int64_t N = 33, H = 64, V = 2500, C = 300;
  auto hd = vgtest::randn<double>(N * H, g), Wd = vgtest::randn<double>(V * H, g, 0.5);
  std::vector<float> hf(hd.begin(), hd.end()), Wf(Wd.begin(), Wd.end());
  for (size_t i = 0; i < hd.size(); ++i) hd[i] = hf[i];  // same inputs exactly
  for (size_t i = 0; i < Wd.size(); ++i) Wd[i] = Wf[i];
  auto t = random_targets(N, V, g);
  auto gl = vgtest::randn<double>(N, g), ge = vgtest::randn<double>(N, g);
  std::vector<float> glf(gl.begin(), gl.end()), gef(ge.begin(), ge.end());
  for (size_t i = 0; i < gl.size(); ++i) gl[i] = glf[i], ge[i] = gef[i];

  std::vector<double> lpd(N), entd(N), lsed(N), dhd(N * H), dWd(V * H, 0.0);
  std::vector<float> lpf(N), entf(N), lsef(N), dhf(N * H), dWf(V * H, 0.f);
  logprob_forward<double>(hd.data(), Wd.data(), t.data(), lpd.data(), entd.data(), lsed.data(), N, H, V, 1.0, C);
  logprob_forward<float>(hf.data(), Wf.data(), t.data(), lpf.data(), entf.data(), lsef.data(), N, H, V, 1.0, C);
  VG_EXPECT_ALLCLOSE(lpf.data(), lpd.data(), size_t(N), 2e-5, 2e-5);
  VG_EXPECT_ALLCLOSE(entf.data(), entd.data(), size_t(N), 2e-5, 2e-5);
  logprob_backward<double>(hd.data(), Wd.data(), t.data(), lsed.data(), gl.data(), ge.data(), entd.data(), dhd.data(),
                           dWd.data(), N, H, V, 1.0, C);
  logprob_backward<float>(hf.data(), Wf.data(), t.data(), lsef.data(), glf.data(), gef.data(), entf.data(), dhf.data(),
                          dWf.data(), N, H, V, 1.0, C);
  // Gradient entries are sums of terms up to ~1 in size (p_j h and p_j W_j for the likely tokens) that cancel
  // to much smaller values, and the float lse is off by ~2e-6 at lse ~ 13, so the error follows the size of the
  // terms, not of the result: absolute floor 2e-5.
  VG_EXPECT_ALLCLOSE(dhf.data(), dhd.data(), dhd.size(), 2e-5, 1e-4);
  VG_EXPECT_ALLCLOSE(dWf.data(), dWd.data(), dWd.size(), 2e-5, 1e-4);
}

VG_TEST(logprob_ignored_targets) {
  auto g = vgtest::rng(4);
  const int64_t N = 7, H = 6, V = 50, C = 16;
  auto h = vgtest::randn<double>(N * H, g), W = vgtest::randn<double>(V * H, g);
  auto t = random_targets(N, V, g, false);
  t[1] = -1, t[4] = -100, t[6] = -7;
  auto gl = vgtest::randn<double>(N, g), ge = vgtest::randn<double>(N, g);
  std::vector<double> lp(N), ent(N), lse(N), dh(N * H), dW(V * H, 0.0);
  logprob_forward<double>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), N, H, V, 1.0, C);
  for (int64_t n : {1, 4, 6}) VG_EXPECT(lp[n] == 0 && ent[n] == 0, "row ", n, " ignored");
  Ref ref = reference(h, W, t, N, H, V, 1.0);
  VG_EXPECT_ALLCLOSE(lse.data(), ref.lse.data(), size_t(N), 1e-11, 1e-11);  // lse is still computed
  logprob_backward<double>(h.data(), W.data(), t.data(), lse.data(), gl.data(), ge.data(), ent.data(), dh.data(),
                           dW.data(), N, H, V, 1.0, C);
  for (int64_t n : {1, 4, 6})
    for (int64_t k = 0; k < H; ++k) VG_EXPECT(dh[n * H + k] == 0, "dh row ", n, " must be zero");
  // dW equals the gradient of the batch with the ignored rows removed.
  std::vector<double> h2, gl2, ge2, ent2, lse2;
  std::vector<int32_t> t2;
  for (int64_t n = 0; n < N; ++n) {
    if (t[n] < 0) continue;
    h2.insert(h2.end(), h.begin() + n * H, h.begin() + (n + 1) * H);
    t2.push_back(t[n]), gl2.push_back(gl[n]), ge2.push_back(ge[n]), ent2.push_back(ent[n]), lse2.push_back(lse[n]);
  }
  const int64_t N2 = static_cast<int64_t>(t2.size());
  std::vector<double> dh2(N2 * H), dW2(V * H, 0.0);
  logprob_backward<double>(h2.data(), W.data(), t2.data(), lse2.data(), gl2.data(), ge2.data(), ent2.data(),
                           dh2.data(), dW2.data(), N2, H, V, 1.0, C);
  VG_EXPECT_ALLCLOSE(dW.data(), dW2.data(), dW.size(), 1e-12, 1e-10);
}

// Backward against central finite differences of L = sum_n a_n logprob_n + b_n entropy_n, every entry of dh
// and dW, with the entropy term on and off and with entropy recomputed inside backward.
VG_TEST(logprob_backward_finite_differences) {
  auto g = vgtest::rng(5);
  const Shape shapes[] = {{4, 5, 11, 4}, {1, 3, 7, 16}, {3, 4, 13, 13}};
  for (const Shape& s : shapes) {
    const int64_t N = s.N, H = s.H, V = s.V;
    const double temp = 0.8;
    auto h = vgtest::randn<double>(N * H, g), W = vgtest::randn<double>(V * H, g);
    auto t = random_targets(N, V, g);
    if (N > 1) t[1] = -1;
    auto a = vgtest::randn<double>(N, g), b = vgtest::randn<double>(N, g);
    for (int mode = 0; mode < 3; ++mode) {  // 0: logprob only, 1: + entropy (given), 2: + entropy (recomputed)
      const bool with_ent = mode > 0;
      auto loss = [&]() {
        std::vector<double> lp(N), ent(N), lse(N);
        logprob_forward<double>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), N, H, V, temp,
                                s.chunk);
        double L = 0;
        for (int64_t n = 0; n < N; ++n) L += a[n] * lp[n] + (with_ent ? b[n] * ent[n] : 0.0);
        return L;
      };
      std::vector<double> lp(N), ent(N), lse(N), dh(N * H, NAN);
      auto dW0 = vgtest::randn<double>(V * H, g);  // dW accumulates: start from random values
      auto dW = dW0;
      logprob_forward<double>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), N, H, V, temp, s.chunk);
      logprob_backward<double>(h.data(), W.data(), t.data(), lse.data(), a.data(), with_ent ? b.data() : nullptr,
                               mode == 1 ? ent.data() : nullptr, dh.data(), dW.data(), N, H, V, temp, s.chunk);
      auto fd = [&](std::vector<double>& p, size_t i) {
        const double eps = 1e-6, keep = p[i];
        p[i] = keep + eps;
        const double lp_ = loss();
        p[i] = keep - eps;
        const double lm = loss();
        p[i] = keep;
        return (lp_ - lm) / (2 * eps);
      };
      // Central differences with eps = 1e-6 in double: truncation ~1e-12, rounding ~1e-10 -> threshold 1e-7.
      for (size_t i = 0; i < h.size(); ++i) {
        const double want = fd(h, i);
        VG_EXPECT(std::fabs(want - dh[i]) < 1e-7 * (1 + std::fabs(want)), "dh[", i, "] = ", dh[i], " vs fd ", want,
                  " (mode ", mode, ", V ", V, ")");
      }
      for (size_t i = 0; i < W.size(); ++i) {
        const double want = fd(W, i), got = dW[i] - dW0[i];
        VG_EXPECT(std::fabs(want - got) < 1e-7 * (1 + std::fabs(want)), "dW[", i, "] = ", got, " vs fd ", want,
                  " (mode ", mode, ", V ", V, ")");
      }
    }
  }
}

VG_TEST(logprob_full_logits_path_matches_chunked) {
  auto g = vgtest::rng(6);
  const int64_t N = 19, H = 24, V = 1030, C = 128;
  auto h = vgtest::randn<double>(N * H, g), W = vgtest::randn<double>(V * H, g);
  auto t = random_targets(N, V, g);
  auto gl = vgtest::randn<double>(N, g), ge = vgtest::randn<double>(N, g);
  std::vector<double> lp(N), ent(N), lse(N), lpF(N), entF(N), lseF(N);
  logprob_forward<double>(h.data(), W.data(), t.data(), lp.data(), ent.data(), lse.data(), N, H, V, 1.3, C);
  logprob_forward_full<double>(h.data(), W.data(), t.data(), lpF.data(), entF.data(), lseF.data(), N, H, V, 1.3);
  Ref ref = reference(h, W, t, N, H, V, 1.3);
  VG_EXPECT_ALLCLOSE(lpF.data(), ref.logprob.data(), size_t(N), 1e-11, 1e-11);
  VG_EXPECT_ALLCLOSE(entF.data(), ref.entropy.data(), size_t(N), 1e-11, 1e-11);
  VG_EXPECT_ALLCLOSE(lseF.data(), ref.lse.data(), size_t(N), 1e-11, 1e-11);
  std::vector<double> dh(N * H), dW(V * H, 0.0), dhF(N * H), dWF(V * H, 0.0);
  logprob_backward<double>(h.data(), W.data(), t.data(), lse.data(), gl.data(), ge.data(), ent.data(), dh.data(),
                           dW.data(), N, H, V, 1.3, C);
  logprob_backward_full<double>(h.data(), W.data(), t.data(), lseF.data(), gl.data(), ge.data(), nullptr, dhF.data(),
                                dWF.data(), N, H, V, 1.3);
  VG_EXPECT_ALLCLOSE(dhF.data(), dh.data(), dh.size(), 1e-12, 1e-10);
  VG_EXPECT_ALLCLOSE(dWF.data(), dW.data(), dW.size(), 1e-12, 1e-10);
}

namespace {
struct ThreadRun {
  std::vector<float> lp, ent, lse, dh, dW;
};
ThreadRun run_with_threads(int threads, const std::vector<float>& h, const std::vector<float>& W,
                           const std::vector<int32_t>& t, const std::vector<float>& gl, const std::vector<float>& ge,
                           int64_t N, int64_t H, int64_t V, int64_t C) {
  set_num_threads(threads);
  ThreadRun o{std::vector<float>(N), std::vector<float>(N), std::vector<float>(N), std::vector<float>(N * H),
              std::vector<float>(V * H, 0.f)};
  logprob_forward<float>(h.data(), W.data(), t.data(), o.lp.data(), o.ent.data(), o.lse.data(), N, H, V, 1.0, C);
  logprob_backward<float>(h.data(), W.data(), t.data(), o.lse.data(), gl.data(), ge.data(), o.ent.data(), o.dh.data(),
                          o.dW.data(), N, H, V, 1.0, C);
  return o;
}
}  // namespace

// With hidden size 1 every GEMM output is a single product or a dot product the BLAS computes the same way on
// any thread count, so this isolates our own parallel reductions: they must be bitwise thread-count invariant
// (each row's statistics are folded by one task, in chunk order).
VG_TEST(logprob_thread_count_invariance_bitwise) {
  auto g = vgtest::rng(7);
  const int64_t N = 300, H = 1, V = 6000, C = 1024;
  auto h = vgtest::randn<float>(N * H, g, 3.0), W = vgtest::randn<float>(V * H, g, 3.0);
  auto t = random_targets(N, V, g);
  auto gl = vgtest::randn<float>(N, g), ge = vgtest::randn<float>(N, g);
  const int saved = num_threads();
  ThreadRun a = run_with_threads(1, h, W, t, gl, ge, N, H, V, C), b = run_with_threads(2, h, W, t, gl, ge, N, H, V, C),
            c = run_with_threads(3, h, W, t, gl, ge, N, H, V, C);
  set_num_threads(saved);
  for (const ThreadRun* o : {&b, &c}) {
    VG_EXPECT(o->lp == a.lp && o->ent == a.ent && o->lse == a.lse, "forward differs across thread counts");
    VG_EXPECT(o->dh == a.dh && o->dW == a.dW, "backward differs across thread counts");
  }
}

// With a real hidden size the BLAS's sgemm (OpenBLAS 0.3.21) itself rounds differently for different thread
// counts (it partitions the output differently and edge tiles use other micro-kernels), so across thread
// counts the results agree to float rounding, and for one thread count they repeat bit for bit.
VG_TEST(logprob_thread_count_agreement) {
  auto g = vgtest::rng(8);
  const int64_t N = 150, H = 96, V = 6000, C = 1024;
  auto h = vgtest::randn<float>(N * H, g), W = vgtest::randn<float>(V * H, g, 0.3);
  auto t = random_targets(N, V, g);
  auto gl = vgtest::randn<float>(N, g), ge = vgtest::randn<float>(N, g);
  const int saved = num_threads();
  ThreadRun a = run_with_threads(1, h, W, t, gl, ge, N, H, V, C), b = run_with_threads(2, h, W, t, gl, ge, N, H, V, C),
            b2 = run_with_threads(2, h, W, t, gl, ge, N, H, V, C);
  set_num_threads(saved);
  VG_EXPECT(b.lp == b2.lp && b.ent == b2.ent && b.dh == b2.dh && b.dW == b2.dW, "not repeatable with 2 threads");
  VG_EXPECT_ALLCLOSE(b.lp.data(), a.lp.data(), size_t(N), 1e-5, 1e-5);
  VG_EXPECT_ALLCLOSE(b.ent.data(), a.ent.data(), size_t(N), 1e-5, 1e-5);
  VG_EXPECT_ALLCLOSE(b.lse.data(), a.lse.data(), size_t(N), 1e-5, 1e-5);
  // Gradients: a one-ulp change of the float lse (~1e-6 at lse ~ 9) moves every p_j by ~1e-6 relative, and
  // the entropy term multiplies by |log p| ~ 10, so compare with an absolute floor of 1e-5.
  VG_EXPECT_ALLCLOSE(b.dh.data(), a.dh.data(), a.dh.size(), 1e-5, 1e-5);
  VG_EXPECT_ALLCLOSE(b.dW.data(), a.dW.data(), a.dW.size(), 1e-5, 1e-5);
}

VG_TEST(logprob_rejects_bad_input) {
  const int64_t N = 4, H = 3, V = 10;
  std::vector<float> h(N * H, 0.5f), W(V * H, 0.25f), lp(N), lse(N), dh(N * H), dW(V * H), gl(N, 1.f);
  std::vector<int32_t> t = {1, 2, 10, 3};
  VG_EXPECT_THROWS(logprob_forward<float>(h.data(), W.data(), t.data(), lp.data(), nullptr, lse.data(), N, H, V),
                   "targets[2] = 10 is not a token id (vocabSize is 10");
  VG_EXPECT_THROWS(logprob_backward<float>(h.data(), W.data(), t.data(), lse.data(), gl.data(), nullptr, nullptr,
                                           dh.data(), dW.data(), N, H, V),
                   "targets[2] = 10");
  VG_EXPECT_THROWS(logprob_forward_full<float>(h.data(), W.data(), t.data(), lp.data(), nullptr, lse.data(), N, H, V),
                   "targets[2] = 10");
  t[2] = 4;
  VG_EXPECT_THROWS(logprob_forward<float>(h.data(), W.data(), t.data(), lp.data(), nullptr, lse.data(), N, H, V, 0.0),
                   "temperature must be a finite number > 0, got 0");
  VG_EXPECT_THROWS(
      logprob_forward<float>(h.data(), W.data(), t.data(), lp.data(), nullptr, lse.data(), N, H, V, 1.0, 0),
      "chunkSize must be >= 1, got 0");
  VG_EXPECT_THROWS(logprob_forward<float>(h.data(), W.data(), t.data(), lp.data(), nullptr, lse.data(), N, H, 0),
                   "vocabSize must be >= 1, got 0");
}
