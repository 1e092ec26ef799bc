// The vision tower of Qwen2.5-VL (RMSNorm, gated SiLU MLP, window attention with full-attention blocks) and
// Qwen2-VL (LayerNorm, fc1 -> quick-GELU -> fc2, full attention), forward and backward:
//   patch embed (linear, no bias) -> [Qwen2.5: rows permuted into window order] -> blocks -> merger
//   (norm -> 4 patches concatenated -> Linear -> exact GELU -> Linear) -> [inverse permutation].
// The index arrays (rotary (row, col) ids, window order, segment boundaries) come from TypeScript
// (src/model/vision-index.ts), so this file is pure math.
#pragma once
#include <cstdint>
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
struct VisionActs {
  std::vector<T> pixels;               // [P, patch_dim] in the compute type (original order)
  std::vector<int32_t> perm;           // window-order row -> original row (identity for Qwen2-VL)
  std::vector<T> cos, sin;             // rotary tables in window order [P, hd/2]
  std::vector<VisionBlockActs<T>> blocks;
  std::vector<T> x_final, ln_mean, ln_rstd, ln_out, fc1, gelu;  // merger
  std::array<std::vector<T>, kLoraMergerSlots> lora_u;           // merger LoRA: drop(x) A^T [P / 4, r]
};

// out: [P / 4, out_hidden] in the original merge-unit order. lora: adapters to apply (null = none).
template <typename T>
void vision_forward(const ModelConfig& cfg, const ModelView<T>& p, const VisionInput& in, VisionActs<T>& acts, T* out,
                    const LoraView<T>* lora = nullptr);

// dout: [P / 4, out_hidden]; accumulates the vision parameters' gradients into g (null pointers in g are skipped,
// e.g. every base weight in LoRA mode) and the adapters' gradients (lora: the forward's view).
template <typename T>
void vision_backward(const ModelConfig& cfg, const ModelView<T>& p, const ModelView<T>& g, const VisionInput& in,
                     VisionActs<T>& acts, const T* dout, const LoraView<T>* lora = nullptr);

}  // namespace vg
