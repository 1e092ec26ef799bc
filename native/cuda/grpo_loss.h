// Fused GRPO policy loss on the GPU: the same options, math and statistics as native/cpu/grpo_loss.h (PPO-clip
// with dual-clip, GSPO sequence ratio, CISPO, KL estimators k1/k2/k3/abs, entropy bonus, four aggregation
// modes), with the gradient w.r.t. the current log-probs written in the same pass. fp32 inputs, per-token math
// in double exactly as the CPU writes it, fp32 gradients.
//
// Four launches, no atomics, so the result is bitwise reproducible: (1) one block per sequence sums its mask
// (and Σ m·Δ for GSPO); (2) one block adds those in sequence order into the token / sequence counts; (3) one
// block per sequence computes every token's loss and gradient and the sequence's ten partial sums; (4) one
// block adds the partial sums in sequence order. The statistics are then copied to the host (one synchronise
// of `stream`), so the call returns GrpoLossStats like the CPU's.
#pragma once
#include <cstdint>

#include "cpu/grpo_loss.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// logprobs, old_logprobs, mask, (ref_logprobs, entropy: may be null): [num_sequences * seq_len] device arrays;
// advantages: [num_sequences]. grad overwritten; grad_entropy written when not null. M is uint8_t or float.
template <typename M>
GrpoLossStats grpo_loss(const GrpoLossConfig& cfg, const float* logprobs, const float* old_logprobs,
                        const float* ref_logprobs, const float* advantages, const M* mask, const float* entropy,
                        float* grad, float* grad_entropy, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
