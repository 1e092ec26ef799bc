// The Qwen2 / Qwen2.5-VL language model over a packed batch of sequences (no padding), forward and
// backward: embedding (+ vision features at image-pad and video-pad positions), L x [RMSNorm -> q/k/v (bias) -> M-RoPE ->
// causal GQA attention -> o_proj -> residual -> RMSNorm -> SwiGLU MLP -> residual], final RMSNorm.
// Qwen3-VL (TextConfig::qk_norm): no q/k/v bias, per-head RMSNorm of q and k before an interleaved M-RoPE, and
// deepstack vision features added at the vision-pad rows after the first layers.
// The LM head and log-probs live in model.cpp (chunked, never full logits unless asked).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/params.h"

namespace vg {

// A packed batch: B sequences laid end to end, N tokens in all.
struct PackedBatch {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  const int32_t* input_ids = nullptr;   // [N]
  const int32_t* positions = nullptr;   // [3, N] M-RoPE (t, h, w) ids
  const int32_t* cu_seqlens = nullptr;  // [B + 1], cu_seqlens[0] = 0, cu_seqlens[B] = N
};

// What one decoder layer keeps for its backward pass.
template <typename T>
struct LayerActs {
  std::vector<T> x_in;       // [N, H] residual stream entering the layer
  std::vector<T> rstd1, xn1; // input RMSNorm statistics and output
  std::vector<T> q, k, v;    // [N, Hq*d], [N, Hkv*d] x2, after bias; q and k after RoPE
  std::vector<T> q_raw, k_raw, rstd_q, rstd_k;  // Qwen3-VL q/k norm: projections before the per-head RMSNorm, its rstd
  std::vector<T> attn, lse;  // attention output [N, Hq*d] and its log-sum-exp [Hq, N]
  std::vector<T> x_mid;      // residual after attention
  std::vector<T> rstd2, xn2; // post-attention RMSNorm
  std::vector<T> gate, up, act;  // MLP [N, I]
  std::array<std::vector<T>, kLoraDecoderSlots> lora_u;  // LoRA: drop(x) A^T [N, r] per adapted projection
  void clear_all_but_input();
  void keep_only_kv();
};

template <typename T>
struct DecoderActs {
  std::vector<LayerActs<T>> layers;
  std::vector<T> cos, sin;      // rotary tables [N, d/2], shared by all layers
  std::vector<T> x_final;       // [N, H] residual after the last layer
  std::vector<T> rstd_f, hidden; // final RMSNorm statistics and output (the LM head's input)
  bool recompute = false;       // gradient checkpointing: layers keep only x_in
  bool kv_only = false;         // prefill for generation: layers keep only k and v (post-RoPE)
  int64_t deepstack_count = 0;  // deepstack inputs of the last forward (Qwen3-VL)
  // Set by the caller of decoder_backward (may be empty): called with l once layer l's parameter gradients are final.
  std::function<void(int64_t)> on_layer_grads;
  // Buffers reused from call to call (fresh vectors every step cost page faults and zero-filling).
  std::vector<T> x;             // the residual stream between layers
  struct Grads {
    std::vector<T> dx, tmp, dmid, dact, dgate, dup, dattn, dq, dk, dv, dxn, scratch;
  } grad;
};

// Qwen3-VL deepstack: deepstack[l] ([vision-pad rows, H], same row order as vision_embeds) is added to the residual
// stream at the vision-pad positions right after decoder layer l, for l < deepstack.size() (null/empty = none).
template <typename T>
using DeepstackInput = std::vector<const T*>;

// Forward. vision_embeds: [image-pad + video-pad tokens in the batch, H]: first one row per image-pad token, then one
// per video-pad token, each group in token order (may be null when there are none). When acts.recompute is set, only each layer's input is kept. lora: adapters to apply (null = none).
template <typename T>
void decoder_forward(const ModelConfig& cfg, const ModelView<T>& p, const PackedBatch& batch, const T* vision_embeds,
                     DecoderActs<T>& acts, const LoraView<T>* lora = nullptr,
                     const DeepstackInput<T>* deepstack = nullptr);

// Backward from dL/d hidden [N, H] (the final norm's output). Accumulates parameter gradients into g (same layout;
// a null pointer in g skips that parameter's gradient, e.g. every base weight in LoRA mode), writes dL/d
// vision_embeds (same row order as the forward's) when d_vision_embeds is not null. `dhidden` is consumed (used
// as scratch). lora: the forward's adapters (same dropout context); their gradients are accumulated.
template <typename T>
void decoder_backward(const ModelConfig& cfg, const ModelView<T>& p, const ModelView<T>& g, const PackedBatch& batch,
                      DecoderActs<T>& acts, std::vector<T>& dhidden, T* d_vision_embeds,
                      const LoraView<T>* lora = nullptr, std::vector<std::vector<T>>* d_deepstack = nullptr);
// d_deepstack (when not null, resized to `count` entries of [vision-pad rows, H]) receives dL/d deepstack[l]
// for l < count, where count is the number of deepstack inputs of the forward.

}  // namespace vg
