#include "model/model.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "cpu/gemm.h"
#include "cpu/logprob.h"
#include "io/mapped_file.h"

namespace vg {

template <typename T>
Model<T>::Model(const ModelConfig& cfg) : cfg_(cfg), layout_(cfg) {
  params_.assign(layout_.total(), T(0));
  view_ = make_view(cfg_, layout_, params_.data());
}

template <typename T>
void Model<T>::load(const std::vector<TensorSource>& sources) {
  std::map<std::string, std::unique_ptr<MappedFile>> files;
  std::vector<bool> seen(layout_.entries().size(), false);
  for (const TensorSource& s : sources) {
    VG_CHECK_ARG(layout_.contains(s.name), "tensor '", s.name, "' in ", s.file, " is not a parameter of this model");
    const ParamEntry& e = layout_.find(s.name);
    const uint64_t want = static_cast<uint64_t>(e.numel) * dtype_size(s.dtype);
    VG_CHECK_ARG(s.end >= s.begin && s.end - s.begin == want, "tensor '", s.name, "' in ", s.file, " has ",
                 s.end - s.begin, " bytes, expected ", want, " for its shape");
    auto& f = files[s.file];
    if (!f) f = std::make_unique<MappedFile>(s.file);
    VG_CHECK_ARG(s.end <= f->size(), "tensor '", s.name, "' ends at byte ", s.end, " but ", s.file, " has only ",
                 f->size(), " bytes (truncated file?)");
    convert_to<T>(f->data() + s.begin, s.dtype, e.numel, params_.data() + e.offset);
    seen[&e - layout_.entries().data()] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    VG_CHECK_ARG(seen[i], "no data was given for parameter '", layout_.entries()[i].name, "'");
}

template <typename T>
void Model<T>::enable_lora(const LoraSpec& spec) {
  auto fresh = std::make_shared<LoraAdapters<T>>(cfg_, spec);  // validates before anything changes
  lora_ = std::move(fresh);
  lora_calls_ = 0;
  pending_ = false;  // a pending backward would mix the old and the new adapters
  dacts_ = DecoderActs<T>();
  vacts_ = VisionActs<T>();
}

template <typename T>
void Model<T>::disable_lora() {
  lora_.reset();
  pending_ = false;
  dacts_ = DecoderActs<T>();
  vacts_ = VisionActs<T>();
}

template <typename T>
std::vector<T> Model<T>::merged_params() const {
  std::vector<T> out = params_;
  if (lora_) lora_->merge_into(layout_, out.data());
  return out;
}

template <typename T>
void Model<T>::allocate_grads() {
  if (grads_.size() == params_.size()) return;
  grads_.assign(params_.size(), T(0));
  gview_ = make_view(cfg_, layout_, grads_.data());
}

template <typename T>
void Model<T>::zero_grads() {
  if (lora_) {
    lora_->zero_grads();
    return;
  }
  if (grads_.size() != params_.size()) {
    grads_.assign(params_.size(), T(0));
    gview_ = make_view(cfg_, layout_, grads_.data());
  } else {
    std::fill(grads_.begin(), grads_.end(), T(0));
  }
}

template <typename T>
ForwardResult<T> Model<T>::forward(const PackedBatch& b, const VisionInput* vision, const ForwardOptions& opt) {
  ForwardResult<T> r;
  const int64_t N = b.num_tokens, H = cfg_.text.hidden, V = cfg_.text.vocab_size;
  // Own copies of the inputs so backward can run after the caller's buffers are gone.
  ids_.assign(b.input_ids, b.input_ids + N);
  positions_.assign(b.positions, b.positions + 3 * N);
  cu_.assign(b.cu_seqlens, b.cu_seqlens + b.num_seqs + 1);
  batch_ = b;
  batch_.input_ids = ids_.data();
  batch_.positions = positions_.data();
  batch_.cu_seqlens = cu_.data();
  // Vision pads: the tower's output rows are the images' tokens, then the videos' (decoder.h).
  const int64_t image_pads = std::count(ids_.begin(), ids_.end(), static_cast<int32_t>(cfg_.image_token_id));
  const int64_t video_pads = std::count(ids_.begin(), ids_.end(), static_cast<int32_t>(cfg_.video_token_id));
  image_tokens_ = image_pads + video_pads;
  // Adapters: dropout only in training forwards (those kept for a backward), each with its own mask call id.
  pending_lora_ = lora_ && opt.adapters;
  lview_ = LoraView<T>();
  if (pending_lora_) {
    LoraRun run;
    if (opt.keep_for_backward && lora_->spec().dropout > 0) {
      run.dropout = lora_->spec().dropout;
      run.seed = lora_->spec().seed;
      run.call = lora_calls_++;
    }
    lview_ = lora_->view(run);
  }
  const LoraView<T>* lv = pending_lora_ ? &lview_ : nullptr;
  has_vision_ = vision != nullptr && vision->num_patches > 0;
  if (has_vision_) {
    const int64_t unit = cfg_.vision.merge_size * cfg_.vision.merge_size;
    VG_CHECK_ARG(vision->num_patches / unit == image_tokens_, "forward: the images and videos give ",
                 vision->num_patches / unit, " vision tokens but the input ids hold ", image_tokens_, " (", image_pads,
                 " image-pad + ", video_pads, " video-pad tokens)");
    vin_ = *vision;
    pixels_.assign(vision->pixel_values, vision->pixel_values + vision->num_patches * cfg_.vision.patch_dim());
    pos_ids_.assign(vision->pos_ids, vision->pos_ids + 2 * vision->num_patches);
    img_cu_.assign(vision->cu_seqlens, vision->cu_seqlens + vision->num_images + 1);
    vin_.pixel_values = pixels_.data();
    vin_.pos_ids = pos_ids_.data();
    vin_.cu_seqlens = img_cu_.data();
    if (vision->window_index) {
      win_idx_.assign(vision->window_index, vision->window_index + vision->num_patches / unit);
      win_cu_.assign(vision->cu_window_seqlens, vision->cu_window_seqlens + vision->num_windows + 1);
      vin_.window_index = win_idx_.data();
      vin_.cu_window_seqlens = win_cu_.data();
    }
    r.image_embeds.resize(image_tokens_ * H);
    vision_forward(cfg_, view_, vin_, vacts_, r.image_embeds.data(), lv);
  } else {
    VG_CHECK_ARG(image_tokens_ == 0, "forward: the input ids hold ", image_pads, " image-pad and ", video_pads,
                 " video-pad tokens but no image or video was given");
  }
  dacts_.recompute = opt.recompute;
  DeepstackInput<T> deepstack;  // Qwen3-VL: features of intermediate vision blocks, added after the first layers
  if (has_vision_)
    for (const std::vector<T>& f : vacts_.deepstack_out) deepstack.push_back(f.data());
  decoder_forward(cfg_, view_, batch_, has_vision_ ? r.image_embeds.data() : nullptr, dacts_, lv, &deepstack);
  if (opt.targets) {
    targets_.assign(opt.targets, opt.targets + N);
    r.logprobs.resize(N);
    lse_.resize(N);
    entropy_.resize(opt.want_entropy ? N : 0);
    logprob_forward(dacts_.hidden.data(), view_.lm_head, targets_.data(), r.logprobs.data(),
                    opt.want_entropy ? entropy_.data() : static_cast<T*>(nullptr), lse_.data(), N, H, V, opt.temperature);
    if (opt.want_entropy) r.entropy = entropy_;
  }
  if (opt.want_logits) {
    r.logits.resize(N * V);
    gemm<T>(false, true, N, V, H, T(1), dacts_.hidden.data(), H, view_.lm_head, H, T(0), r.logits.data(), V);
  }
  opt_ = opt;
  pending_ = opt.keep_for_backward && opt.targets;
  if (!opt.keep_for_backward) {
    // Keep the decoder buffers (their capacity is reused by the next forward); drop the vision ones.
    vacts_ = VisionActs<T>();
  } else if (pending_lora_ && !lora_->any_vision()) {
    vacts_ = VisionActs<T>();  // frozen vision tower without adapters: its backward never runs
  }
  return r;
}

template <typename T>
void Model<T>::backward(const T* dlogprobs, const T* dentropy, bool train_vision, const GradReadyFn& on_ready) {
  VG_CHECK(pending_, "backward: call forward with targets and keep_for_backward first");
  VG_CHECK_ARG(!on_ready || !lora_, "backward: gradient-ready reports cover the base gradient buffer, which LoRA mode "
               "does not train (overlapping the adapters' reduction is not supported; reduce them after backward)");
  VG_CHECK_ARG(!lora_ || pending_lora_, "backward: the base weights are frozen in LoRA mode and the forward ran with "
               "adapters disabled, so there is nothing to train; run the forward with adapters enabled");
  pending_ = false;
  const bool lora_mode = lora_ != nullptr;
  // LoRA mode: a view of null gradient pointers, so no base-weight gradient is computed (no dW GEMMs).
  ModelView<T> frozen;
  if (lora_mode) {
    frozen.layers.resize(cfg_.text.layers);
    frozen.blocks.resize(cfg_.vision.present ? cfg_.vision.depth : 0);
  } else if (grads_.size() != params_.size()) {
    zero_grads();
  }
  const ModelView<T>& g = lora_mode ? frozen : gview_;
  const LoraView<T>* lv = lora_mode ? &lview_ : nullptr;
  const int64_t N = batch_.num_tokens, H = cfg_.text.hidden, V = cfg_.text.vocab_size;
  std::vector<T>& dhidden = dhidden_;
  dhidden.resize(N * H);
  VG_CHECK_ARG(!dentropy || opt_.want_entropy, "backward: entropy gradients need a forward with entropy");
  logprob_backward(dacts_.hidden.data(), view_.lm_head, targets_.data(), lse_.data(), dlogprobs, dentropy,
                   dentropy ? entropy_.data() : static_cast<const T*>(nullptr), dhidden.data(), g.lm_head, N, H, V,
                   opt_.temperature);
  // Gradient-ready reports in backward order (grad_ready.h); the hooks are cleared on every exit path.
  const std::unique_ptr<GradReadyOrder> order = on_ready ? std::make_unique<GradReadyOrder>(cfg_, layout_) : nullptr;
  auto report = [&](GradRange r) {
    if (on_ready && r.end > r.begin) on_ready(r.begin, r.end);
  };
  struct ClearHooks {
    DecoderActs<T>& d;
    VisionActs<T>& v;
    ~ClearHooks() { d.on_layer_grads = nullptr; v.on_block_grads = nullptr; }
  } clear_hooks{dacts_, vacts_};
  if (order) {
    report(order->lm_head());
    dacts_.on_layer_grads = [&](int64_t l) { report(order->decoder_layer(l)); };
    vacts_.on_block_grads = [&](int64_t b) {
      for (const GradRange& r : order->vision_block(b)) report(r);
    };
  }
  // The vision tower needs a backward only when something in it trains.
  const bool vision_grads = has_vision_ && train_vision && (!lora_mode || lora_->any_vision());
  std::vector<T> dimg(vision_grads ? image_tokens_ * H : 0);
  std::vector<std::vector<T>> ddeep;  // Qwen3-VL deepstack gradients (empty otherwise)
  decoder_backward(cfg_, view_, g, batch_, dacts_, dhidden, vision_grads ? dimg.data() : static_cast<T*>(nullptr), lv,
                   vision_grads ? &ddeep : nullptr);
  if (order) report(order->embed());
  if (vision_grads) vision_backward(cfg_, view_, g, vin_, vacts_, dimg.data(), lv, &ddeep);
  if (order) report(vision_grads ? order->vision_stem() : order->vision());
  vacts_ = VisionActs<T>();  // the decoder buffers are kept: the next step reuses their capacity
}

template class Model<float>;
template class Model<double>;

}  // namespace vg
