// Scaled dot-product attention over packed variable-length sequences (FlashAttention-2 "varlen" layout),
// forward and backward, computed flash-style: tiles of queries x keys with an online softmax, so the
// memory used beyond inputs and outputs is a few tiles per thread, never Lq x Lk.
//
// Layout (row-major, contiguous, no padding):
//   q, out, dq: [total_q, Hq, D]    k, v, dk, dv: [total_k, Hkv, D]    lse: [Hq, total_q]
//   cu_seqlens_q, cu_seqlens_k: [B + 1] int32, starting at 0, non-decreasing, last = total_q / total_k.
// Sequence b's queries are rows cu_seqlens_q[b] .. cu_seqlens_q[b+1]-1 and attend only to its keys
// cu_seqlens_k[b] .. cu_seqlens_k[b+1]-1. GQA: query head h reads kv head h / (Hq / Hkv) (MHA: Hkv = Hq,
// MQA: Hkv = 1).
//
// Math, per sequence and query head, with Lq queries and Lk keys:
//   s_ij = scale * q_i . k_j        visible(i, j) = !causal || j <= i + (Lk - Lq)   (bottom-right aligned)
//   lse_i = log sum_{visible j} exp(s_ij)     p_ij = exp(s_ij - lse_i)     o_i = sum_j p_ij v_j
// A row that sees no key (causal with i + Lk - Lq < 0, or Lk = 0) gets o_i = 0 and lse_i = -inf.
// Backward, with P recomputed from q, k and the saved lse (the score matrix is never stored):
//   D_i = dO_i . o_i    dP_ij = dO_i . v_j    dS_ij = p_ij (dP_ij - D_i)
//   dq_i = scale * sum_j dS_ij k_j    dk_j = scale * sum_i dS_ij q_i    dv_j = sum_i p_ij dO_i
// with dk and dv summed over the query heads that share a kv head. dq, dk, dv are overwritten (they are
// gradients w.r.t. inputs). Results do not depend on the thread count.
#pragma once
#include <cmath>
#include <cstdint>

namespace vg {

// Sizes and options shared by every attention call.
struct AttentionDims {
  int64_t batch = 0;         // B: number of sequences (cu_seqlens_* have B + 1 entries)
  int64_t total_q = 0;       // rows of q / out
  int64_t total_k = 0;       // rows of k / v
  int64_t num_heads = 0;     // Hq
  int64_t num_kv_heads = 0;  // Hkv, divides Hq
  int64_t head_dim = 0;      // D, any value >= 1
  bool causal = false;
  double scale = 0;          // softmax scale; the usual choice is default_scale(head_dim)

  static double default_scale(int64_t head_dim) { return 1.0 / std::sqrt(static_cast<double>(head_dim)); }
};

// Checks the dims and both cu_seqlens arrays; throws vg::ArgumentError naming the numbers.
void attention_check(const AttentionDims& dims, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k);

// Flash-style forward: writes out [total_q, Hq, D] and lse [Hq, total_q] (natural log, of scaled scores).
// Parallel over (sequence, head, query tile).
template <typename T>
void attention_forward(const AttentionDims& dims, const T* q, const T* k, const T* v, const int32_t* cu_seqlens_q,
                       const int32_t* cu_seqlens_k, T* out, T* lse);

// Flash-style backward from q, k, v, out, lse (as attention_forward wrote them) and dout = dL/dout.
// Overwrites dq, dk, dv. Two passes that never race: over (sequence, kv head, key tile) for dk and dv,
// then over (sequence, head, query tile) for dq. Extra memory: D_i for every row ([Hq, total_q], like lse)
// plus a few tiles per thread.
template <typename T>
void attention_backward(const AttentionDims& dims, const T* q, const T* k, const T* v, const T* out, const T* lse,
                        const T* dout, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, T* dq, T* dk, T* dv);

// The textbook baseline that materialises the full score matrix of a sequence ([Hq, Lq, Lk], through GEMM
// calls): same math and outputs as above. It exists for benchmarks (speed and memory against the flash
// kernels) and as a cross-check in tests; its memory grows with Lq * Lk.
template <typename T>
void attention_forward_materialized(const AttentionDims& dims, const T* q, const T* k, const T* v,
                                    const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, T* out, T* lse);

// Backward of the baseline: materialises P and dP ([Hq, Lq, Lk] each) per sequence.
template <typename T>
void attention_backward_materialized(const AttentionDims& dims, const T* q, const T* k, const T* v, const T* out,
                                     const T* lse, const T* dout, const int32_t* cu_seqlens_q,
                                     const int32_t* cu_seqlens_k, T* dq, T* dk, T* dv);

}  // namespace vg
