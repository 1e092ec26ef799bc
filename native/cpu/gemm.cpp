#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

#if VG_HAVE_BLAS
#include <cblas.h>
#endif

namespace vg {
namespace {

void check_dims(bool transA, bool transB, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  VG_CHECK_ARG(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  VG_CHECK_ARG(lda >= std::max<int64_t>(1, transA ? M : K), "gemm: lda=", lda, " too small");
  VG_CHECK_ARG(ldb >= std::max<int64_t>(1, transB ? K : N), "gemm: ldb=", ldb, " too small");
  VG_CHECK_ARG(ldc >= std::max<int64_t>(1, N), "gemm: ldc=", ldc, " too small");
}

// Tile sizes: an A tile (MB x KB) and a B tile (KB x NB) fit in L2 together.
constexpr int64_t MB = 64, NB = 256, KB = 256;

template <typename T>
void builtin_impl(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t mt = (M + MB - 1) / MB, nt = (N + NB - 1) / NB;
  parallel_for(0, mt * nt, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> ap(MB * KB), bp(KB * NB);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = (t / nt) * MB, j0 = (t % nt) * NB;
      const int64_t mb = std::min(MB, M - i0), nb = std::min(NB, N - j0);
      for (int64_t i = 0; i < mb; ++i) {
        T* c = C + (i0 + i) * ldc + j0;
        if (beta == T(0)) std::fill(c, c + nb, T(0));
        else if (beta != T(1)) for (int64_t j = 0; j < nb; ++j) c[j] *= beta;
      }
      for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t kb = std::min(KB, K - k0);
        for (int64_t i = 0; i < mb; ++i)
          for (int64_t k = 0; k < kb; ++k)
            ap[i * kb + k] = alpha * (transA ? A[(k0 + k) * lda + i0 + i] : A[(i0 + i) * lda + k0 + k]);
        for (int64_t k = 0; k < kb; ++k)
          for (int64_t j = 0; j < nb; ++j)
            bp[k * nb + j] = transB ? B[(j0 + j) * ldb + k0 + k] : B[(k0 + k) * ldb + j0 + j];
        for (int64_t i = 0; i < mb; ++i) {
          T* __restrict c = C + (i0 + i) * ldc + j0;
          const T* a = ap.data() + i * kb;
          for (int64_t k = 0; k < kb; ++k) {
            const T aik = a[k];
            const T* __restrict b = bp.data() + k * nb;
            for (int64_t j = 0; j < nb; ++j) c[j] += aik * b[j];
          }
        }
      }
    }
  });
}

#if VG_HAVE_BLAS
inline void blas_gemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
inline void blas_gemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                      const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
#endif

}  // namespace

template <typename T>
void gemm_builtin(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  check_dims(transA, transB, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  builtin_impl(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  check_dims(transA, transB, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
#if VG_HAVE_BLAS
  // The BLAS runs single-threaded inside our own pool: each thread multiplies a block of rows (or of columns) of C.
  // Its own worker threads would otherwise busy-wait after every call and steal the cores from the element-wise
  // kernels that follow; and each element is computed the same way whatever the thread count.
  constexpr int64_t kMinBlock = 64;
  const int64_t threads = num_threads();
  if (threads > 1 && M >= 2 * kMinBlock && 2.0 * M * N * K >= 2.0e6) {
    const int64_t block = std::max(kMinBlock, (M + threads - 1) / threads);
    parallel_for(0, M, block, [&](int64_t i0, int64_t i1) {
      blas_gemm(transA, transB, i1 - i0, N, K, alpha, transA ? A + i0 : A + i0 * lda, lda, B, ldb, beta, C + i0 * ldc, ldc);
    });
  } else if (threads > 1 && N >= 2 * kMinBlock && 2.0 * M * N * K >= 2.0e6) {
    const int64_t block = std::max(kMinBlock, (N + threads - 1) / threads);
    parallel_for(0, N, block, [&](int64_t j0, int64_t j1) {
      blas_gemm(transA, transB, M, j1 - j0, K, alpha, A, lda, transB ? B + j0 * ldb : B + j0, ldb, beta, C + j0, ldc);
    });
  } else {
    blas_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
#else
  builtin_impl(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template <typename T>
void gemm_strided_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                          int64_t lda, int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C,
                          int64_t ldc, int64_t strideC, int64_t batch) {
  check_dims(transA, transB, M, N, K, lda, ldb, ldc);
  VG_CHECK_ARG(batch >= 0, "gemm_strided_batched: negative batch ", batch);
  // Large problems: one BLAS call each (the BLAS parallelises inside). Small ones: spread the batch
  // over our threads, each running a single-threaded builtin GEMM, which beats tiny BLAS calls.
  const double flops = 2.0 * M * N * K;
  if (flops >= 4.0e6 || batch == 1) {
    for (int64_t b = 0; b < batch; ++b)
      gemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC, ldc);
    return;
  }
  parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)  // nested parallel_for inside runs inline on this thread
      builtin_impl(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                   C + b * strideC, ldc);
  });
}

#define VG_INSTANTIATE_GEMM(T)                                                                                   \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,   \
                        int64_t);                                                                               \
  template void gemm_builtin<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t,  \
                                T, T*, int64_t);                                                                 \
  template void gemm_strided_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t,    \
                                        const T*, int64_t, int64_t, T, T*, int64_t, int64_t, int64_t);
VG_INSTANTIATE_GEMM(float)
VG_INSTANTIATE_GEMM(double)

}  // namespace vg
