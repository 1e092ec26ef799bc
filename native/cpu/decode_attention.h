// Attention of one new query row per sequence over that sequence's KV cache (the decode step of generation), GQA.
//
// Cache layout, per sequence (and layer), `capacity` positions:
//   keys   [kv_heads, head_dim, capacity]   transposed: the scores of all cached positions for one query are then
//                                           contiguous multiply-adds over the positions (no horizontal sums);
//   values [kv_heads, capacity, head_dim]   the output is then contiguous multiply-adds over the head dim.
// Math, for sequence b with len cached positions and query head h (kv head kh = h / (heads / kv_heads)):
//   s_j = scale * (q_h . k_j)   p_j = exp(s_j - max s) / sum_j' exp(s_j' - max s)   out_h = sum_j p_j v_j
// Scores and probabilities in T (exp through exp_fast: about 2 ulp in float), the normaliser summed in double; each
// (sequence, kv head) is one task of one thread, so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace vg {

template <typename T>
struct DecodeKv {
  const T* keys = nullptr;    // [kv_heads, head_dim, capacity]
  const T* values = nullptr;  // [kv_heads, capacity, head_dim]
  int64_t len = 0;            // positions attended to, 1 <= len <= capacity
  int64_t capacity = 0;
};

struct DecodeAttentionDims {
  int64_t batch = 0;     // sequences (one query row each)
  int64_t heads = 0;     // query heads
  int64_t kv_heads = 0;  // divides heads
  int64_t head_dim = 0;
  double scale = 0;      // usually 1 / sqrt(head_dim)
};

// q, out: [batch, heads * head_dim]; kv: [batch]. out must not alias q.
template <typename T>
void decode_attention(const DecodeAttentionDims& dims, const T* q, const DecodeKv<T>* kv, T* out);

// Writes one position's keys and values (k_row, v_row: [kv_heads * head_dim], the projection's layout) into a
// cache laid out as above, at position `pos` < capacity.
template <typename T>
void decode_kv_store(T* keys, T* values, int64_t capacity, int64_t kv_heads, int64_t head_dim, int64_t pos,
                     const T* k_row, const T* v_row);

}  // namespace vg
