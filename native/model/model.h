// A Qwen2-VL / Qwen2.5-VL model: parameters in one buffer, the vision tower, the decoder and the LM head
// (chunked log-probs). One forward keeps what its backward needs; backward accumulates into `grads`
// (same layout as the parameters).
// LoRA mode (enable_lora): adapters in their own buffers (model/lora.h); the base weights are frozen: backward
// computes no base-weight gradient at all (no dW GEMMs, `grads` untouched) and accumulates the adapters'
// gradients instead. A forward with adapters = false is the base model (the KL reference, no extra memory).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/dtype_convert.h"
#include "model/config.h"
#include "model/decoder.h"
#include "model/grad_ready.h"
#include "model/lora.h"
#include "model/params.h"
#include "model/vision.h"

namespace vg {

// Where one parameter's data lives in a safetensors file.
struct TensorSource {
  std::string name;     // canonical hub name
  std::string file;     // absolute path
  DType dtype = DType::F32;
  uint64_t begin = 0;   // absolute byte offsets in the file
  uint64_t end = 0;
};

struct ForwardOptions {
  const int32_t* targets = nullptr;  // [N]; < 0 = no target (log-prob 0 there)
  bool want_logits = false;          // also materialise [N, V] logits
  bool want_entropy = false;
  bool recompute = false;            // gradient checkpointing of the decoder layers
  bool keep_for_backward = false;
  double temperature = 1.0;
  // LoRA mode: apply the adapters (false = the frozen base model). Adapter dropout is active only in forwards
  // with adapters and keep_for_backward (training forwards).
  bool adapters = true;
};

template <typename T>
struct ForwardResult {
  std::vector<T> logprobs;  // [N] (when targets)
  std::vector<T> entropy;   // [N] (when want_entropy)
  std::vector<T> logits;    // [N, V] (when want_logits)
  std::vector<T> image_embeds;  // vision tower output [image tokens + video tokens, H] (images' rows first)
};

template <typename T>
class Model {
 public:
  explicit Model(const ModelConfig& cfg);
  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  std::vector<T>& grads() { return grads_; }
  const ModelView<T>& view() const { return view_; }

  // Fills every parameter from its source (memory-mapped, converted); throws naming the tensor and file
  // when a source is missing, the wrong size, or outside its file. Tied LM heads need no source.
  void load(const std::vector<TensorSource>& sources);

  // Forward over a packed batch. vision may be null (text only).
  ForwardResult<T> forward(const PackedBatch& batch, const VisionInput* vision, const ForwardOptions& opt);
  // Backward of the last forward (which must have keep_for_backward): dL/dlogprobs [N] and optionally
  // dL/dentropy [N]. Allocates grads on first use and accumulates into them.
  // on_ready (optional, full fine-tuning only): called on this thread each time a range of `grads` is final for this
  // backward (model/grad_ready.h: every range of [0, total) exactly once), so data-parallel training can reduce it
  // while backward goes on; that range is never written again by this call.
  void backward(const T* dlogprobs, const T* dentropy, bool train_vision = true, const GradReadyFn& on_ready = {});
  // Base gradients (allocated on first use); in LoRA mode the adapters' gradients only (the base is frozen).
  void zero_grads();
  // Allocates the base gradient buffer (zeros) when it does not exist yet.
  void allocate_grads();
  bool has_pending_backward() const { return pending_; }

  // Adds LoRA adapters (replacing any existing ones; A initialised from spec.seed, B = 0) and freezes the base.
  void enable_lora(const LoraSpec& spec);
  // Drops the adapters: back to full fine-tuning of the base weights.
  void disable_lora();
  // The adapters (null when not in LoRA mode). Shared so that views of their buffers can outlive a replacement.
  const std::shared_ptr<LoraAdapters<T>>& lora() const { return lora_; }
  // Number of training forwards with adapter dropout so far (the dropout masks' call counter; reset by enable_lora).
  uint32_t lora_dropout_calls() const { return lora_calls_; }
  void set_lora_dropout_calls(uint32_t c) { lora_calls_ = c; }
  // A copy of the parameters with every adapted matrix merged: W + s B A (the base itself is not modified).
  std::vector<T> merged_params() const;

 private:
  ModelConfig cfg_;
  ParamLayout layout_;
  std::vector<T> params_, grads_;
  ModelView<T> view_, gview_;
  // Saved by forward for backward.
  bool pending_ = false;
  PackedBatch batch_{};
  std::vector<int32_t> ids_, positions_, cu_, targets_;
  std::vector<float> pixels_;
  std::vector<int32_t> pos_ids_, img_cu_, win_idx_, win_cu_;
  VisionInput vin_{};
  bool has_vision_ = false;
  DecoderActs<T> dacts_;
  VisionActs<T> vacts_;
  std::vector<T> lse_, entropy_;
  std::vector<T> dhidden_;  // reused between backward calls
  ForwardOptions opt_{};
  int64_t image_tokens_ = 0;  // image-pad + video-pad tokens of the pending forward
  std::shared_ptr<LoraAdapters<T>> lora_;
  uint32_t lora_calls_ = 0;
  bool pending_lora_ = false;  // the pending forward applied the adapters
  LoraView<T> lview_;          // ... with this dropout context
};

}  // namespace vg
