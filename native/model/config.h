// The model's shape, as a flat, fully defaulted struct. TypeScript parses and validates config.json
// (src/model/config.ts) and hands this over; native re-checks the invariants it relies on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vg {

enum class VisionKind { Qwen2_5, Qwen2 };     // 2.5: RMSNorm + gated SiLU MLP + windows; 2: LayerNorm + fc1/act/fc2
enum class Activation { SiLU, QuickGELU, GELU, GELUTanh };

struct TextConfig {
  int64_t vocab_size = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  double rms_eps = 1e-6, rope_theta = 1e6;
  int64_t mrope_section[3] = {0, 0, 0};  // sums to head_dim / 2
  bool tie_word_embeddings = false;
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
