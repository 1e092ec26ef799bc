// cuBLAS loaded at run time, and the bf16 GEMM built on it.
//
// The build machines have nvcc and cudart but no cuBLAS headers or libraries, so we declare the few C entry
// points we use (with their documented signatures and enum values) and dlopen libcublas at the first GEMM:
// VG_CUBLAS_LIB (a full path) first, then libcublas.so.13, libcublas.so.12, libcublas.so on the loader's search
// path and /usr/local/cuda/lib64. libcublasLt (libcublas's own dependency) is preloaded from the same folder
// when found there, so a pip wheel's lib folder works without LD_LIBRARY_PATH. A missing library is a
// CublasUnavailable error naming every place tried and the fix.
//
// gemm_bf16 is row-major: C[M, N] = alpha · op(A) · op(B) + beta · C, op(X) = X or Xᵀ, A and B bf16, fp32
// accumulation (CUBLAS_COMPUTE_32F), C bf16 or fp32. cuBLAS is column-major, and a row-major X is a
// column-major Xᵀ, so we ask cuBLAS for Cᵀ = op(B)ᵀ · op(A)ᵀ: the operands swap and keep their transposes.
// lda/ldb/ldc are the row-major row strides (elements between consecutive rows as stored).
#pragma once
#include <library_types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// cuBLAS could not be loaded or a symbol is missing; the message says what was tried and how to fix it.
class CublasUnavailable : public Error {
 public:
  using Error::Error;
};

// Loads cuBLAS once per process. Returns true when usable; otherwise false with the reason in *why.
bool cublas_available(std::string* why = nullptr);

// The path cuBLAS was loaded from (empty when not loaded).
std::string cublas_loaded_path();

// Tries exactly `candidates` (file names or paths, in order) without touching the process-wide library; returns
// "" when one loads and has every entry point, else the error message cublas_available would give. For tests.
std::string cublas_probe_candidates(const std::vector<std::string>& candidates);

// Row-major bf16 GEMM with fp32 accumulation (see above). C is bf16 (c_type CUDA_R_16BF) or fp32 (CUDA_R_32F).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, void* C, cudaDataType_t c_type, int64_t ldc,
               cudaStream_t stream);

// Typed conveniences with dense strides (lda = trans_a ? M : K, ldb = trans_b ? K : N, ldc = N).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, float* C, cudaStream_t stream);
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, bf16* C, cudaStream_t stream);

// `batch` independent GEMMs; matrix b uses A + b·stride_a, B + b·stride_b, C + b·stride_c (elements).
void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                               const bf16* A, int64_t lda, int64_t stride_a, const bf16* B, int64_t ldb,
                               int64_t stride_b, float beta, void* C, cudaDataType_t c_type, int64_t ldc,
                               int64_t stride_c, int64_t batch, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
