#include "model/config.h"

#include "core/error.h"

namespace vg {

void ModelConfig::validate() const {
  const TextConfig& t = text;
  VG_CHECK_ARG(t.vocab_size > 0 && t.hidden > 0 && t.layers > 0 && t.heads > 0 && t.kv_heads > 0 &&
                   t.intermediate > 0 && t.head_dim > 0,
               "model config: text sizes must be positive (vocab ", t.vocab_size, ", hidden ", t.hidden, ", layers ",
               t.layers, ", heads ", t.heads, ", kv heads ", t.kv_heads, ", head dim ", t.head_dim, ")");
  VG_CHECK_ARG(t.heads % t.kv_heads == 0, "model config: num_attention_heads ", t.heads,
               " is not a multiple of num_key_value_heads ", t.kv_heads);
  VG_CHECK_ARG(t.head_dim % 2 == 0, "model config: head dim ", t.head_dim, " must be even for rotary embeddings");
  VG_CHECK_ARG(t.mrope_section[0] + t.mrope_section[1] + t.mrope_section[2] == t.head_dim / 2,
               "model config: mrope_section [", t.mrope_section[0], ", ", t.mrope_section[1], ", ", t.mrope_section[2],
               "] must sum to head_dim / 2 = ", t.head_dim / 2);
  if (!vision.present) {
    VG_CHECK_ARG(vision.deepstack_indexes.empty(), "model config: deepstack needs a vision tower");
    return;
  }
  const VisionConfig& v = vision;
  VG_CHECK_ARG(v.depth > 0 && v.hidden > 0 && v.heads > 0 && v.intermediate > 0 && v.out_hidden > 0,
               "model config: vision sizes must be positive (depth ", v.depth, ", hidden ", v.hidden, ", heads ",
               v.heads, ", intermediate ", v.intermediate, ", out ", v.out_hidden, ")");
  VG_CHECK_ARG(v.hidden % v.heads == 0 && v.head_dim == v.hidden / v.heads, "model config: vision hidden ", v.hidden,
               " / heads ", v.heads, " must equal the vision head dim ", v.head_dim);
  VG_CHECK_ARG(v.head_dim % 4 == 0, "model config: vision head dim ", v.head_dim, " must be a multiple of 4 (2-D rotary)");
  VG_CHECK_ARG(v.out_hidden == t.hidden, "model config: vision out hidden ", v.out_hidden, " must equal the text hidden size ",
               t.hidden);
  VG_CHECK_ARG(v.merge_size > 0 && v.patch_size > 0 && v.temporal_patch_size > 0, "model config: vision patch sizes must be positive");
  if (v.kind == VisionKind::Qwen2_5) {
    VG_CHECK_ARG(v.window_size % (v.patch_size * v.merge_size) == 0, "model config: window_size ", v.window_size,
                 " must be a multiple of patch_size * spatial_merge_size = ", v.patch_size * v.merge_size);
    for (int64_t b : v.fullatt_blocks)
      VG_CHECK_ARG(b >= 0 && b < v.depth, "model config: fullatt_block_indexes entry ", b, " is outside [0, ", v.depth, ")");
  }
  if (v.kind == VisionKind::Qwen3) {
    int64_t side = 0;
    while ((side + 1) * (side + 1) <= v.num_position_embeddings) ++side;
    VG_CHECK_ARG(v.num_position_embeddings > 0 && side * side == v.num_position_embeddings,
                 "model config: num_position_embeddings ", v.num_position_embeddings, " must be a positive perfect square");
    VG_CHECK_ARG(static_cast<int64_t>(v.deepstack_indexes.size()) <= t.layers, "model config: ",
                 v.deepstack_indexes.size(), " deepstack_visual_indexes but only ", t.layers, " decoder layers to add them to");
    for (size_t i = 0; i < v.deepstack_indexes.size(); ++i) {
      const int64_t b = v.deepstack_indexes[i];
      VG_CHECK_ARG(b >= 0 && b < v.depth, "model config: deepstack_visual_indexes entry ", b, " is outside [0, ", v.depth, ")");
      for (size_t j = 0; j < i; ++j)
        VG_CHECK_ARG(v.deepstack_indexes[j] != b, "model config: deepstack_visual_indexes lists block ", b, " twice");
    }
  } else {
    VG_CHECK_ARG(v.deepstack_indexes.empty(), "model config: deepstack_visual_indexes is a Qwen3-VL feature");
  }
  VG_CHECK_ARG(image_token_id >= 0 && image_token_id < t.vocab_size, "model config: image_token_id ", image_token_id,
               " is outside the vocabulary (", t.vocab_size, ")");
}

}  // namespace vg
