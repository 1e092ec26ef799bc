// Token log-probabilities (and entropy) straight from hidden states and the LM head, without ever holding
// the [N x V] logits matrix: the "chunked log-prob gather" the GRPO loss needs for the policy, the old
// policy and the reference model.
//
//   z[n, v]      = (h[n, :] . W[v, :]) / temperature          h [N, H], W [V, H] (PyTorch layout, logits = h W^T)
//   lse[n]       = log sum_v exp z[n, v]
//   logprob[n]   = z[n, t_n] - lse[n]                          t_n = targets[n]
//   entropy[n]   = -sum_v p[n, v] log p[n, v],  p = softmax(z)
// Rows whose target is negative ("no target": prompt or padding positions) get logprob 0 and entropy 0 and
// no gradient; their lse is still computed. A target >= V is an error naming the row and the value.
//
// The vocabulary is processed `chunk` columns at a time (one GEMM per chunk) with an online max / sum per
// row, so the extra memory is O(N x chunk) instead of O(N x V). Chunks are visited in order and each row's
// statistics are updated by exactly one task, so results do not depend on the thread count. Statistics are
// kept in double for both element types.
//
// Backward (chunk by chunk, recomputing the chunk's logits), with g = dlogprob, e = dentropy:
//   d logprob / d z_j = 1[j = t] - p_j        d entropy / d z_j = -p_j (log p_j + entropy)
//   G[n, j] = g_n (1[j = t_n] - p_j) - e_n p_j (log p_j + entropy_n)
//   dh = (G W) / temperature   (overwritten)        dW += (G^T h) / temperature   (accumulated)
#pragma once
#include <cstdint>

namespace vg {

// Default vocabulary chunk: 4096 columns keeps the chunk buffer at N x 16 KiB in float.
constexpr int64_t kLogprobDefaultChunk = 4096;

// Chunked forward. logprob [N] and lse [N] are required outputs; entropy [N] may be null (not computed).
// temperature > 0; chunk >= 1 (clamped to V).
template <typename T>
void logprob_forward(const T* h, const T* W, const int32_t* targets, T* logprob, T* entropy, T* lse, int64_t N,
                     int64_t H, int64_t V, double temperature = 1.0, int64_t chunk = kLogprobDefaultChunk);

// Chunked backward. lse is the forward's; dlogprob [N] is required, dentropy [N] may be null (no entropy
// term). entropy [N] is the forward's entropy; when dentropy is given and entropy is null it is recomputed
// with one extra forward pass. dh [N, H] is overwritten (skipped when null); dW [V, H] is accumulated into
// (skipped when null).
template <typename T>
void logprob_backward(const T* h, const T* W, const int32_t* targets, const T* lse, const T* dlogprob,
                      const T* dentropy, const T* entropy, T* dh, T* dW, int64_t N, int64_t H, int64_t V,
                      double temperature = 1.0, int64_t chunk = kLogprobDefaultChunk);

// The "full logits" reference path: the same math, materialising the whole [N, V] logits matrix once (as a
// plain `log_softmax(h @ W.T).gather(targets)` does). For tests and the memory benchmark.
template <typename T>
void logprob_forward_full(const T* h, const T* W, const int32_t* targets, T* logprob, T* entropy, T* lse, int64_t N,
                          int64_t H, int64_t V, double temperature = 1.0);

template <typename T>
void logprob_backward_full(const T* h, const T* W, const int32_t* targets, const T* lse, const T* dlogprob,
                           const T* dentropy, const T* entropy, T* dh, T* dW, int64_t N, int64_t H, int64_t V,
                           double temperature = 1.0);

}  // namespace vg
