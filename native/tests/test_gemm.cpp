// GEMM (BLAS path and built-in path), strided batches and the linear layer against plain loops.
#include <vector>

#include "cpu/gemm.h"
#include "cpu/linear.h"
#include "test_framework.h"

using namespace vg;

namespace {

// Plain triple loop in double: the reference.
template <typename T>
std::vector<double> ref_gemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, double alpha, const T* A, int64_t lda,
                             const T* B, int64_t ldb, double beta, const T* C0, int64_t ldc) {
  std::vector<double> C(M * ldc);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(tA ? A[k * lda + i] : A[i * lda + k]) * double(tB ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + beta * double(C0[i * ldc + j]);
    }
  return C;
}

template <typename T>
void check_gemm(bool builtin, double tol) {
  auto g = vgtest::rng(builtin ? 1 : 2);
  const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {65, 257, 300}, {130, 70, 513}, {3, 600, 1}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int t = 0; t < 4; ++t) {
      bool tA = t & 1, tB = t & 2;
      const int64_t lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 2, ldc = N + 5;
      auto A = vgtest::randn<T>((tA ? K : M) * lda, g), B = vgtest::randn<T>((tB ? N : K) * ldb, g);
      auto C = vgtest::randn<T>(M * ldc, g);
      for (double beta : {0.0, 1.0, -0.5}) {
        auto out = C;
        if (beta == 0.0) for (auto& v : out) v = T(NAN);  // beta = 0 must ignore C entirely
        auto ref = ref_gemm(tA, tB, M, N, K, 1.5, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        (builtin ? gemm_builtin<T> : gemm<T>)(tA, tB, M, N, K, T(1.5), A.data(), lda, B.data(), ldb, T(beta), out.data(), ldc);
        for (int64_t i = 0; i < M; ++i)
          VG_EXPECT_ALLCLOSE(out.data() + i * ldc, ref.data() + i * ldc, size_t(N), tol, tol);
      }
    }
  }
}

}  // namespace

VG_TEST(gemm_blas_path_float) { check_gemm<float>(false, 1e-4); }
VG_TEST(gemm_blas_path_double) { check_gemm<double>(false, 1e-11); }
VG_TEST(gemm_builtin_float) { check_gemm<float>(true, 1e-4); }
VG_TEST(gemm_builtin_double) { check_gemm<double>(true, 1e-11); }

VG_TEST(gemm_strided_batched_matches_loop) {
  auto g = vgtest::rng(3);
  for (int64_t batch : {1, 5}) {
    for (auto dims : {std::vector<int64_t>{16, 16, 16}, std::vector<int64_t>{200, 150, 120}}) {
      const int64_t M = dims[0], N = dims[1], K = dims[2];
      auto A = vgtest::randn<float>(batch * M * K, g), B = vgtest::randn<float>(batch * N * K, g);
      std::vector<float> C(batch * M * N);
      gemm_strided_batched<float>(false, true, M, N, K, 1.f, A.data(), K, M * K, B.data(), K, N * K, 0.f, C.data(), N,
                                  M * N, batch);
      for (int64_t b = 0; b < batch; ++b) {
        std::vector<float> zero(M * N);
        auto ref = ref_gemm(false, true, M, N, K, 1.0, A.data() + b * M * K, K, B.data() + b * N * K, K, 0.0,
                            zero.data(), N);
        VG_EXPECT_ALLCLOSE(C.data() + b * M * N, ref.data(), size_t(M * N), 1e-4, 1e-4);
      }
    }
  }
}

VG_TEST(gemm_rejects_bad_strides) {
  std::vector<float> a(16), b(16), c(16);
  VG_EXPECT_THROWS(gemm<float>(false, false, 4, 4, 4, 1.f, a.data(), 3, b.data(), 4, 0.f, c.data(), 4), "lda=3");
}

VG_TEST(linear_forward_backward_finite_differences) {
  auto g = vgtest::rng(4);
  const int64_t n = 5, in = 7, out = 3;
  auto x = vgtest::randn<double>(n * in, g), W = vgtest::randn<double>(out * in, g), b = vgtest::randn<double>(out, g);
  auto dy = vgtest::randn<double>(n * out, g);
  std::vector<double> y(n * out), dx(n * in), dW(out * in, 0.0), db(out, 0.0);
  linear_forward(x.data(), W.data(), b.data(), y.data(), n, in, out);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      VG_EXPECT(std::fabs(s - y[r * out + o]) < 1e-12, "forward");
    }
  linear_backward(x.data(), W.data(), dy.data(), dx.data(), dW.data(), db.data(), n, in, out);
  // L = sum(dy * y): check every gradient entry by central differences.
  auto loss = [&]() {
    std::vector<double> yy(n * out);
    linear_forward(x.data(), W.data(), b.data(), yy.data(), n, in, out);
    double s = 0;
    for (int64_t i = 0; i < n * out; ++i) s += dy[i] * yy[i];
    return s;
  };
  auto fd = [&](std::vector<double>& p, size_t i) {
    const double h = 1e-6, keep = p[i];
    p[i] = keep + h; double lp = loss();
    p[i] = keep - h; double lm = loss();
    p[i] = keep;
    return (lp - lm) / (2 * h);
  };
  for (size_t i = 0; i < x.size(); ++i) VG_EXPECT(std::fabs(fd(x, i) - dx[i]) < 1e-7, "dx[", i, "]");
  for (size_t i = 0; i < W.size(); ++i) VG_EXPECT(std::fabs(fd(W, i) - dW[i]) < 1e-7, "dW[", i, "]");
  for (size_t i = 0; i < b.size(); ++i) VG_EXPECT(std::fabs(fd(b, i) - db[i]) < 1e-7, "db[", i, "]");
}

VG_TEST(linear_few_rows_uses_the_streaming_kernel_correctly) {
  // rows <= 16 go through skinny_linear: every row count, odd widths (tails), with and without bias, float and
  // double, against a plain double loop.
  auto g = vgtest::rng(5);
  for (int64_t rows = 1; rows <= 17; ++rows) {
    for (auto io : {std::pair<int64_t, int64_t>{37, 5}, {64, 130}, {100, 1}}) {
      const int64_t in = io.first, out = io.second;
      auto x = vgtest::randn<float>(rows * in, g), W = vgtest::randn<float>(out * in, g), b = vgtest::randn<float>(out, g);
      for (bool with_bias : {false, true}) {
        std::vector<float> y(rows * out);
        linear_forward<float>(x.data(), W.data(), with_bias ? b.data() : nullptr, y.data(), rows, in, out);
        std::vector<double> ref(rows * out);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < out; ++o) {
            double s = with_bias ? b[o] : 0.0;
            for (int64_t k = 0; k < in; ++k) s += double(x[r * in + k]) * W[o * in + k];
            ref[r * out + o] = s;
          }
        VG_EXPECT_ALLCLOSE(y.data(), ref.data(), y.size(), 1e-4, 1e-4);
      }
    }
  }
}
