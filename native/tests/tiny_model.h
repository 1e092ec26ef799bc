// The tiny random Qwen2.5-VL / Qwen2-VL configuration and one image's vision index arrays, shared by the
// whole-model tests (test_model.cpp) and the LoRA tests (test_lora.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace vgtest {

using vg::ModelConfig;
using vg::VisionConfig;
using vg::VisionKind;
using vg::Activation;

inline ModelConfig tiny_config(VisionKind kind, bool tied) {
  ModelConfig c;
  c.text.vocab_size = 40;
  c.text.hidden = 16;
  c.text.layers = 2;
  c.text.heads = 4;
  c.text.kv_heads = 2;
  c.text.head_dim = 4;
  c.text.intermediate = 24;
  c.text.rms_eps = 1e-6;
  c.text.rope_theta = 100.0;
  c.text.mrope_section[0] = 1;
  c.text.mrope_section[1] = 0;
  c.text.mrope_section[2] = 1;
  c.text.tie_word_embeddings = tied;
  VisionConfig& v = c.vision;
  v.kind = kind;
  v.depth = 2;
  v.hidden = 8;
  v.heads = 2;
  v.head_dim = 4;
  v.intermediate = 12;
  v.patch_size = 2;
  v.temporal_patch_size = 2;
  v.merge_size = 2;
  v.in_channels = 3;
  v.out_hidden = 16;
  v.act = kind == VisionKind::Qwen2 ? Activation::QuickGELU : Activation::SiLU;
  v.window_size = 8;  // 2 merge units per window side
  v.fullatt_blocks = {1};
  c.image_token_id = 35;
  c.vision_start_token_id = 36;
  c.vision_end_token_id = 37;
  c.video_token_id = 38;
  return c;
}

// Index arrays for one image of grid (1, gh, gw), the same rules as src/model/vision-index.ts.
struct VisionIndex {
  std::vector<int32_t> pos, cu{0}, win, cu_win{0};
};
inline VisionIndex vision_index(int64_t gh, int64_t gw, int64_t units_per_window) {
  VisionIndex x;
  const int64_t lh = gh / 2, lw = gw / 2;
  for (int64_t i = 0; i < lh; ++i)
    for (int64_t j = 0; j < lw; ++j)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          x.pos.push_back(static_cast<int32_t>(2 * i + a));
          x.pos.push_back(static_cast<int32_t>(2 * j + b));
        }
  x.cu.push_back(static_cast<int32_t>(gh * gw));
  for (int64_t wi = 0; wi < lh; wi += units_per_window)
    for (int64_t wj = 0; wj < lw; wj += units_per_window) {
      for (int64_t i = wi; i < std::min(lh, wi + units_per_window); ++i)
        for (int64_t j = wj; j < std::min(lw, wj + units_per_window); ++j) x.win.push_back(static_cast<int32_t>(i * lw + j));
      x.cu_win.push_back(static_cast<int32_t>(x.win.size() * 4));
    }
  return x;
}


}  // namespace vgtest
