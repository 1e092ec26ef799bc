// Token log-probabilities and entropy from hidden states and the LM head on the GPU without the [N x V]
// logits: the math of native/cpu/logprob.h, chunked over the vocabulary.
//
//   z[n, v] = (h[n] · W[v]) / T;  lse[n] = log Σ_v exp z[n, v];  logprob[n] = z[n, t_n] − lse[n];
//   entropy[n] = −Σ_v p log p = log s − t / s with s = Σ e^(z − m), t = Σ e^(z − m)(z − m), m the row max;
//   rows with t_n < 0: logprob = entropy = 0, no gradient.
// Forward, per chunk of `chunk` vocabulary rows: one cuBLAS bf16 GEMM (fp32 accumulate, fp32 output) writes the
// chunk's logits [N, chunk], then an online log-sum-exp kernel (one block per row) merges the chunk's max,
// Σ exp(z − max) and Σ exp(z − max)·(z − max) into the row's running fp32 statistics and picks up the target
// logit.
// Extra memory: N × chunk fp32. The targets are validated on the device; a target >= V is an ArgumentError
// naming the row and the value (the forward synchronises `stream` once at the end to check).
// Backward, per chunk (logits recomputed): G[n, j] = g_n (1[j = t_n] − p_j) − e_n p_j (log p_j + entropy_n),
// written as bf16 [N, chunk], then dh += G · W_chunk / T and dW_chunk += Gᵀ · h / T by two bf16 GEMMs with fp32
// accumulation into fp32 outputs. dh [N, H] fp32 is overwritten; dW [V, H] fp32 is accumulated (+=).
// h [N, H] and W [V, H] are bf16 (PyTorch layout, logits = h Wᵀ); every pointer is device memory.
#pragma once
#include <cstdint>

#include "cuda/runtime.h"

namespace vg {
namespace cuda {

constexpr int64_t kLogprobDefaultChunkGpu = 8192;

// logprob, lse: [N] required; entropy [N] may be null.
void logprob_forward(const bf16* h, const bf16* W, const int32_t* targets, float* logprob, float* entropy, float* lse,
                     int64_t N, int64_t H, int64_t V, double temperature, int64_t chunk, cudaStream_t stream);

// lse from the forward; dlogprob [N] required; dentropy [N] may be null; entropy [N] from the forward (recomputed
// when dentropy is given and entropy is null). dh [N, H] overwritten (skipped when null); dW [V, H] accumulated
// (skipped when null).
void logprob_backward(const bf16* h, const bf16* W, const int32_t* targets, const float* lse, const float* dlogprob,
                      const float* dentropy, const float* entropy, float* dh, float* dW, int64_t N, int64_t H,
                      int64_t V, double temperature, int64_t chunk, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
