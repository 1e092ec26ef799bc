// RMSNorm and LayerNorm: forward against plain double loops, backward against central finite differences
// (double), accumulation of the parameter gradients, aliasing, and bitwise independence of the thread count.
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "cpu/norms.h"
#include "test_framework.h"

using namespace vg;

namespace {

// Plain RMSNorm in double: y = w ⊙ x / sqrt(mean(x²) + eps).
template <typename T>
std::vector<double> ref_rms(const std::vector<T>& x, const std::vector<T>& w, int64_t rows, int64_t hidden, double eps,
                            std::vector<double>* rstd = nullptr) {
  std::vector<double> y(x.size());
  if (rstd) rstd->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < hidden; ++j) ss += double(x[r * hidden + j]) * double(x[r * hidden + j]);
    const double rs = 1.0 / std::sqrt(ss / hidden + eps);
    if (rstd) (*rstd)[r] = rs;
    for (int64_t j = 0; j < hidden; ++j) y[r * hidden + j] = double(w[j]) * double(x[r * hidden + j]) * rs;
  }
  return y;
}

// Plain LayerNorm in double (biased variance).
template <typename T>
std::vector<double> ref_ln(const std::vector<T>& x, const std::vector<T>& w, const std::vector<T>* b, int64_t rows,
                           int64_t hidden, double eps, std::vector<double>* mean = nullptr,
                           std::vector<double>* rstd = nullptr) {
  std::vector<double> y(x.size());
  if (mean) mean->assign(rows, 0.0);
  if (rstd) rstd->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0;
    for (int64_t j = 0; j < hidden; ++j) mu += double(x[r * hidden + j]);
    mu /= hidden;
    double var = 0;
    for (int64_t j = 0; j < hidden; ++j) var += (double(x[r * hidden + j]) - mu) * (double(x[r * hidden + j]) - mu);
    var /= hidden;
    const double rs = 1.0 / std::sqrt(var + eps);
    if (mean) (*mean)[r] = mu;
    if (rstd) (*rstd)[r] = rs;
    for (int64_t j = 0; j < hidden; ++j)
      y[r * hidden + j] = (double(x[r * hidden + j]) - mu) * rs * double(w[j]) + (b ? double((*b)[j]) : 0.0);
  }
  return y;
}

// Central difference of L(p) = Σ g ⊙ f(p) with respect to p[i].
template <typename F>
double central_diff(std::vector<double>& p, size_t i, F loss, double h = 1e-6) {
  const double keep = p[i];
  p[i] = keep + h;
  const double lp = loss();
  p[i] = keep - h;
  const double lm = loss();
  p[i] = keep;
  return (lp - lm) / (2 * h);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Index of the first element where a and b differ bitwise (as values), or -1.
template <typename T>
int64_t first_difference(const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!(a[i] == b[i])) return static_cast<int64_t>(i);
  return -1;
}
#define EXPECT_IDENTICAL(a, b, n)                                                                    \
  do {                                                                                               \
    const int64_t at_ = first_difference((a), (b), (n));                                             \
    VG_EXPECT(at_ < 0, #a " and " #b " differ at [", at_, "]: ", at_ < 0 ? 0.0 : double((a)[at_]), " vs ", \
              at_ < 0 ? 0.0 : double((b)[at_]));                                                     \
  } while (0)

// Restores the thread count when a test that changes it ends (also on failure).
struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

}  // namespace

VG_TEST(norms_rms_forward_matches_reference) {
  auto g = vgtest::rng(11);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 67}, {130, 1000}, {5, 3584}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], hidden = s[1];
    for (double eps : {1e-6, 1e-2}) {
      auto xf = vgtest::randn<float>(rows * hidden, g, 2.0);
      auto wf = vgtest::randn<float>(hidden, g);
      std::vector<double> rstd_ref;
      auto yref = ref_rms(xf, wf, rows, hidden, eps, &rstd_ref);
      std::vector<float> y(rows * hidden), rstd(rows);
      rms_norm_forward<float>(xf.data(), wf.data(), y.data(), rstd.data(), rows, hidden, eps);
      VG_EXPECT_ALLCLOSE(y.data(), yref.data(), y.size(), 1e-5, 1e-5);
      VG_EXPECT_ALLCLOSE(rstd.data(), rstd_ref.data(), rstd.size(), 0.0, 1e-5);

      std::vector<double> xd(xf.begin(), xf.end()), wd(wf.begin(), wf.end()), yd(rows * hidden), rstdd(rows);
      rms_norm_forward<double>(xd.data(), wd.data(), yd.data(), rstdd.data(), rows, hidden, eps);
      VG_EXPECT_ALLCLOSE(yd.data(), yref.data(), yd.size(), 1e-13, 1e-12);
      VG_EXPECT_ALLCLOSE(rstdd.data(), rstd_ref.data(), rstdd.size(), 0.0, 1e-13);

      // In place (y aliases x) gives the same values.
      rms_norm_forward<double>(xd.data(), wd.data(), xd.data(), rstdd.data(), rows, hidden, eps);
      EXPECT_IDENTICAL(xd.data(), yd.data(), xd.size());
    }
  }
}

VG_TEST(norms_rms_backward_finite_differences) {
  auto g = vgtest::rng(12);
  for (auto dims : {std::vector<int64_t>{4, 7}, std::vector<int64_t>{3, 37}}) {
    const int64_t rows = dims[0], hidden = dims[1];
    const double eps = 1e-3;
    auto x = vgtest::randn<double>(rows * hidden, g), w = vgtest::randn<double>(hidden, g);
    auto gy = vgtest::randn<double>(rows * hidden, g);
    std::vector<double> y(rows * hidden), rstd(rows);
    auto loss = [&]() {
      std::vector<double> yy(rows * hidden), rr(rows);
      rms_norm_forward<double>(x.data(), w.data(), yy.data(), rr.data(), rows, hidden, eps);
      return dot(gy, yy);
    };
    rms_norm_forward<double>(x.data(), w.data(), y.data(), rstd.data(), rows, hidden, eps);
    auto dw0 = vgtest::randn<double>(hidden, g);  // dw must be accumulated into, not overwritten
    auto dw = dw0;
    std::vector<double> dx(rows * hidden, NAN);  // dx must be overwritten entirely
    rms_norm_backward<double>(x.data(), w.data(), rstd.data(), gy.data(), dx.data(), dw.data(), rows, hidden);
    // Threshold: central differences with h = 1e-6 on O(1) values are good to ~1e-9.
    for (size_t i = 0; i < x.size(); ++i) {
      const double fd = central_diff(x, i, loss);
      VG_EXPECT(std::fabs(fd - dx[i]) < 1e-7 * (1 + std::fabs(fd)), "dx[", i, "] = ", dx[i], " vs fd ", fd);
    }
    for (size_t j = 0; j < w.size(); ++j) {
      const double fd = central_diff(w, j, loss);
      VG_EXPECT(std::fabs(fd - (dw[j] - dw0[j])) < 1e-7 * (1 + std::fabs(fd)), "dw[", j, "] = ", dw[j] - dw0[j],
                " vs fd ", fd);
    }
    // dx aliasing dy gives the same dx; null dw / null dx are skipped.
    auto dyx = gy;
    rms_norm_backward<double>(x.data(), w.data(), rstd.data(), dyx.data(), dyx.data(), nullptr, rows, hidden);
    EXPECT_IDENTICAL(dyx.data(), dx.data(), dx.size());
    auto dw2 = dw0;
    rms_norm_backward<double>(x.data(), w.data(), rstd.data(), gy.data(), nullptr, dw2.data(), rows, hidden);
    EXPECT_IDENTICAL(dw2.data(), dw.data(), dw.size());
  }
}

VG_TEST(norms_rms_backward_float_matches_double) {
  auto g = vgtest::rng(13);
  const int64_t rows = 70, hidden = 300;
  auto xf = vgtest::randn<float>(rows * hidden, g), wf = vgtest::randn<float>(hidden, g);
  auto gf = vgtest::randn<float>(rows * hidden, g);
  std::vector<double> xd(xf.begin(), xf.end()), wd(wf.begin(), wf.end()), gd(gf.begin(), gf.end());
  std::vector<float> yf(rows * hidden), rf(rows), dxf(rows * hidden), dwf(hidden, 0.f);
  std::vector<double> yd(rows * hidden), rd(rows), dxd(rows * hidden), dwd(hidden, 0.0);
  rms_norm_forward<float>(xf.data(), wf.data(), yf.data(), rf.data(), rows, hidden, 1e-6);
  rms_norm_forward<double>(xd.data(), wd.data(), yd.data(), rd.data(), rows, hidden, 1e-6);
  rms_norm_backward<float>(xf.data(), wf.data(), rf.data(), gf.data(), dxf.data(), dwf.data(), rows, hidden);
  rms_norm_backward<double>(xd.data(), wd.data(), rd.data(), gd.data(), dxd.data(), dwd.data(), rows, hidden);
  VG_EXPECT_ALLCLOSE(dxf.data(), dxd.data(), dxd.size(), 1e-5, 1e-4);
  VG_EXPECT_ALLCLOSE(dwf.data(), dwd.data(), dwd.size(), 1e-4, 1e-4);
}

VG_TEST(norms_layer_forward_matches_reference) {
  auto g = vgtest::rng(14);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 67}, {64, 1280}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], hidden = s[1];
    for (bool with_bias : {true, false}) {
      auto x = vgtest::randn<float>(rows * hidden, g, 3.0);
      auto w = vgtest::randn<float>(hidden, g), b = vgtest::randn<float>(hidden, g);
      std::vector<double> mref, rref;
      auto yref = ref_ln(x, w, with_bias ? &b : nullptr, rows, hidden, 1e-6, &mref, &rref);
      std::vector<float> y(rows * hidden), mean(rows), rstd(rows);
      layer_norm_forward<float>(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), mean.data(), rstd.data(),
                                rows, hidden, 1e-6);
      // hidden = 1: the variance is 0 and rstd = 1/sqrt(eps) is huge; x - mean is exactly 0 there.
      VG_EXPECT_ALLCLOSE(y.data(), yref.data(), y.size(), 1e-5, 1e-4);
      VG_EXPECT_ALLCLOSE(mean.data(), mref.data(), mean.size(), 1e-6, 1e-5);
      VG_EXPECT_ALLCLOSE(rstd.data(), rref.data(), rstd.size(), 0.0, 1e-4);
    }
  }
  // A large row mean must not wreck the variance (one-pass E[x²] − E[x]² in fp32 would be off by percents).
  const int64_t rows = 8, hidden = 512;
  auto x = vgtest::randn<float>(rows * hidden, g);
  for (auto& v : x) v += 1000.f;
  auto w = vgtest::randn<float>(hidden, g), b = vgtest::randn<float>(hidden, g);
  auto yref = ref_ln(x, w, &b, rows, hidden, 1e-6);
  std::vector<float> y(rows * hidden), mean(rows), rstd(rows);
  layer_norm_forward<float>(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, hidden, 1e-6);
  VG_EXPECT_ALLCLOSE(y.data(), yref.data(), y.size(), 2e-3, 2e-3);
}

VG_TEST(norms_layer_backward_finite_differences) {
  auto g = vgtest::rng(15);
  for (auto dims : {std::vector<int64_t>{4, 7}, std::vector<int64_t>{3, 37}}) {
    const int64_t rows = dims[0], hidden = dims[1];
    const double eps = 1e-3;
    auto x = vgtest::randn<double>(rows * hidden, g), w = vgtest::randn<double>(hidden, g);
    auto b = vgtest::randn<double>(hidden, g), gy = vgtest::randn<double>(rows * hidden, g);
    auto loss = [&]() {
      std::vector<double> yy(rows * hidden), mm(rows), rr(rows);
      layer_norm_forward<double>(x.data(), w.data(), b.data(), yy.data(), mm.data(), rr.data(), rows, hidden, eps);
      return dot(gy, yy);
    };
    std::vector<double> y(rows * hidden), mean(rows), rstd(rows);
    layer_norm_forward<double>(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, hidden, eps);
    auto dw0 = vgtest::randn<double>(hidden, g), db0 = vgtest::randn<double>(hidden, g);
    auto dw = dw0, db = db0;
    std::vector<double> dx(rows * hidden, NAN);
    layer_norm_backward<double>(x.data(), w.data(), mean.data(), rstd.data(), gy.data(), dx.data(), dw.data(),
                                db.data(), rows, hidden);
    // Threshold: central differences with h = 1e-6 on O(1) values are good to ~1e-9.
    for (size_t i = 0; i < x.size(); ++i) {
      const double fd = central_diff(x, i, loss);
      VG_EXPECT(std::fabs(fd - dx[i]) < 1e-7 * (1 + std::fabs(fd)), "dx[", i, "] = ", dx[i], " vs fd ", fd);
    }
    for (size_t j = 0; j < w.size(); ++j) {
      const double fdw = central_diff(w, j, loss), fdb = central_diff(b, j, loss);
      VG_EXPECT(std::fabs(fdw - (dw[j] - dw0[j])) < 1e-7 * (1 + std::fabs(fdw)), "dw[", j, "]");
      VG_EXPECT(std::fabs(fdb - (db[j] - db0[j])) < 1e-7 * (1 + std::fabs(fdb)), "db[", j, "]");
    }
    auto dyx = gy;
    layer_norm_backward<double>(x.data(), w.data(), mean.data(), rstd.data(), dyx.data(), dyx.data(), nullptr, nullptr,
                                rows, hidden);
    EXPECT_IDENTICAL(dyx.data(), dx.data(), dx.size());
  }
}

VG_TEST(norms_backward_independent_of_thread_count) {
  ThreadsGuard guard;
  auto g = vgtest::rng(16);
  const int64_t rows = 3000, hidden = 129;  // several 47-row blocks, a ragged last one
  auto x = vgtest::randn<float>(rows * hidden, g), w = vgtest::randn<float>(hidden, g);
  auto b = vgtest::randn<float>(hidden, g), gy = vgtest::randn<float>(rows * hidden, g);
  std::vector<float> y(rows * hidden), mean(rows), rstd(rows);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    std::vector<float> dx(rows * hidden), dw(hidden, 0.f), ldx(rows * hidden), ldw(hidden, 0.f), ldb(hidden, 0.f);
    rms_norm_forward<float>(x.data(), w.data(), y.data(), rstd.data(), rows, hidden, 1e-6);
    rms_norm_backward<float>(x.data(), w.data(), rstd.data(), gy.data(), dx.data(), dw.data(), rows, hidden);
    layer_norm_forward<float>(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, hidden, 1e-6);
    layer_norm_backward<float>(x.data(), w.data(), mean.data(), rstd.data(), gy.data(), ldx.data(), ldw.data(),
                               ldb.data(), rows, hidden);
    std::vector<float> all;
    for (auto* v : {&dx, &dw, &ldx, &ldw, &ldb, &y}) all.insert(all.end(), v->begin(), v->end());
    results.push_back(std::move(all));
  }
  for (size_t t = 1; t < results.size(); ++t)
    EXPECT_IDENTICAL(results[t].data(), results[0].data(), results[0].size());
}

VG_TEST(norms_reject_bad_arguments) {
  std::vector<float> x(8), w(4), y(8), r(2), m(2);
  VG_EXPECT_THROWS(rms_norm_forward<float>(x.data(), w.data(), y.data(), r.data(), 2, 0, 1e-6), "hidden must be >= 1");
  VG_EXPECT_THROWS(rms_norm_forward<float>(x.data(), w.data(), y.data(), r.data(), -1, 4, 1e-6), "rows must be >= 0");
  VG_EXPECT_THROWS(rms_norm_forward<float>(x.data(), w.data(), y.data(), r.data(), 2, 4, -1.0), "eps must be");
  VG_EXPECT_THROWS(layer_norm_forward<float>(x.data(), w.data(), nullptr, y.data(), m.data(), r.data(), 2, 4, NAN),
                   "eps must be");
  VG_EXPECT_THROWS(layer_norm_backward<float>(x.data(), w.data(), m.data(), r.data(), y.data(), x.data(), nullptr,
                                              nullptr, 2, -3),
                   "hidden must be >= 1, got -3");
  // Zero rows is a valid no-op.
  rms_norm_forward<float>(nullptr, w.data(), nullptr, nullptr, 0, 4, 1e-6);
  rms_norm_backward<float>(nullptr, w.data(), nullptr, nullptr, nullptr, w.data(), 0, 4);
}
