// Decode-step attention on the GPU over a paged KV cache: one new query row per sequence, GQA, the math of
// native/cpu/decode_attention.h (s_j = scale·q·k_j, softmax over the sequence's cached positions, out = Σ p_j v_j).
//
// Paged cache (vLLM-style), one pool per layer:
//   k_pages, v_pages: [num_pages, page_size, kv_heads, head_dim] bf16
//   block_table:      [batch, max_pages] int32: sequence b's position j lives in page block_table[b, j / page_size]
//                     at slot j % page_size
//   seq_lens:         [batch] int32, positions attended to (0 gives out = 0)
// Pages can be anywhere in the pool and shared by no one else; a finished sequence's pages are simply reused, which
// is what lets continuous batching refill a slot without moving memory (cuda/kv_pages.h keeps that bookkeeping
// and the block table on the host).
// One block per (sequence, query head); its 4 warps take every 4th position, each lane holds head_dim / 32 of
// the dot product and of the output, each warp keeps its own online-softmax state (fp32), and the four states
// are merged in a fixed order at the end: results are reproducible. head_dim <= 256 and a multiple of 2.
#pragma once
#include <cstdint>

#include "cuda/runtime.h"

namespace vg {
namespace cuda {

struct PagedKvDims {
  int64_t batch = 0;
  int64_t heads = 0;     // query heads
  int64_t kv_heads = 0;  // divides heads
  int64_t head_dim = 0;
  int64_t page_size = 0;
  int64_t num_pages = 0;
  int64_t max_pages = 0;  // block_table row length
  double scale = 0;
};

// q, out: [batch, heads, head_dim] bf16 (out must not alias q).
void paged_decode_attention(const PagedKvDims& dims, const bf16* q, const bf16* k_pages, const bf16* v_pages,
                            const int32_t* block_table, const int32_t* seq_lens, bf16* out, cudaStream_t stream);

// Writes one position per sequence: k_new, v_new [batch, kv_heads, head_dim] go to position positions[b] of
// sequence b (through its block table). Rows with positions[b] < 0 are skipped (finished slots).
void paged_kv_store(const PagedKvDims& dims, const bf16* k_new, const bf16* v_new, const int32_t* block_table,
                    const int32_t* positions, bf16* k_pages, bf16* v_pages, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
