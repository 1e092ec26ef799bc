// Batched generation with a KV cache: one prefill over all prompts (packed, no padding), then decoding
// steps over every unfinished sequence at once. Several samples per prompt share the prompt's prefill
// (its keys/values are copied into each sample's cache). Tokens are drawn by the kernels' sampler with a
// counter-based RNG keyed by (seed, sequence id, generated-token index), so a sample does not depend on
// batch composition. Vision special tokens are never sampled.
// Decode step (memory-bound: every weight is streamed once per step for all sequences): per layer, q/k/v in one
// skinny_linear_multi pass, the new keys/values stored into each sequence's cache (decode_attention's transposed
// layout), decode_attention, o_proj with the residual in its epilogue, gate/up + SwiGLU fused (skinny_swiglu),
// down_proj with its residual. More than kSkinnyMaxRows sequences take GEMMs instead of the streaming kernels;
// an on-the-fly adapter on a projection unfuses what follows it (its term is added before the residual and
// before SwiGLU, as in the forward). All step buffers are sized once per call.
// LoRA: with adapters enabled the adapted matrices are either merged for the call (W' = W + s B A built in a
// separate buffer that lives for this call only; the base is never modified, so nothing drifts) or applied on the
// fly (x W^T + s (x A^T) B^T). Both give the same greedy tokens; generation never applies adapter dropout.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/sampling.h"
#include "model/model.h"

namespace vg {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  int64_t num_samples = 1;            // per prompt
  SamplingOptions sampling;           // seed, temperature (0 = greedy), top_k, top_p, min_p; banned set below
  std::vector<int32_t> stop_ids;      // EOS and other stop tokens (the stop token is kept in the output)
  std::vector<int32_t> banned_ids;    // never sampled (the model adds its vision special tokens)
  uint32_t sequence_id_base = 0;      // RNG sequence id of sample g of prompt p = base + p * num_samples + g
  bool adapters = true;               // LoRA mode: generate with the adapters (false = the base model)
  bool merge_adapters = true;         // merge them for the call (else apply them on the fly)
};

struct GeneratedSequence {
  int64_t prompt = 0;                 // index of its prompt
  std::vector<int32_t> tokens;        // new tokens only
  std::vector<float> logprobs;        // log_softmax(logits / T)[token] (T = 1 when greedy)
  bool stopped = false;               // ended on a stop id (else on max_new_tokens)
};

// prompts: packed batch of the prompts (positions from get_rope_index); rope_deltas[p]: decode position of
// cache index c is c + rope_deltas[p] on all three axes. vision may be null.
std::vector<GeneratedSequence> generate(Model<float>& model, const PackedBatch& prompts, const int32_t* rope_deltas,
                                        const VisionInput* vision, const GenerateOptions& opt);

}  // namespace vg
