// AdamW against a plain PyTorch-style loop over several steps (float and double), bias correction at step 1,
// decoupled weight decay, and global-norm clipping against a plain sum of squares.
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "cpu/adamw.h"
#include "test_framework.h"

using namespace vg;

namespace {

// torch.optim.AdamW's single-tensor update, op by op, in double.
void ref_adamw(std::vector<double>& p, const std::vector<double>& g, std::vector<double>& m, std::vector<double>& v,
               const AdamWConfig& c) {
  const double bc1 = 1 - std::pow(c.beta1, double(c.step));
  const double bc2 = 1 - std::pow(c.beta2, double(c.step));
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] *= 1 - c.lr * c.weight_decay;
    m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
    v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
    const double mhat = m[i] / bc1, vhat = v[i] / bc2;
    p[i] -= c.lr * mhat / (std::sqrt(vhat) + c.eps);
  }
}

template <typename T>
void check_adamw_steps(double tol, uint64_t salt) {
  auto g = vgtest::rng(salt);
  const size_t n = 70001;  // several parallel chunks and an odd tail
  std::vector<double> p = vgtest::randn<double>(n, g), m(n, 0.0), v(n, 0.0);
  std::vector<T> pt(p.begin(), p.end()), mt(n, T(0)), vt(n, T(0));
  for (size_t i = 0; i < n; ++i) p[i] = double(pt[i]);
  AdamWConfig c;
  c.lr = 3e-3;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-8;
  c.weight_decay = 0.1;
  for (int64_t step = 1; step <= 6; ++step) {
    c.step = step;
    std::vector<double> grad = vgtest::randn<double>(n, g, step == 3 ? 1e-3 : 1.0);
    std::vector<T> gt(grad.begin(), grad.end());
    for (size_t i = 0; i < n; ++i) grad[i] = double(gt[i]);
    adamw_step<T>(pt.data(), gt.data(), mt.data(), vt.data(), static_cast<int64_t>(n), c);
    ref_adamw(p, grad, m, v, c);
    VG_EXPECT_ALLCLOSE(pt.data(), p.data(), n, tol, tol);
    VG_EXPECT_ALLCLOSE(mt.data(), m.data(), n, tol, tol);
    VG_EXPECT_ALLCLOSE(vt.data(), v.data(), n, tol * 1e-3, tol);
  }
}

}  // namespace

VG_TEST(adamw_matches_reference_over_steps_float) { check_adamw_steps<float>(2e-6, 1); }
VG_TEST(adamw_matches_reference_over_steps_double) { check_adamw_steps<double>(1e-14, 2); }

// At step 1 with zero state, m̂ = g and v̂ = g², so (eps → 0, wd = 0) every parameter moves by −lr·sign(g).
VG_TEST(adamw_bias_correction_at_step_one) {
  auto g = vgtest::rng(3);
  const int64_t n = 1000;
  std::vector<double> p = vgtest::randn<double>(n, g), grad = vgtest::randn<double>(n, g, 5.0), m(n, 0.0), v(n, 0.0);
  std::vector<double> p0 = p;
  AdamWConfig c;
  c.lr = 0.01;
  c.eps = 0;
  c.weight_decay = 0;
  c.step = 1;
  adamw_step<double>(p.data(), grad.data(), m.data(), v.data(), n, c);
  for (int64_t i = 0; i < n; ++i) {
    const double expected = p0[i] - 0.01 * (grad[i] > 0 ? 1 : -1);
    VG_EXPECT(std::fabs(p[i] - expected) < 1e-15, "p[", i, "] = ", p[i], ", expected ", expected);
    VG_EXPECT(std::fabs(m[i] - 0.1 * grad[i]) < 1e-15 * (1 + std::fabs(grad[i])), "m[", i, "]");
    VG_EXPECT(std::fabs(v[i] - 0.001 * grad[i] * grad[i]) < 1e-15 * (1 + grad[i] * grad[i]), "v[", i, "]");
  }
}

// With zero gradients and zero state the only change is the decoupled decay p ← p·(1 − lr·wd).
VG_TEST(adamw_weight_decay_is_decoupled) {
  auto g = vgtest::rng(4);
  const int64_t n = 513;
  std::vector<float> p = vgtest::randn<float>(n, g), grad(n, 0.f), m(n, 0.f), v(n, 0.f);
  std::vector<float> p0 = p;
  AdamWConfig c;
  c.lr = 0.5;
  c.weight_decay = 0.2;
  c.step = 7;
  adamw_step<float>(p.data(), grad.data(), m.data(), v.data(), n, c);
  for (int64_t i = 0; i < n; ++i) {
    const float expected = static_cast<float>(double(p0[i]) * 0.9);
    VG_EXPECT(p[i] == expected, "p[", i, "] = ", p[i], ", expected ", expected);
  }
}

VG_TEST(adamw_is_thread_count_independent) {
  auto g = vgtest::rng(5);
  const int64_t n = 100003;
  std::vector<float> p = vgtest::randn<float>(n, g), grad = vgtest::randn<float>(n, g), m = vgtest::randn<float>(n, g),
                     v = vgtest::randu<float>(n, g, 0.0, 2.0);
  const int keep = num_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<float> pp = p, mm = m, vv = v;
    AdamWConfig c;
    c.lr = 1e-3;
    c.step = 11;
    adamw_step<float>(pp.data(), grad.data(), mm.data(), vv.data(), n, c);
    results.push_back(pp);
  }
  set_num_threads(keep);
  VG_EXPECT(results[0] == results[1] && results[0] == results[2], "update differs with thread count");
}

VG_TEST(adamw_rejects_bad_arguments) {
  std::vector<float> a(4, 1.f);
  AdamWConfig c;
  c.step = 0;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "step must be >= 1");
  c.step = 1;
  c.beta1 = 1.0;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "beta1 must be in [0, 1), got 1");
  c.beta1 = 0.9;
  c.beta2 = -0.1;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "beta2");
  c.beta2 = 0.999;
  c.lr = -1;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "lr must be finite and >= 0");
  c.lr = 1e-3;
  c.eps = -1e-8;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "eps");
  c.eps = 1e-8;
  c.weight_decay = NAN;
  VG_EXPECT_THROWS(adamw_step<float>(a.data(), a.data(), a.data(), a.data(), 4, c), "weightDecay");
}

// Plain reference: sqrt of the sum of squares over all buffers, scale min(1, max/(total + 1e-6)).
VG_TEST(clip_grad_norm_matches_reference) {
  auto g = vgtest::rng(6);
  const std::vector<int64_t> lens = {1, 40000, 0, 70001, 17};
  for (double max_norm : {0.5, 1e9, 0.0, -1.0, double(INFINITY)}) {
    std::vector<std::vector<float>> bufs;
    for (int64_t n : lens) bufs.push_back(vgtest::randn<float>(static_cast<size_t>(n), g, 0.01));
    std::vector<std::vector<float>> orig = bufs;
    double ss = 0;
    for (auto& b : bufs)
      for (float x : b) ss += double(x) * double(x);
    const double ref_norm = std::sqrt(ss);
    std::vector<float*> ptrs;
    for (auto& b : bufs) ptrs.push_back(b.data());
    ClipGradNormResult r = clip_grad_norm<float>(ptrs.data(), lens.data(), static_cast<int64_t>(lens.size()), max_norm);
    VG_EXPECT(std::fabs(r.total_norm - ref_norm) <= 1e-12 * ref_norm, "total norm ", r.total_norm, " vs ", ref_norm);
    const bool clips = max_norm > 0 && std::isfinite(max_norm) && max_norm / (ref_norm + 1e-6) < 1;
    const double coef = clips ? max_norm / (ref_norm + 1e-6) : 1.0;
    VG_EXPECT(std::fabs(r.scale - coef) <= 1e-12, "scale ", r.scale, " vs ", coef, " at maxNorm ", max_norm);
    for (size_t k = 0; k < bufs.size(); ++k)
      for (size_t i = 0; i < bufs[k].size(); ++i) {
        // Scaled by the kernel's own factor (checked against the reference factor above): a 1-ulp difference in
        // the double factor could flip a float rounding.
        const float expected = clips ? static_cast<float>(double(orig[k][i]) * r.scale) : orig[k][i];
        VG_EXPECT(bufs[k][i] == expected, "buffer ", k, "[", i, "] = ", bufs[k][i], ", expected ", expected);
      }
    if (clips) {
      double after = 0;
      for (auto& b : bufs)
        for (float x : b) after += double(x) * double(x);
      VG_EXPECT(std::fabs(std::sqrt(after) - max_norm) < 1e-5 * max_norm, "norm after clipping ", std::sqrt(after));
    }
  }
}

VG_TEST(clip_grad_norm_double_and_thread_independence) {
  auto g = vgtest::rng(7);
  std::vector<double> a = vgtest::randn<double>(200000, g), b = vgtest::randn<double>(33, g);
  const double* ptrs[2] = {a.data(), b.data()};
  const int64_t lens[2] = {200000, 33};
  double ss = 0;
  for (double x : a) ss += x * x;
  for (double x : b) ss += x * x;
  const int keep = num_threads();
  std::vector<double> norms;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    norms.push_back(global_grad_norm<double>(ptrs, lens, 2));
  }
  set_num_threads(keep);
  VG_EXPECT(norms[0] == norms[1] && norms[0] == norms[2], "norm differs with thread count");
  VG_EXPECT(std::fabs(norms[0] - std::sqrt(ss)) < 1e-12 * std::sqrt(ss), "norm ", norms[0], " vs ", std::sqrt(ss));
}

VG_TEST(clip_grad_norm_non_finite_is_reported_not_applied) {
  std::vector<float> a = {1.f, 2.f, NAN, 4.f}, b = {INFINITY, 1.f};
  std::vector<float> a0 = a;
  float* p1[1] = {a.data()};
  int64_t l1[1] = {4};
  ClipGradNormResult r = clip_grad_norm<float>(p1, l1, 1, 1.0);
  VG_EXPECT(std::isnan(r.total_norm) && r.scale == 1.0, "NaN norm reported, no scaling");
  VG_EXPECT(a[0] == 1.f && a[1] == 2.f && a[3] == 4.f, "buffer untouched");
  float* p2[1] = {b.data()};
  int64_t l2[1] = {2};
  r = clip_grad_norm<float>(p2, l2, 1, 1.0);
  VG_EXPECT(std::isinf(r.total_norm) && b[1] == 1.f, "inf norm reported, no scaling");
  VG_EXPECT_THROWS(clip_grad_norm<float>(p2, l2, 1, NAN), "maxNorm is NaN");
  int64_t bad[1] = {-1};
  VG_EXPECT_THROWS(clip_grad_norm<float>(p2, bad, 1, 1.0), "negative length");
}
