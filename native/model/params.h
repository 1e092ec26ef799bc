// One contiguous buffer for all parameters, with named views (llm.c style). Gradients and optimizer
// moments use the same layout, so sharding, clipping, checkpointing and export are loops over one array.
// Names are the Hugging Face hub names (model.*, visual.*, lm_head.weight).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/config.h"

namespace vg {

struct ParamEntry {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in elements from the start of the buffer (64-byte aligned)
  int64_t numel = 0;
  bool vision = false;  // part of the vision tower (visual.*), for freezing
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& cfg);
  const std::vector<ParamEntry>& entries() const { return entries_; }
  int64_t total() const { return total_; }
  // Element range [begin, end) holding the vision tower's parameters (contiguous, at the end).
  int64_t vision_begin() const { return vision_begin_; }
  // Throws vg::ArgumentError naming the tensor when it is not part of this model.
  const ParamEntry& find(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

 private:
  void add(const std::string& name, std::vector<int64_t> shape, bool vision);
  std::vector<ParamEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  int64_t total_ = 0;
  int64_t vision_begin_ = 0;
};

template <typename T>
struct DecoderLayerView {
  T *input_norm, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *post_norm, *gate_w, *up_w, *down_w;
  T* q_norm = nullptr;  // Qwen3-VL per-head RMSNorm weights [head_dim] (null otherwise; q/k/v biases are then null)
  T* k_norm = nullptr;
};

template <typename T>
struct VisionBlockView {
  T *norm1_w, *norm1_b, *norm2_w, *norm2_b;  // *_b only for LayerNorm (Qwen2-VL), else null
  T *qkv_w, *qkv_b, *proj_w, *proj_b;
  T *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;  // Qwen2.5-VL gated MLP (else null)
  T *fc1_w, *fc1_b, *fc2_w, *fc2_b;                    // Qwen2-VL MLP (else null)
};

// A patch merger: LayerNorm (over D per patch, or over the 4 concatenated patches for a postshuffle-norm merger)
// -> fc1 -> GELU -> fc2. Qwen3-VL's deepstack mergers are postshuffle.
template <typename T>
struct MergerView {
  T *ln_w = nullptr, *ln_b = nullptr, *fc1_w = nullptr, *fc1_b = nullptr, *fc2_w = nullptr, *fc2_b = nullptr;
};

template <typename T>
struct ModelView {
  T* embed = nullptr;
  std::vector<DecoderLayerView<T>> layers;
  T* final_norm = nullptr;
  T* lm_head = nullptr;  // == embed when tied
  T* patch_embed = nullptr;
  std::vector<VisionBlockView<T>> blocks;
  T *merger_ln_w = nullptr, *merger_ln_b = nullptr, *merger_fc1_w = nullptr, *merger_fc1_b = nullptr,
    *merger_fc2_w = nullptr, *merger_fc2_b = nullptr;
  // Qwen3-VL (null / empty otherwise): patch-embed bias [D], learned position table [num_position_embeddings, D],
  // one merger per deepstack_indexes entry. A gradient view may leave them empty (frozen).
  T* patch_embed_b = nullptr;
  T* pos_embed = nullptr;
  std::vector<MergerView<T>> deepstack;
};

// Pointers into `base` (a buffer of layout.total() elements) for every named parameter.
template <typename T>
ModelView<T> make_view(const ModelConfig& cfg, const ParamLayout& layout, T* base);

}  // namespace vg
