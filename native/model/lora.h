// LoRA adapters (Hu et al. 2021) for the Qwen2-VL / Qwen2.5-VL model, in PEFT's formulation. An adapted linear
// layer W [out, in] (bias b) computes
//   y = x W^T + b + s · (drop(x) A^T) B^T,   A [r, in], B [out, r],   s = alpha / r   (rsLoRA: alpha / sqrt(r))
// where drop is inverted dropout (kept elements scaled by 1 / (1 - p)) on the adapter's input only, active in
// training forwards only. Initialisation as PEFT: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
// B = 0, so a fresh adapter leaves the model unchanged.
//
// Adaptable layers (hub module names): model.layers.{l}.self_attn.{q,k,v,o}_proj, model.layers.{l}.mlp.{gate,up,
// down}_proj, visual.blocks.{b}.attn.{qkv,proj}, visual.blocks.{b}.mlp.{gate,up,down}_proj (Qwen2.5-VL) or
// .mlp.{fc1,fc2} (Qwen2-VL), visual.merger.mlp.{0,2}. Which of them are adapted is decided by the caller
// (TypeScript applies PEFT's target_modules rule) and handed over as a list of module names.
//
// The adapters' parameters live in their own contiguous buffer (names = PEFT keys:
// base_model.model.<module>.lora_A.weight / .lora_B.weight), with a gradient buffer of the same layout, so an
// optimizer runs over the adapters only. Modules are laid out in the model's order (decoder, then vision),
// A before B, each tensor 64-byte aligned.
//
// Dropout masks come from Philox4x32-10 (core/rng.h): element e (row-major over the adapter input [n, in]) of
// stream `site` in forward call `call` is kept iff word (e mod 4) of philox((e / 4, site, call, 'LoRA'), seed)
// >= p · 2^32. The mask is a pure function of those numbers, so it is the same on any thread count and is
// recomputed (not stored) for the backward and for gradient-checkpointing recomputes.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace vg {

// Linear layers of a decoder layer, a vision block and the merger, as adapter slots.
enum LoraDecoderSlot { kLoraQ, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kLoraDecoderSlots };
enum LoraVisionSlot { kLoraQkv, kLoraProj, kLoraVGate, kLoraVUp, kLoraVDown, kLoraFc1, kLoraFc2, kLoraVisionSlots };
enum LoraMergerSlot { kLoraMerger0, kLoraMerger2, kLoraMergerSlots };
enum class LoraGroup { Decoder, Vision, Merger };

// One adaptable linear layer of a model.
struct LoraModuleInfo {
  std::string name;        // hub module name, e.g. model.layers.0.self_attn.q_proj
  int64_t in = 0, out = 0;
  LoraGroup group = LoraGroup::Decoder;
  int64_t index = 0;       // decoder layer / vision block (0 for the merger)
  int slot = 0;            // LoraDecoderSlot / LoraVisionSlot / LoraMergerSlot
  uint32_t stream = 0;     // Philox stream id (dropout and initialisation), unique per module of the model
  bool vision() const { return group != LoraGroup::Decoder; }
};

// Every linear layer of `cfg` that can carry an adapter, in model order (decoder layers, then vision blocks, then
// the merger).
std::vector<LoraModuleInfo> lora_adaptable_modules(const ModelConfig& cfg);

struct LoraSpec {
  int64_t rank = 8;
  double alpha = 8;
  double dropout = 0;      // in [0, 1)
  bool rslora = false;     // s = alpha / sqrt(r) instead of alpha / r
  uint64_t seed = 0;       // initialisation of A and the dropout masks
  std::vector<std::string> modules;  // hub module names to adapt (any order; must be adaptable, no duplicates)
  double scale() const;
};

// The dropout context of one forward (and its backward): dropout == 0 means no dropout.
struct LoraRun {
  double dropout = 0;
  uint64_t seed = 0;
  uint32_t call = 0;
};

// One adapted layer: pointers into the adapters' parameter and gradient buffers.
template <typename T>
struct LoraSite {
  const T* A = nullptr;  // [rank, in]
  const T* B = nullptr;  // [out, rank]
  T* gA = nullptr;       // gradients, accumulated (+=); null = not computed
  T* gB = nullptr;
  int64_t rank = 0, in = 0, out = 0;
  T scale = T(0);
  uint32_t stream = 0;
};

// Which sites a forward applies (null slot = layer not adapted), with the dropout context.
template <typename T>
struct LoraView {
  LoraRun run;
  std::vector<std::array<const LoraSite<T>*, kLoraDecoderSlots>> layers;
  std::vector<std::array<const LoraSite<T>*, kLoraVisionSlots>> blocks;
  std::array<const LoraSite<T>*, kLoraMergerSlots> merger{};
  bool any_vision = false;
  const LoraSite<T>* layer(int64_t l, int slot) const { return layers.empty() ? nullptr : layers[l][slot]; }
  const LoraSite<T>* block(int64_t b, int slot) const { return blocks.empty() ? nullptr : blocks[b][slot]; }
};

// Adapter forward on an already computed y = x W^T + b [n, out]: y += s · drop(x) A^T B^T. When `u` is given it
// receives drop(x) A^T [n, rank] for the backward. No-op when site is null.
template <typename T>
void lora_forward(const LoraSite<T>* site, const LoraRun& run, const T* x, T* y, int64_t n, std::vector<T>* u);

// Adapter backward given x [n, in] (the layer input), u from the forward and dy [n, out]:
//   gB += s · dy^T u;   du = s · dy B;   gA += du^T drop(x);   dx += drop'(du A)   (dx accumulated, may be null)
// drop' multiplies by the same mask / (1 - p). No-op when site is null.
template <typename T>
void lora_backward(const LoraSite<T>* site, const LoraRun& run, const T* x, const T* u, const T* dy, T* dx, int64_t n);

// out[e] = keep(e) ? x[e] / (1 - p) : 0 for e in [0, count) of stream `stream` (out may alias x).
template <typename T>
void lora_dropout(const LoraRun& run, uint32_t stream, const T* x, T* out, int64_t count);

// The adapters of one model: spec, module list, parameter and gradient buffers with PEFT-named entries.
template <typename T>
class LoraAdapters {
 public:
  // Validates the spec against the model (rank >= 1, alpha finite, 0 <= dropout < 1, modules adaptable and
  // unique, at least one), allocates the buffers and initialises them (reset_parameters()).
  LoraAdapters(const ModelConfig& cfg, const LoraSpec& spec);
  LoraAdapters(const LoraAdapters&) = delete;  // the sites point into this object's buffers
  LoraAdapters& operator=(const LoraAdapters&) = delete;
  const LoraSpec& spec() const { return spec_; }
  double scale() const { return spec_.scale(); }
  // Adapted modules in buffer order, and the tensors: name (PEFT key), shape, offset, numel, vision.
  const std::vector<LoraModuleInfo>& modules() const { return modules_; }
  const std::vector<ParamEntry>& entries() const { return entries_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  std::vector<T>& grads() { return grads_; }
  bool any_vision() const { return any_vision_; }

  // A = U(-1/sqrt(in), 1/sqrt(in)) from Philox(seed) (counter: element, module stream, 0, 'LoRI'), B = 0.
  void reset_parameters();
  void zero_grads();
  // The sites for a forward with this dropout context.
  LoraView<T> view(const LoraRun& run) const;
  // `base` with every adapted matrix replaced by W + s B A, computed into `buffer` (resized; the base is not
  // modified, so nothing drifts).
  ModelView<T> merged_view(const ModelView<T>& base, std::vector<T>& buffer) const;
  // Adds s B A to every adapted matrix of a full parameter buffer laid out as `layout` (a copy of the base).
  void merge_into(const ParamLayout& layout, T* params) const;

 private:
  ModelConfig cfg_;
  LoraSpec spec_;
  std::vector<LoraModuleInfo> modules_;
  std::vector<ParamEntry> entries_;
  std::vector<T> params_, grads_;
  std::vector<LoraSite<T>> sites_;  // one per module, pointing into params_ / grads_
  bool any_vision_ = false;
};

}  // namespace vg
