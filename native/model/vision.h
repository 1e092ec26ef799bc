// The vision tower of Qwen2.5-VL (RMSNorm, gated SiLU MLP, window attention with full-attention blocks) and
// Qwen2-VL (LayerNorm, fc1 -> quick-GELU -> fc2, full attention), forward and backward:
//   patch embed (linear, no bias) -> [Qwen2.5: rows permuted into window order] -> blocks -> merger
//   (norm -> 4 patches concatenated -> Linear -> exact GELU -> Linear) -> [inverse permutation].
// Qwen3-VL (VisionKind::Qwen3): Qwen2-VL-style LayerNorm / fc1-act-fc2 blocks with full attention, plus a
// patch-embed bias, the learned position table bilinearly interpolated to each image's patch grid (HF
// fast_pos_embed_interpolate; the grid h × w of a segment is read off its (row, col) ids) added after the patch
// embedding, and deepstack: the outputs of the blocks in deepstack_indexes go through their own mergers
// (LayerNorm over the 4 concatenated patches, then fc1 -> GELU -> fc2) into acts.deepstack_out.
// The index arrays (rotary (row, col) ids, window order, segment boundaries) come from TypeScript
// (src/model/vision-index.ts), so this file is pure math.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/params.h"

namespace vg {

struct VisionInput {
  int64_t num_patches = 0;               // P, all images of the batch in order
  const float* pixel_values = nullptr;   // [P, patch_dim] (always fp32, as the processor produces it)
  const int32_t* pos_ids = nullptr;      // [P, 2] (row, col) per patch, original order
  int64_t num_images = 0;
  const int32_t* cu_seqlens = nullptr;   // [num_images + 1] per-image (per-frame) boundaries in patches
  // Qwen2.5-VL only (null for Qwen2-VL):
  const int32_t* window_index = nullptr;       // [P / 4] window order -> original merge-unit index
  int64_t num_windows = 0;
  const int32_t* cu_window_seqlens = nullptr;  // [num_windows + 1] window boundaries in patches (window order)
};

template <typename T>
struct VisionBlockActs {
  std::vector<T> x_in, mean1, rstd1, xn1, q, k, v, attn, lse, h, mean2, rstd2, xn2, a, b, act;
  std::array<std::vector<T>, kLoraVisionSlots> lora_u;  // LoRA: drop(x) A^T [P, r] per adapted layer
};

template <typename T>
struct MergerActs {
  std::vector<T> mean, rstd, ln_out, fc1, gelu;
};

template <typename T>
struct VisionActs {
  // Qwen3-VL: the 4 bilinear taps (row of pos_embed, weight) of each patch (original order), the deepstack mergers'
  // activations and outputs ([P / 4, out_hidden] each, original merge-unit order, one per deepstack index).
  std::vector<int32_t> pe_idx;
  std::vector<T> pe_w;
  std::vector<MergerActs<T>> ds;
  std::vector<std::vector<T>> deepstack_out;
  std::vector<T> pixels;               // [P, patch_dim] in the compute type (original order)
  std::vector<int32_t> perm;           // window-order row -> original row (identity for Qwen2-VL)
  std::vector<T> cos, sin;             // rotary tables in window order [P, hd/2]
  std::vector<VisionBlockActs<T>> blocks;
  std::vector<T> x_final, ln_mean, ln_rstd, ln_out, fc1, gelu;  // merger
  std::array<std::vector<T>, kLoraMergerSlots> lora_u;           // merger LoRA: drop(x) A^T [P / 4, r]
  // Set by the caller of vision_backward (may be empty): called with b once block b's parameter gradients (and those
  // of the deepstack merger it feeds) are final.
  std::function<void(int64_t)> on_block_grads;
};

// out: [P / 4, out_hidden] in the original merge-unit order. lora: adapters to apply (null = none).
template <typename T>
void vision_forward(const ModelConfig& cfg, const ModelView<T>& p, const VisionInput& in, VisionActs<T>& acts, T* out,
                    const LoraView<T>* lora = nullptr);

// dout: [P / 4, out_hidden]; accumulates the vision parameters' gradients into g (null pointers in g are skipped,
// e.g. every base weight in LoRA mode) and the adapters' gradients (lora: the forward's view).
// d_deepstack (Qwen3-VL, may be null = no gradient through deepstack): dL/d acts.deepstack_out[i], same shapes.
template <typename T>
void vision_backward(const ModelConfig& cfg, const ModelView<T>& p, const ModelView<T>& g, const VisionInput& in,
                     VisionActs<T>& acts, const T* dout, const LoraView<T>* lora = nullptr,
                     const std::vector<std::vector<T>>* d_deepstack = nullptr);

}  // namespace vg
