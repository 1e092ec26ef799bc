// The model's shape, as a flat, fully defaulted struct. TypeScript parses and validates config.json
// (src/model/config.ts) and hands this over; native re-checks the invariants it relies on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vg {

// 2.5: RMSNorm + gated SiLU MLP + windows; 2: LayerNorm + fc1/act/fc2; 3 (Qwen3-VL dense): LayerNorm + fc1/act/fc2
// blocks like 2, plus a patch-embed bias, a learned bilinearly interpolated position embedding and deepstack mergers.
enum class VisionKind { Qwen2_5, Qwen2, Qwen3 };
enum class Activation { SiLU, QuickGELU, GELU, GELUTanh };

struct TextConfig {
  int64_t vocab_size = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  double rms_eps = 1e-6, rope_theta = 1e6;
  int64_t mrope_section[3] = {0, 0, 0};  // sums to head_dim / 2
  bool tie_word_embeddings = false;
  // Qwen3-VL text model: no q/k/v bias, per-head RMSNorm on q and k (q_norm/k_norm, eps rms_eps) before RoPE,
  // and interleaved M-RoPE: rotary pair k takes its angle from h when k % 3 == 1 and k < 3·s1, from w when
  // k % 3 == 2 and k < 3·s2, else from t (HF apply_interleaved_mrope).
  bool attention_bias = true;
  bool qk_norm = false;
  bool mrope_interleaved = false;
};

struct VisionConfig {
  bool present = true;
  VisionKind kind = VisionKind::Qwen2_5;
  int64_t depth = 0, hidden = 0, heads = 0, head_dim = 0, intermediate = 0;
  int64_t patch_size = 14, temporal_patch_size = 2, merge_size = 2, in_channels = 3, out_hidden = 0;
  Activation act = Activation::SiLU;
  double eps = 1e-6;
  std::vector<int64_t> fullatt_blocks;  // Qwen2.5: blocks with per-image attention; others windowed
  int64_t window_size = 112;             // pixels (Qwen2.5)
  // Qwen3-VL: pos_embed has num_position_embeddings = side² rows (a side × side grid, bilinearly interpolated to
  // each image's patch grid); the outputs of the blocks in deepstack_indexes go through their own mergers
  // (LayerNorm over the 4 concatenated patches) and are added to the decoder's vision-pad rows after layers 0..k-1.
  int64_t num_position_embeddings = 0;
  std::vector<int64_t> deepstack_indexes;
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t merged_dim() const { return hidden * merge_size * merge_size; }
};

struct ModelConfig {
  TextConfig text;
  VisionConfig vision;
  int64_t image_token_id = -1, video_token_id = -1, vision_start_token_id = -1, vision_end_token_id = -1;
  // Throws vg::ArgumentError naming the field when an invariant fails.
  void validate() const;
};

}  // namespace vg
