// General matrix multiply, row-major, as every CPU kernel and the model use it.
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// op(X) is X or X^T. lda/ldb/ldc are row strides of the stored matrices (A is M x K when not
// transposed, K x M when transposed). Goes to the BLAS when one was found at build time; otherwise,
// and always through gemm_builtin, a cache-blocked multithreaded kernel.
#pragma once
#include <cstdint>

namespace vg {

template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Same math without the BLAS (also the fallback when none is linked).
template <typename T>
void gemm_builtin(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// `batch` independent GEMMs whose operands sit strideA/strideB/strideC elements apart.
template <typename T>
void gemm_strided_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                          int64_t lda, int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C,
                          int64_t ldc, int64_t strideC, int64_t batch);

}  // namespace vg
