// Flash attention on the GPU (FlashAttention-2 algorithm with mma.sync bf16 tensor-core instructions, sm_80+),
// forward and backward, over packed variable-length batches: the layout, masking and math of
// native/cpu/attention.h (causal bottom-right aligned, GQA, rows that see no key get o = 0 and lse = -inf).
//
//   q, out, dq: [total_q, Hq, D] bf16    k, v, dk, dv: [total_k, Hkv, D] bf16    lse: [Hq, total_q] fp32
//   cu_seqlens_q / cu_seqlens_k: [B + 1] int32 on the device; max_seqlen_q / max_seqlen_k: their largest
//   difference, from the host (it sizes the grid, as in flash-attn's varlen API).
// Head dims 64, 80 and 128. Tiles of 64 queries x 64 keys, 4 warps, each warp owning 16 rows; scores,
// softmax statistics and accumulators are fp32, P (and dS) are rounded to bf16 for the second product, as in
// FlashAttention-2.
// Backward without atomics, so it is bitwise reproducible: one kernel per key tile accumulates dK, dV over every
// query tile and every query head of the GQA group; another per query tile accumulates dQ over the key tiles
// (recomputing P from the saved lse); D_i = dO_i · o_i comes first. dq, dk, dv are overwritten.
// This is the straightforward first version (plain shared-memory loads, no cp.async / TMA / wgmma pipeline).
#pragma once
#include <cstdint>

#include "cpu/attention.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

void attention_forward(const AttentionDims& dims, int64_t max_seqlen_q, int64_t max_seqlen_k, const bf16* q,
                       const bf16* k, const bf16* v, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k,
                       bf16* out, float* lse, cudaStream_t stream);

void attention_backward(const AttentionDims& dims, int64_t max_seqlen_q, int64_t max_seqlen_k, const bf16* q,
                        const bf16* k, const bf16* v, const bf16* out, const float* lse, const bf16* dout,
                        const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, bf16* dq, bf16* dk, bf16* dv,
                        cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
