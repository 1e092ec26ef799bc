#include "model/grad_ready.h"

#include <string>

#include "core/error.h"

namespace vg {

GradReadyOrder::GradReadyOrder(const ModelConfig& cfg, const ParamLayout& L) {
  const int64_t layers = cfg.text.layers;
  for (int64_t l = 0; l < layers; ++l)
    layer_begin_.push_back(L.find("model.layers." + std::to_string(l) + ".input_layernorm.weight").offset);
  vision_begin_ = L.vision_begin();
  total_ = L.total();
  lm_head_begin_ = L.contains("lm_head.weight") ? L.find("lm_head.weight").offset : vision_begin_;
  layer_begin_.push_back(lm_head_begin_);  // layer L-1 ends where the LM head (or the vision tower) starts
  if (!cfg.vision.present) return;
  const bool q3 = cfg.vision.kind == VisionKind::Qwen3;
  for (int64_t b = 0; b < cfg.vision.depth; ++b)
    block_begin_.push_back(L.find("visual.blocks." + std::to_string(b) + ".norm1.weight").offset);
  block_begin_.push_back(L.find(q3 ? "visual.merger.norm.weight" : "visual.merger.ln_q.weight").offset);
  for (size_t i = 0; q3 && i < cfg.vision.deepstack_indexes.size(); ++i) {
    ds_begin_.push_back(L.find("visual.deepstack_merger_list." + std::to_string(i) + ".norm.weight").offset);
    ds_block_.push_back(cfg.vision.deepstack_indexes[i]);
  }
  merger_end_ = ds_begin_.empty() ? total_ : ds_begin_.front();
  ds_begin_.push_back(total_);
}

GradRange GradReadyOrder::lm_head() const { return {lm_head_begin_, vision_begin_}; }

GradRange GradReadyOrder::decoder_layer(int64_t l) const {
  VG_CHECK_ARG(l >= 0 && l + 1 < static_cast<int64_t>(layer_begin_.size()), "decoder_layer: layer ", l, " of ",
               layer_begin_.size() - 1);
  return {layer_begin_[l], layer_begin_[l + 1]};
}

GradRange GradReadyOrder::embed() const { return {0, layer_begin_.front()}; }

std::vector<GradRange> GradReadyOrder::vision_block(int64_t b) const {
  const int64_t depth = static_cast<int64_t>(block_begin_.size()) - 1;
  VG_CHECK_ARG(b >= 0 && b < depth, "vision_block: block ", b, " of ", depth);
  std::vector<GradRange> r{{block_begin_[b], block_begin_[b + 1]}};
  if (b == depth - 1) r.push_back({block_begin_[depth], merger_end_});
  for (size_t i = 0; i < ds_block_.size(); ++i)
    if (ds_block_[i] == b) r.push_back({ds_begin_[i], ds_begin_[i + 1]});
  return r;
}

GradRange GradReadyOrder::vision_stem() const {
  return {vision_begin_, block_begin_.empty() ? total_ : block_begin_.front()};
}

GradRange GradReadyOrder::vision() const { return {vision_begin_, total_}; }

std::vector<GradRange> GradReadyOrder::order() const {
  std::vector<GradRange> o;
  auto add = [&](GradRange r) {
    if (r.end > r.begin) o.push_back(r);
  };
  add(lm_head());
  for (int64_t l = static_cast<int64_t>(layer_begin_.size()) - 2; l >= 0; --l) add(decoder_layer(l));
  add(embed());
  for (int64_t b = static_cast<int64_t>(block_begin_.size()) - 2; b >= 0; --b)
    for (const GradRange& r : vision_block(b)) add(r);
  if (!block_begin_.empty()) add(vision_stem());
  return o;
}

}  // namespace vg
