// Next-token sampling on the GPU with the semantics of native/cpu/sampling.h: banned tokens, temperature
// (0 = greedy), top-k, top-p, min-p in the vLLM / HF order on the one fixed token order (higher logit first,
// lower id on ties), a Philox4x32-10 uniform keyed exactly like the CPU (cuda/philox.h), inverse CDF over the
// kept tokens in ascending id, and the same two log-probs per row. fp32 logits [B, V] on the device.
//
// No sort: one block per row, and every token gets a unique 64-bit key (order-preserving bits of the logit,
// then the complemented id), so "the k best" and "the nucleus" are both "keys >= some threshold":
//   top-k: radix select of the k-th largest key (8 passes of 8 bits, integer histograms in shared memory);
//   top-p: the same radix descent on probability-mass histograms finds the smallest key whose mass strictly
//          before it is < p · (top-k mass). Masses are exp((x − max)/T) in double, accumulated as 64-bit
//          fixed-point integers (2^-(63 − ⌈log2(V+1)⌉) resolution, ~1e-14 for V = 152k) so the shared-memory
//          atomics are exact and the result is the same on every run;
//   min-p: a logit threshold, max + T·log(min_p);
//   draw:  the kept weights are summed in double over fixed contiguous id ranges per thread and scanned in a
//          fixed order, then the thread whose range holds u · mass finds the token.
// Weights are computed in double as the CPU does. Results can differ from the CPU only where u or p falls
// within rounding (~1e-12 relative) of a cumulative-mass boundary.
// The call synchronises `stream` and throws like the CPU (a NaN / +inf logit naming row and column, a row with
// nothing left to sample, bad options). V <= 2^24.
#pragma once
#include <cstdint>

#include "cpu/sampling.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// logits [B, V] fp32; sequence_ids, positions [B] (device); options.banned is a HOST array of token ids.
// Outputs (device): tokens [B], logprobs [B], filtered_logprobs [B].
void sample_tokens(const float* logits, int64_t B, int64_t V, const uint32_t* sequence_ids, const uint32_t* positions,
                   const SamplingOptions& options, int32_t* tokens, float* logprobs, float* filtered_logprobs,
                   cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
