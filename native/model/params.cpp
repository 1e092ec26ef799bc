#include "model/params.h"

#include "core/error.h"

namespace vg {

namespace {
constexpr int64_t kAlign = 16;  // elements (64 bytes of float)
std::string layer(int64_t i) { return "model.layers." + std::to_string(i) + "."; }
std::string block(int64_t i) { return "visual.blocks." + std::to_string(i) + "."; }
}  // namespace

void ParamLayout::add(const std::string& name, std::vector<int64_t> shape, bool vision) {
  ParamEntry e;
  e.name = name;
  e.numel = 1;
  for (int64_t d : shape) e.numel *= d;
  e.shape = std::move(shape);
  e.offset = total_;
  e.vision = vision;
  total_ += (e.numel + kAlign - 1) / kAlign * kAlign;
  index_[name] = entries_.size();
  entries_.push_back(std::move(e));
}

ParamLayout::ParamLayout(const ModelConfig& cfg) {
  cfg.validate();
  const TextConfig& t = cfg.text;
  const int64_t H = t.hidden, d = t.head_dim, qd = t.heads * d, kvd = t.kv_heads * d, I = t.intermediate;
  add("model.embed_tokens.weight", {t.vocab_size, H}, false);
  for (int64_t l = 0; l < t.layers; ++l) {
    const std::string p = layer(l);
    add(p + "input_layernorm.weight", {H}, false);
    add(p + "self_attn.q_proj.weight", {qd, H}, false);
    if (t.attention_bias) add(p + "self_attn.q_proj.bias", {qd}, false);
    add(p + "self_attn.k_proj.weight", {kvd, H}, false);
    if (t.attention_bias) add(p + "self_attn.k_proj.bias", {kvd}, false);
    add(p + "self_attn.v_proj.weight", {kvd, H}, false);
    if (t.attention_bias) add(p + "self_attn.v_proj.bias", {kvd}, false);
    add(p + "self_attn.o_proj.weight", {H, qd}, false);
    if (t.qk_norm) {
      add(p + "self_attn.q_norm.weight", {d}, false);
      add(p + "self_attn.k_norm.weight", {d}, false);
    }
    add(p + "post_attention_layernorm.weight", {H}, false);
    add(p + "mlp.gate_proj.weight", {I, H}, false);
    add(p + "mlp.up_proj.weight", {I, H}, false);
    add(p + "mlp.down_proj.weight", {H, I}, false);
  }
  add("model.norm.weight", {H}, false);
  if (!t.tie_word_embeddings) add("lm_head.weight", {t.vocab_size, H}, false);
  vision_begin_ = total_;
  if (!cfg.vision.present) return;
  const VisionConfig& v = cfg.vision;
  const int64_t D = v.hidden, Iv = v.intermediate, M = v.merged_dim();
  const bool q3 = v.kind == VisionKind::Qwen3;
  const bool ln = v.kind == VisionKind::Qwen2 || q3;
  add("visual.patch_embed.proj.weight", {D, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size}, true);
  if (q3) {
    add("visual.patch_embed.proj.bias", {D}, true);
    add("visual.pos_embed.weight", {v.num_position_embeddings, D}, true);
  }
  const std::string fc1 = q3 ? "mlp.linear_fc1" : "mlp.fc1", fc2 = q3 ? "mlp.linear_fc2" : "mlp.fc2";
  for (int64_t b = 0; b < v.depth; ++b) {
    const std::string p = block(b);
    add(p + "norm1.weight", {D}, true);
    if (ln) add(p + "norm1.bias", {D}, true);
    add(p + "norm2.weight", {D}, true);
    if (ln) add(p + "norm2.bias", {D}, true);
    add(p + "attn.qkv.weight", {3 * D, D}, true);
    add(p + "attn.qkv.bias", {3 * D}, true);
    add(p + "attn.proj.weight", {D, D}, true);
    add(p + "attn.proj.bias", {D}, true);
    if (ln) {
      add(p + fc1 + ".weight", {Iv, D}, true);
      add(p + fc1 + ".bias", {Iv}, true);
      add(p + fc2 + ".weight", {D, Iv}, true);
      add(p + fc2 + ".bias", {D}, true);
    } else {
      add(p + "mlp.gate_proj.weight", {Iv, D}, true);
      add(p + "mlp.gate_proj.bias", {Iv}, true);
      add(p + "mlp.up_proj.weight", {Iv, D}, true);
      add(p + "mlp.up_proj.bias", {Iv}, true);
      add(p + "mlp.down_proj.weight", {D, Iv}, true);
      add(p + "mlp.down_proj.bias", {D}, true);
    }
  }
  if (q3) {  // Qwen3VLVisionPatchMerger names; deepstack mergers normalise the concatenated [M] rows
    add("visual.merger.norm.weight", {D}, true);
    add("visual.merger.norm.bias", {D}, true);
    add("visual.merger.linear_fc1.weight", {M, M}, true);
    add("visual.merger.linear_fc1.bias", {M}, true);
    add("visual.merger.linear_fc2.weight", {v.out_hidden, M}, true);
    add("visual.merger.linear_fc2.bias", {v.out_hidden}, true);
    for (size_t i = 0; i < v.deepstack_indexes.size(); ++i) {
      const std::string p = "visual.deepstack_merger_list." + std::to_string(i) + ".";
      add(p + "norm.weight", {M}, true);
      add(p + "norm.bias", {M}, true);
      add(p + "linear_fc1.weight", {M, M}, true);
      add(p + "linear_fc1.bias", {M}, true);
      add(p + "linear_fc2.weight", {v.out_hidden, M}, true);
      add(p + "linear_fc2.bias", {v.out_hidden}, true);
    }
    return;
  }
  add("visual.merger.ln_q.weight", {D}, true);
  if (ln) add("visual.merger.ln_q.bias", {D}, true);
  add("visual.merger.mlp.0.weight", {M, M}, true);
  add("visual.merger.mlp.0.bias", {M}, true);
  add("visual.merger.mlp.2.weight", {v.out_hidden, M}, true);
  add("visual.merger.mlp.2.bias", {v.out_hidden}, true);
}

const ParamEntry& ParamLayout::find(const std::string& name) const {
  auto it = index_.find(name);
  VG_CHECK_ARG(it != index_.end(), "tensor '", name, "' is not a parameter of this model");
  return entries_[it->second];
}

template <typename T>
ModelView<T> make_view(const ModelConfig& cfg, const ParamLayout& L, T* base) {
  auto at = [&](const std::string& n) { return base + L.find(n).offset; };
  auto opt = [&](const std::string& n) -> T* { return L.contains(n) ? base + L.find(n).offset : nullptr; };
  ModelView<T> m;
  m.embed = at("model.embed_tokens.weight");
  for (int64_t l = 0; l < cfg.text.layers; ++l) {
    const std::string p = layer(l);
    DecoderLayerView<T> lv{};
    lv.input_norm = at(p + "input_layernorm.weight");
    lv.q_w = at(p + "self_attn.q_proj.weight");
    lv.q_b = opt(p + "self_attn.q_proj.bias");
    lv.k_w = at(p + "self_attn.k_proj.weight");
    lv.k_b = opt(p + "self_attn.k_proj.bias");
    lv.v_w = at(p + "self_attn.v_proj.weight");
    lv.v_b = opt(p + "self_attn.v_proj.bias");
    lv.o_w = at(p + "self_attn.o_proj.weight");
    lv.post_norm = at(p + "post_attention_layernorm.weight");
    lv.gate_w = at(p + "mlp.gate_proj.weight");
    lv.up_w = at(p + "mlp.up_proj.weight");
    lv.down_w = at(p + "mlp.down_proj.weight");
    lv.q_norm = opt(p + "self_attn.q_norm.weight");
    lv.k_norm = opt(p + "self_attn.k_norm.weight");
    m.layers.push_back(lv);
  }
  m.final_norm = at("model.norm.weight");
  m.lm_head = cfg.text.tie_word_embeddings ? m.embed : at("lm_head.weight");
  if (!cfg.vision.present) return m;
  m.patch_embed = at("visual.patch_embed.proj.weight");
  m.patch_embed_b = opt("visual.patch_embed.proj.bias");
  m.pos_embed = opt("visual.pos_embed.weight");
  for (int64_t b = 0; b < cfg.vision.depth; ++b) {
    const std::string p = block(b);
    VisionBlockView<T> v{};
    v.norm1_w = at(p + "norm1.weight");
    v.norm1_b = opt(p + "norm1.bias");
    v.norm2_w = at(p + "norm2.weight");
    v.norm2_b = opt(p + "norm2.bias");
    v.qkv_w = at(p + "attn.qkv.weight");
    v.qkv_b = at(p + "attn.qkv.bias");
    v.proj_w = at(p + "attn.proj.weight");
    v.proj_b = at(p + "attn.proj.bias");
    v.gate_w = opt(p + "mlp.gate_proj.weight");
    v.gate_b = opt(p + "mlp.gate_proj.bias");
    v.up_w = opt(p + "mlp.up_proj.weight");
    v.up_b = opt(p + "mlp.up_proj.bias");
    v.down_w = opt(p + "mlp.down_proj.weight");
    v.down_b = opt(p + "mlp.down_proj.bias");
    const std::string fc = cfg.vision.kind == VisionKind::Qwen3 ? "mlp.linear_fc" : "mlp.fc";
    v.fc1_w = opt(p + fc + "1.weight");
    v.fc1_b = opt(p + fc + "1.bias");
    v.fc2_w = opt(p + fc + "2.weight");
    v.fc2_b = opt(p + fc + "2.bias");
    m.blocks.push_back(v);
  }
  if (cfg.vision.kind == VisionKind::Qwen3) {
    auto merger = [&](const std::string& p) {
      return MergerView<T>{at(p + "norm.weight"), at(p + "norm.bias"), at(p + "linear_fc1.weight"),
                           at(p + "linear_fc1.bias"), at(p + "linear_fc2.weight"), at(p + "linear_fc2.bias")};
    };
    const MergerView<T> mm = merger("visual.merger.");
    m.merger_ln_w = mm.ln_w;
    m.merger_ln_b = mm.ln_b;
    m.merger_fc1_w = mm.fc1_w;
    m.merger_fc1_b = mm.fc1_b;
    m.merger_fc2_w = mm.fc2_w;
    m.merger_fc2_b = mm.fc2_b;
    for (size_t i = 0; i < cfg.vision.deepstack_indexes.size(); ++i)
      m.deepstack.push_back(merger("visual.deepstack_merger_list." + std::to_string(i) + "."));
    return m;
  }
  m.merger_ln_w = at("visual.merger.ln_q.weight");
  m.merger_ln_b = opt("visual.merger.ln_q.bias");
  m.merger_fc1_w = at("visual.merger.mlp.0.weight");
  m.merger_fc1_b = at("visual.merger.mlp.0.bias");
  m.merger_fc2_w = at("visual.merger.mlp.2.weight");
  m.merger_fc2_b = at("visual.merger.mlp.2.bias");
  return m;
}

template ModelView<float> make_view<float>(const ModelConfig&, const ParamLayout&, float*);
template ModelView<double> make_view<double>(const ModelConfig&, const ParamLayout&, double*);

}  // namespace vg
