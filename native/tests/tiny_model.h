// The tiny random Qwen2.5-VL / Qwen2-VL configuration and one image's vision index arrays, shared by the
// whole-model tests (test_model.cpp) and the LoRA tests (test_lora.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/decoder.h"
#include "model/model.h"
#include "model/vision.h"
#include "test_framework.h"

namespace vgtest {

using vg::ModelConfig;
using vg::VisionConfig;
using vg::VisionKind;
using vg::Activation;
using vg::Model;
using vg::PackedBatch;
using vg::ParamEntry;
using vg::VisionInput;

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


// A packed batch of two sequences for the tiny model: one with an image of grid (1, 4, 6), one text only, with
// next-token targets and random weights for a weighted log-prob loss.
struct Case {
  ModelConfig cfg;
  std::vector<int32_t> ids, positions, cu, targets;
  std::vector<float> pixels;
  VisionIndex vi;
  VisionInput vin;
  std::vector<double> weights;  // loss = sum_n weights[n] * logprob[n]
  PackedBatch batch() const {
    PackedBatch b;
    b.num_tokens = static_cast<int64_t>(ids.size());
    b.num_seqs = static_cast<int64_t>(cu.size()) - 1;
    b.input_ids = ids.data();
    b.positions = positions.data();
    b.cu_seqlens = cu.data();
    return b;
  }
};

// Two sequences: one with an image of grid (1, 4, 6) (6 image tokens, 2 windows), one text only.
inline Case make_case(VisionKind kind, bool tied, uint64_t salt) {
  Case c;
  c.cfg = tiny_config(kind, tied);
  auto g = vgtest::rng(salt);
  const int64_t gh = 4, gw = 6, P = gh * gw, tokens = P / 4;
  std::vector<int32_t> s0 = {1, 2, 36};
  for (int i = 0; i < tokens; ++i) s0.push_back(35);
  for (int v : {37, 5, 6, 7, 8}) s0.push_back(v);
  std::vector<int32_t> s1 = {3, 9, 10, 11, 12, 13, 14};
  c.ids = s0;
  c.ids.insert(c.ids.end(), s1.begin(), s1.end());
  c.cu = {0, static_cast<int32_t>(s0.size()), static_cast<int32_t>(s0.size() + s1.size())};
  const int64_t N = static_cast<int64_t>(c.ids.size());
  c.positions.assign(3 * N, 0);
  int64_t n = 0;
  for (int p = 0; p < 3; ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  for (int i = 0; i < gh / 2; ++i)
    for (int j = 0; j < gw / 2; ++j, ++n) {
      c.positions[0 * N + n] = 3;
      c.positions[1 * N + n] = 3 + i;
      c.positions[2 * N + n] = 3 + j;
    }
  for (int p = 6; n < static_cast<int64_t>(s0.size()); ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  for (int p = 0; n < N; ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  c.targets.assign(N, -1);
  for (size_t s = 0; s + 1 < c.cu.size(); ++s)
    for (int64_t t = c.cu[s]; t + 1 < c.cu[s + 1]; ++t)
      if (c.ids[t + 1] != 35) c.targets[t] = c.ids[t + 1];
  c.pixels = vgtest::randn<float>(P * c.cfg.vision.patch_dim(), g);
  c.vi = vision_index(gh, gw, c.cfg.vision.window_size / (c.cfg.vision.patch_size * c.cfg.vision.merge_size));
  c.vin.num_patches = P;
  c.vin.pixel_values = c.pixels.data();
  c.vin.pos_ids = c.vi.pos.data();
  c.vin.num_images = 1;
  c.vin.cu_seqlens = c.vi.cu.data();
  if (kind == VisionKind::Qwen2_5) {
    c.vin.window_index = c.vi.win.data();
    c.vin.num_windows = static_cast<int64_t>(c.vi.cu_win.size()) - 1;
    c.vin.cu_window_seqlens = c.vi.cu_win.data();
  }
  c.weights = vgtest::randn<double>(N, g);
  return c;
}

template <typename T>
void init_params(Model<T>& m, uint64_t salt) {
  auto g = vgtest::rng(salt);
  for (const ParamEntry& e : m.layout().entries()) {
    const bool norm = e.name.find("norm") != std::string::npos || e.name.find("ln_q") != std::string::npos;
    const bool bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;
    auto r = vgtest::randn<double>(e.numel, g, norm && !bias ? 0.1 : 0.3);
    for (int64_t i = 0; i < e.numel; ++i) m.params()[e.offset + i] = static_cast<T>(r[i] + (norm && !bias ? 1.0 : 0.0));
  }
}

}  // namespace vgtest
