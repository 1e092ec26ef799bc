// NativeModel: a Qwen2-VL / Qwen2.5-VL model (native/model/model.h) owned by JS. Heavy calls (load, forward,
// backward, generate) run on the model's own native thread and return Promises. Parameter and gradient
// buffers are handed out as zero-copy Float32Array views that keep the native memory alive.
// LoRA (model/lora.h): enableLora/disableLora run on the model thread; loraParameters/loraGradients are zero-copy
// views that keep the adapters alive even after they are replaced.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "communicator_binding.h"
#include "model/generate.h"
#include "cpu/adamw.h"
#include "dist/grad_buckets.h"
#include "dist/zero.h"
#include "model/model.h"
#include "native_worker.h"

namespace vgb {
namespace {

using ModelF = vg::Model<float>;

vg::Activation parse_act(Napi::Env env, const std::string& s) {
  if (s == "silu") return vg::Activation::SiLU;
  if (s == "quick_gelu") return vg::Activation::QuickGELU;
  if (s == "gelu") return vg::Activation::GELU;
  if (s == "gelu_tanh") return vg::Activation::GELUTanh;
  throw_range(env, "vision.act must be one of silu, quick_gelu, gelu, gelu_tanh; got '" + s + "'");
}

vg::ModelConfig parse_config(const Napi::Object& o) {
  Napi::Env env = o.Env();
  vg::ModelConfig c;
  c.text.vocab_size = get_int(o, "vocabSize", NAN, 1, INT32_MAX);
  c.text.hidden = get_int(o, "hiddenSize", NAN, 1, INT32_MAX);
  c.text.layers = get_int(o, "numLayers", NAN, 1, 4096);
  c.text.heads = get_int(o, "numHeads", NAN, 1, 4096);
  c.text.kv_heads = get_int(o, "numKvHeads", NAN, 1, 4096);
  c.text.head_dim = get_int(o, "headDim", NAN, 2, 4096);
  c.text.intermediate = get_int(o, "intermediateSize", NAN, 1, INT32_MAX);
  c.text.rms_eps = get_number(o, "rmsNormEps");
  c.text.rope_theta = get_number(o, "ropeTheta");
  Napi::Value ms = o.Get("mropeSection");
  if (!ms.IsArray() || ms.As<Napi::Array>().Length() != 3) throw_type(env, "mropeSection must be an array of 3 integers");
  for (uint32_t i = 0; i < 3; ++i) c.text.mrope_section[i] = ms.As<Napi::Array>().Get(i).As<Napi::Number>().Int64Value();
  c.text.tie_word_embeddings = get_bool(o, "tieWordEmbeddings", false);
  c.text.mrope_interleaved = get_bool(o, "mropeInterleaved", false);
  c.text.attention_bias = get_bool(o, "attentionBias", true);
  c.text.qk_norm = get_bool(o, "qkNorm", false);
  c.image_token_id = get_int(o, "imageTokenId", NAN, 0, INT32_MAX);
  c.video_token_id = get_int(o, "videoTokenId", -1, -1, INT32_MAX);
  c.vision_start_token_id = get_int(o, "visionStartTokenId", -1, -1, INT32_MAX);
  c.vision_end_token_id = get_int(o, "visionEndTokenId", -1, -1, INT32_MAX);
  Napi::Value vv = o.Get("vision");
  if (!vv.IsObject()) throw_type(env, "vision must be an object");
  Napi::Object v = vv.As<Napi::Object>();
  vg::VisionConfig& vc = c.vision;
  const std::string kind = get_string(v, "kind");
  if (kind != "qwen2_5_vl" && kind != "qwen2_vl" && kind != "qwen3_vl")
    throw_range(env, "vision.kind must be qwen2_5_vl, qwen2_vl or qwen3_vl, got '" + kind + "'");
  vc.kind = kind == "qwen2_vl" ? vg::VisionKind::Qwen2 : kind == "qwen3_vl" ? vg::VisionKind::Qwen3 : vg::VisionKind::Qwen2_5;
  vc.depth = get_int(v, "depth", NAN, 1, 4096);
  vc.hidden = get_int(v, "hiddenSize", NAN, 1, INT32_MAX);
  vc.heads = get_int(v, "numHeads", NAN, 1, 4096);
  vc.head_dim = get_int(v, "headDim", NAN, 1, 4096);
  vc.intermediate = get_int(v, "intermediateSize", NAN, 1, INT32_MAX);
  vc.patch_size = get_int(v, "patchSize", NAN, 1, 4096);
  vc.temporal_patch_size = get_int(v, "temporalPatchSize", NAN, 1, 64);
  vc.merge_size = get_int(v, "mergeSize", NAN, 1, 64);
  vc.in_channels = get_int(v, "inChannels", NAN, 1, 64);
  vc.out_hidden = get_int(v, "outHiddenSize", NAN, 1, INT32_MAX);
  vc.act = parse_act(env, get_string(v, "act"));
  vc.eps = get_number(v, "eps");
  vc.window_size = get_int(v, "windowSize", 0, 0, INT32_MAX);
  Napi::Value fb = v.Get("fullAttBlocks");
  if (fb.IsArray()) {
    Napi::Array a = fb.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) vc.fullatt_blocks.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  }
  vc.num_position_embeddings = get_int(v, "numPositionEmbeddings", 0, 0, INT32_MAX);
  Napi::Value ds = v.Get("deepstackIndexes");
  if (ds.IsArray()) {
    Napi::Array a = ds.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsNumber()) throw_type(env, "vision.deepstackIndexes[" + std::to_string(i) + "] must be a number");
      vc.deepstack_indexes.push_back(a.Get(i).As<Napi::Number>().Int64Value());
    }
  }
  guard(env, [&] { c.validate(); });
  return c;
}

template <typename T>
std::vector<T> copy_array(const Napi::Object& o, const char* field, int64_t expected = -1, bool optional = false) {
  auto v = get_array<T>(o, field, expected, optional);
  return std::vector<T>(v.data, v.data + v.length);
}

// A Float32Array that owns `data` (moved in); V8 is told about the memory.
Napi::Float32Array owned_f32(Napi::Env env, std::vector<float>&& data) {
  auto* holder = new std::vector<float>(std::move(data));
  const size_t bytes = holder->size() * sizeof(float);
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
  auto buf = Napi::ArrayBuffer::New(env, holder->data(), bytes, [bytes](Napi::Env e, void*, std::vector<float>* h) {
    Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(bytes));
    delete h;
  }, holder);
  return Napi::Float32Array::New(env, holder->size(), buf, 0);
}

Napi::Int32Array owned_i32(Napi::Env env, const std::vector<int32_t>& data) {
  auto a = Napi::Int32Array::New(env, data.size());
  std::copy(data.begin(), data.end(), a.Data());
  return a;
}

// Inputs of one forward call, copied out of JS memory so the job can run after the call returns.
struct ForwardJob {
  std::vector<int32_t> ids, positions, cu, targets;
  std::vector<float> pixels;
  std::vector<int32_t> pos_ids, img_cu, win, win_cu;
  int64_t num_images = 0, num_windows = 0, num_patches = 0;
  vg::ForwardOptions opt;
  bool has_targets = false, has_vision = false;

  // Views of the copied inputs for the native calls (valid while the job lives).
  vg::PackedBatch batch() const {
    vg::PackedBatch b;
    b.num_tokens = static_cast<int64_t>(ids.size());
    b.num_seqs = static_cast<int64_t>(cu.size()) - 1;
    b.input_ids = ids.data();
    b.positions = positions.data();
    b.cu_seqlens = cu.data();
    return b;
  }
  vg::VisionInput vision() const {
    vg::VisionInput v;
    if (!has_vision) return v;
    v.num_patches = num_patches;
    v.pixel_values = pixels.data();
    v.pos_ids = pos_ids.data();
    v.num_images = num_images;
    v.cu_seqlens = img_cu.data();
    if (!win.empty()) {
      v.window_index = win.data();
      v.num_windows = num_windows;
      v.cu_window_seqlens = win_cu.data();
    }
    return v;
  }
};

ForwardJob read_forward(const Napi::Object& o, const vg::ModelConfig& cfg) {
  ForwardJob j;
  j.ids = copy_array<int32_t>(o, "inputIds");
  const int64_t N = static_cast<int64_t>(j.ids.size());
  if (N == 0) throw_range(o.Env(), "inputIds is empty");
  j.positions = copy_array<int32_t>(o, "positions", 3 * N);
  j.cu = copy_array<int32_t>(o, "cuSeqlens");
  if (j.cu.size() < 2) throw_range(o.Env(), "cuSeqlens needs at least 2 entries");
  j.targets = copy_array<int32_t>(o, "targets", N, true);
  j.has_targets = !j.targets.empty();
  j.opt.want_logits = get_bool(o, "returnLogits", false);
  j.opt.want_entropy = get_bool(o, "returnEntropy", false);
  j.opt.keep_for_backward = get_bool(o, "keepForBackward", false);
  j.opt.recompute = get_bool(o, "recompute", false);
  j.opt.temperature = get_number(o, "temperature", 1.0);
  j.opt.adapters = get_bool(o, "adapters", true);
  Napi::Value vv = o.Get("vision");
  if (vv.IsObject()) {
    Napi::Object v = vv.As<Napi::Object>();
    j.has_vision = true;
    j.num_patches = get_int(v, "numPatches", NAN, 1, INT32_MAX);
    j.pixels = copy_array<float>(v, "pixelValues", j.num_patches * cfg.vision.patch_dim());
    j.pos_ids = copy_array<int32_t>(v, "posIds", 2 * j.num_patches);
    j.img_cu = copy_array<int32_t>(v, "cuSeqlens");
    j.num_images = static_cast<int64_t>(j.img_cu.size()) - 1;
    j.win = copy_array<int32_t>(v, "windowIndex", -1, true);
    j.win_cu = copy_array<int32_t>(v, "cuWindowSeqlens", -1, true);
    j.num_windows = j.win_cu.empty() ? 0 : static_cast<int64_t>(j.win_cu.size()) - 1;
    const bool windowed = cfg.vision.kind == vg::VisionKind::Qwen2_5;
    if (windowed && (j.win.empty() || j.win_cu.empty()))
      throw_type(o.Env(), "vision.windowIndex and vision.cuWindowSeqlens are required for Qwen2.5-VL");
  }
  return j;
}

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod<&NativeModel::Load>("load"), InstanceMethod<&NativeModel::Forward>("forward"),
                        InstanceMethod<&NativeModel::Backward>("backward"),
                        InstanceMethod<&NativeModel::Generate>("generate"),
                        InstanceMethod<&NativeModel::ZeroGrads>("zeroGrads"),
                        InstanceMethod<&NativeModel::Parameters>("parameters"),
                        InstanceMethod<&NativeModel::Gradients>("gradients"),
                        InstanceMethod<&NativeModel::Layout>("layout"),
                        InstanceMethod<&NativeModel::EnableLora>("enableLora"),
                        InstanceMethod<&NativeModel::DisableLora>("disableLora"),
                        InstanceMethod<&NativeModel::HasLora>("hasLora"),
                        InstanceMethod<&NativeModel::LoraParameters>("loraParameters"),
                        InstanceMethod<&NativeModel::OptimizerStep>("optimizerStep"),
                        InstanceMethod<&NativeModel::GradSquaredSum>("gradSquaredSum"),
                        InstanceMethod<&NativeModel::ReduceGradients>("reduceGradients"),
                        InstanceMethod<&NativeModel::LoraGradients>("loraGradients"),
                        InstanceMethod<&NativeModel::LoraLayout>("loraLayout"),
                        InstanceMethod<&NativeModel::MergedParameters>("mergedParameters"),
                        InstanceMethod<&NativeModel::Dispose>("dispose")});
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = arg_object(info, "new NativeModel");
    vg::ModelConfig cfg = parse_config(o);
    guard(env, [&] { model_ = std::make_shared<ModelF>(cfg); });
    bytes_ = static_cast<int64_t>(model_->params().size() * sizeof(float));
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes_);
    worker_ = std::make_unique<NativeWorker>(env, "vlm-grpo model");
  }

  ~NativeModel() override {
    if (worker_) worker_->shutdown();
  }

 private:
  std::shared_ptr<ModelF> live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "this model has been disposed; load it again");
    return model_;
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsArray()) throw_type(env, "load(sources) expects an array of tensor sources");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<vg::TensorSource> sources;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Object s = a.Get(i).As<Napi::Object>();
      vg::TensorSource t;
      t.name = get_string(s, "name");
      t.file = get_string(s, "file");
      guard(env, [&] { t.dtype = vg::dtype_from_string(get_string(s, "dtype")); });
      t.begin = static_cast<uint64_t>(get_number(s, "begin"));
      t.end = static_cast<uint64_t>(get_number(s, "end"));
      sources.push_back(std::move(t));
    }
    return worker_->submit(env, [m, sources = std::move(sources)]() -> NativeWorker::Finisher {
      m->load(sources);
      return nullptr;
    });
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    auto job = std::make_shared<ForwardJob>(read_forward(arg_object(info, "forward"), m->config()));
    return worker_->submit(env, [m, job]() -> NativeWorker::Finisher {
      const vg::PackedBatch b = job->batch();
      const vg::VisionInput vin = job->vision();
      job->opt.targets = job->has_targets ? job->targets.data() : nullptr;
      auto r = std::make_shared<vg::ForwardResult<float>>(m->forward(b, job->has_vision ? &vin : nullptr, job->opt));
      return [r](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        if (!r->logprobs.empty()) out.Set("logprobs", owned_f32(env, std::move(r->logprobs)));
        if (!r->entropy.empty()) out.Set("entropy", owned_f32(env, std::move(r->entropy)));
        if (!r->logits.empty()) out.Set("logits", owned_f32(env, std::move(r->logits)));
        if (!r->image_embeds.empty()) out.Set("imageEmbeds", owned_f32(env, std::move(r->image_embeds)));
        return out;
      };
    });
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object o = arg_object(info, "backward");
    auto dl = std::make_shared<std::vector<float>>(copy_array<float>(o, "gradLogprobs"));
    auto de = std::make_shared<std::vector<float>>(copy_array<float>(o, "gradEntropy", -1, true));
    const bool train_vision = get_bool(o, "trainVision", true);
    Napi::Value ov = o.Get("overlapWith");
    if (!ov.IsUndefined()) {
      if (!ov.IsObject()) throw_type(env, "overlapWith must be an object { communicator, begin, end, bucketBytes, op, counts? }");
      return reduce_buckets(env, m, ov.As<Napi::Object>(), "overlapWith", [m, dl, de, train_vision](const vg::GradReadyFn& ready) {
        m->backward(dl->data(), de->empty() ? nullptr : de->data(), train_vision, ready);
      });
    }
    return worker_->submit(env, [m, dl, de, train_vision]() -> NativeWorker::Finisher {
      m->backward(dl->data(), de->empty() ? nullptr : de->data(), train_vision);
      return nullptr;
    });
  }

  // Bucketed gradient collectives (dist/grad_buckets.h) over [begin, end) of the gradient buffer, on the communicator's
  // thread. `body` runs on the model thread and reports final ranges (a backward); without one everything is final at
  // once (reduceGradients). Spec: { communicator, begin, end, bucketBytes, op: 'allReduce' | 'reduceScatter', counts }
  // (counts: the ZeRO shard sizes of [begin, end), rank order, for reduceScatter). The plan follows the backward order
  // (model/grad_ready.h), so the collectives, and therefore the bits, are the same with or without a backward.
  // Resolves to { buckets, overlapped } (overlapped: buckets whose collective started before backward finished) only
  // when backward AND every bucket collective have finished.
  using Body = std::function<void(const vg::GradReadyFn&)>;
  Napi::Value reduce_buckets(Napi::Env env, const std::shared_ptr<ModelF>& m, const Napi::Object& s, const std::string& field,
                             Body body) {
    const std::string f = field + ".";
    if (m->lora())
      throw_range(env, field + ": LoRA adapters' gradients are not in the gradient buffer; reduce them with the "
                  "communicator after backward (overlap is for full fine-tuning)");
    Napi::Value comm = s.Get("communicator");
    const CommunicatorInfo ci = communicator_info(env, comm, (f + "communicator").c_str());
    if (ci.backend != "gloo")
      throw_range(env, field + ": bucketed reduction needs host-memory collectives (the gloo backend); this communicator is " + ci.backend);
    const int64_t total = static_cast<int64_t>(m->params().size());
    const int64_t begin = get_int(s, "begin", 0, 0, total), end = get_int(s, "end", static_cast<double>(total), begin, total);
    const double bytes = get_number(s, "bucketBytes");
    if (!(bytes >= 4) || bytes > 9e15) throw_range(env, f + "bucketBytes must be a number >= 4, got " + std::to_string(bytes));
    const std::string op = get_string(s, "op");
    if (op != "allReduce" && op != "reduceScatter") throw_range(env, f + "op must be 'allReduce' or 'reduceScatter', got '" + op + "'");
    std::vector<int64_t> counts;
    if (op == "reduceScatter") {
      Napi::Value cv = s.Get("counts");
      if (!cv.IsArray()) throw_type(env, f + "counts must be an array of " + std::to_string(ci.world) + " shard sizes");
      Napi::Array a = cv.As<Napi::Array>();
      if (static_cast<int>(a.Length()) != ci.world)
        throw_range(env, f + "counts has " + std::to_string(a.Length()) + " entries, expected worldSize=" + std::to_string(ci.world));
      for (uint32_t i = 0; i < a.Length(); ++i) {
        if (!a.Get(i).IsNumber()) throw_type(env, f + "counts[" + std::to_string(i) + "] must be a number");
        counts.push_back(a.Get(i).As<Napi::Number>().Int64Value());
      }
    }
    if (m->grads().empty()) m->allocate_grads();  // as gradients() does: the buffer must exist before the plan
    std::shared_ptr<vg::dist::BucketReducer> red;
    guard(env, [&] {
      std::vector<vg::dist::Range> units;
      for (const vg::GradRange& r : vg::GradReadyOrder(m->config(), m->layout()).order()) units.push_back({r.begin, r.end});
      auto plan = vg::dist::plan_buckets(units, begin, end, std::max<int64_t>(1, static_cast<int64_t>(bytes / sizeof(float))));
      red = std::make_shared<vg::dist::BucketReducer>(m->grads().data(), begin, end, std::move(plan),
                                                       op == "allReduce" ? vg::dist::BucketOp::AllReduce
                                                                         : vg::dist::BucketOp::ReduceScatter,
                                                       counts);
    });
    // The communicator's side: its Promise is not returned (failures surface through red->wait() below); the model
    // is captured so its gradient buffer outlives a collective still running after a failed backward.
    run_on_communicator(env, comm, (f + "communicator").c_str(), [red, m](vg::dist::Communicator& c) { red->run(c); });
    auto keep = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(comm));
    // Failures are reported through the finisher so that `keep` is always released on the JS thread.
    return worker_->submit(env, [m, red, body, keep]() -> NativeWorker::Finisher {
      std::string err;
      bool range = false;
      try {
        try {
          if (body) body([&red](int64_t b, int64_t e) { red->mark_ready(b, e); });
          else red->mark_all_ready();
          red->finish_reporting();
        } catch (const std::exception& e) {
          red->abort(std::string("backward failed on this rank: ") + e.what());
          throw;
        }
        red->wait();  // throws the collective's error (or a missing report)
      } catch (const vg::ArgumentError& e) {
        err = e.what();
        range = true;
      } catch (const std::exception& e) {
        err = e.what();
      }
      const double n = static_cast<double>(red->buckets().size()), early = static_cast<double>(red->issued_before_finish());
      return [keep, n, early, err, range](Napi::Env env) -> Napi::Value {
        keep->Reset();
        if (!err.empty()) {
          if (range) throw Napi::RangeError::New(env, err);
          throw Napi::Error::New(env, err);
        }
        Napi::Object out = Napi::Object::New(env);
        out.Set("buckets", n);
        out.Set("overlapped", early);
        return out;
      };
    });
  }

  // reduceGradients(spec) -> Promise<{ buckets, overlapped: 0 }>: the bucketed collectives of backward's overlapWith
  // without a backward (a rank with no micro-batch this step, or overlap turned off), ordered after queued backward passes.
  Napi::Value ReduceGradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    return reduce_buckets(env, m, arg_object(info, "reduceGradients"), "reduceGradients", nullptr);
  }

  Napi::Value Generate(const Napi::CallbackInfo& info);

  Napi::Value ZeroGrads(const Napi::CallbackInfo& info) {
    live(info.Env())->zero_grads();
    return info.Env().Undefined();
  }

  // A Float32Array over native memory that keeps the model alive while the view exists.
  Napi::Value view_of(Napi::Env env, std::vector<float>& v) {
    auto keep = new std::shared_ptr<ModelF>(live(env));
    auto buf = Napi::ArrayBuffer::New(env, v.data(), v.size() * sizeof(float),
                                      [](Napi::Env, void*, std::shared_ptr<ModelF>* k) { delete k; }, keep);
    return Napi::Float32Array::New(env, v.size(), buf, 0);
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) { return view_of(info.Env(), live(info.Env())->params()); }

  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    if (m->grads().empty()) m->allocate_grads();
    return view_of(info.Env(), m->grads());
  }

  static Napi::Array layout_array(Napi::Env env, const std::vector<vg::ParamEntry>& entries) {
    Napi::Array a = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", e.name);
      Napi::Array shape = Napi::Array::New(env, e.shape.size());
      for (size_t k = 0; k < e.shape.size(); ++k) shape.Set(static_cast<uint32_t>(k), static_cast<double>(e.shape[k]));
      o.Set("shape", shape);
      o.Set("offset", static_cast<double>(e.offset));
      o.Set("numel", static_cast<double>(e.numel));
      o.Set("vision", e.vision);
      a.Set(static_cast<uint32_t>(i), o);
    }
    return a;
  }

  Napi::Value Layout(const Napi::CallbackInfo& info) { return layout_array(info.Env(), live(info.Env())->layout().entries()); }

  // ---- LoRA

  // { r, alpha, dropout, rsLora, seed, modules: string[] } -> Promise<void>; replaces any existing adapters.
  Napi::Value EnableLora(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object o = arg_object(info, "enableLora");
    vg::LoraSpec spec;
    spec.rank = get_int(o, "r", NAN, 1, 1 << 20);
    spec.alpha = get_number(o, "alpha");
    spec.dropout = get_number(o, "dropout", 0.0);
    spec.rslora = get_bool(o, "rsLora", false);
    const double seed = get_number(o, "seed", 0);
    if (seed < 0 || seed > 9007199254740991.0 || seed != std::floor(seed))
      throw_range(env, "seed must be an integer in [0, 2^53), got " + std::to_string(seed));
    spec.seed = static_cast<uint64_t>(seed);
    Napi::Value mods = o.Get("modules");
    if (!mods.IsArray()) throw_type(env, "modules must be an array of module names");
    Napi::Array ma = mods.As<Napi::Array>();
    for (uint32_t i = 0; i < ma.Length(); ++i) {
      Napi::Value v = ma.Get(i);
      if (!v.IsString()) throw_type(env, "modules[" + std::to_string(i) + "] must be a string");
      spec.modules.push_back(v.As<Napi::String>().Utf8Value());
    }
    return worker_->submit(env, [m, spec]() -> NativeWorker::Finisher {
      m->enable_lora(spec);
      return nullptr;
    });
  }

  Napi::Value DisableLora(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    return worker_->submit(info.Env(), [m]() -> NativeWorker::Finisher {
      m->disable_lora();
      return nullptr;
    });
  }

  Napi::Value HasLora(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), live(info.Env())->lora() != nullptr);
  }

  std::shared_ptr<vg::LoraAdapters<float>> live_lora(Napi::Env env) {
    auto l = live(env)->lora();
    if (!l) throw Napi::Error::New(env, "this model has no LoRA adapters; call enableLora first");
    return l;
  }

  // A Float32Array over an adapter buffer that keeps those adapters alive while the view exists.
  Napi::Value lora_view_of(Napi::Env env, const std::shared_ptr<vg::LoraAdapters<float>>& l, std::vector<float>& v) {
    auto keep = new std::shared_ptr<vg::LoraAdapters<float>>(l);
    auto buf = Napi::ArrayBuffer::New(env, v.data(), v.size() * sizeof(float),
                                      [](Napi::Env, void*, std::shared_ptr<vg::LoraAdapters<float>>* k) { delete k; }, keep);
    return Napi::Float32Array::New(env, v.size(), buf, 0);
  }

  // optimizerStep({ target: 'params' | 'lora', begin?, end?, expAvg, expAvgSq, step, lr, beta1, beta2, eps,
  //   weightDecay, maxGradNorm }) -> Promise<{ gradNorm, skipped }>: global grad-norm clipping, then AdamW, over
  // [begin, end) of the model's own parameter (or adapter) buffer, on the model thread. The moment arrays are
  // JS-owned; references keep them alive until the step resolves (the caller must not touch them meanwhile).
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object o = arg_object(info, "optimizerStep");
    const std::string target = get_string(o, "target", "params");
    if (target != "params" && target != "lora") throw_range(env, "target must be 'params' or 'lora', got '" + target + "'");
    std::shared_ptr<vg::LoraAdapters<float>> lora;
    int64_t total;
    if (target == "lora") {
      lora = live_lora(env);
      total = static_cast<int64_t>(lora->params().size());
    } else {
      total = static_cast<int64_t>(m->params().size());
      if (m->grads().empty()) m->zero_grads();
    }
    const int64_t begin = get_int(o, "begin", 0, 0, total), end = get_int(o, "end", static_cast<double>(total), begin, total);
    auto ea = get_array<float>(o, "expAvg", end - begin);
    auto eas = get_array<float>(o, "expAvgSq", end - begin);
    vg::AdamWConfig cfg;
    cfg.step = get_int(o, "step", NAN, 1, INT64_MAX / 2);
    cfg.lr = get_number(o, "lr");
    cfg.beta1 = get_number(o, "beta1", 0.9);
    cfg.beta2 = get_number(o, "beta2", 0.999);
    cfg.eps = get_number(o, "eps", 1e-8);
    cfg.weight_decay = get_number(o, "weightDecay", 0.0);
    const double max_norm = get_number(o, "maxGradNorm", 0.0);
    // gradNorm: the pre-clip global norm measured by the caller across ranks (ZeRO). NaN/inf are allowed: they skip.
    Napi::Value gnv = o.Get("gradNorm");
    const bool has_norm = !gnv.IsUndefined() && !gnv.IsNull();
    double given_norm = 0;
    if (has_norm) {
      if (!gnv.IsNumber()) throw_type(env, "gradNorm must be a number");
      given_norm = gnv.As<Napi::Number>().DoubleValue();
      if (given_norm < 0) throw_range(env, "gradNorm must be >= 0 (a norm), got " + std::to_string(given_norm));
    }
    // Keep the moment arrays alive while the job runs; released on the JS thread in the finisher.
    auto refs = std::make_shared<std::vector<Napi::ObjectReference>>();
    refs->push_back(Napi::Persistent(o.Get("expAvg").As<Napi::Object>()));
    refs->push_back(Napi::Persistent(o.Get("expAvgSq").As<Napi::Object>()));
    float* exp_avg = ea.data;
    float* exp_avg_sq = eas.data;
    auto result = std::make_shared<vg::ClipGradNormResult>();
    return worker_->submit(env, [m, lora, begin, end, exp_avg, exp_avg_sq, cfg, max_norm, has_norm, given_norm, refs,
                                 result]() -> NativeWorker::Finisher {
      float* params = (lora ? lora->params().data() : m->params().data()) + begin;
      float* grads = (lora ? lora->grads().data() : m->grads().data()) + begin;
      const int64_t n = end - begin;
      float* bufs[1] = {grads};
      const int64_t lens[1] = {n};
      // With a caller-measured global norm, clip with clip_grad_norm's exact formula (dist/zero.h) without measuring.
      *result = has_norm ? vg::dist::clip_with_norm(grads, n, given_norm, max_norm > 0 ? max_norm : INFINITY)
                         : vg::clip_grad_norm<float>(bufs, lens, 1, max_norm > 0 ? max_norm : INFINITY);
      const bool skip = !std::isfinite(result->total_norm);  // never apply a NaN/inf update
      if (!skip) vg::adamw_step<float>(params, grads, exp_avg, exp_avg_sq, n, cfg);
      return [refs, result, skip](Napi::Env env) -> Napi::Value {
        refs->clear();
        Napi::Object out = Napi::Object::New(env);
        out.Set("gradNorm", result->total_norm);
        out.Set("skipped", skip);
        return out;
      };
    });
  }

  // gradSquaredSum({ target: 'params' | 'lora', begin?, end? }) -> Promise<number>: Σ g² over [begin, end) of the
  // gradient (or adapter-gradient) buffer in double, thread-count independent (dist/zero.h squared_norm), on the
  // model thread (ordered after queued backward passes). ZeRO sums it over ranks for the global gradient norm.
  Napi::Value GradSquaredSum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object o = info.Length() >= 1 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    const std::string target = get_string(o, "target", "params");
    if (target != "params" && target != "lora") throw_range(env, "target must be 'params' or 'lora', got '" + target + "'");
    std::shared_ptr<vg::LoraAdapters<float>> lora;
    int64_t total;
    if (target == "lora") {
      lora = live_lora(env);
      total = static_cast<int64_t>(lora->params().size());
    } else {
      total = static_cast<int64_t>(m->params().size());
    }
    const int64_t begin = get_int(o, "begin", 0, 0, total), end = get_int(o, "end", static_cast<double>(total), begin, total);
    return worker_->submit(env, [m, lora, begin, end]() -> NativeWorker::Finisher {
      const std::vector<float>& g = lora ? lora->grads() : m->grads();
      // No gradient buffer yet (nothing accumulated): the sum is 0.
      const double s = g.empty() ? 0.0 : vg::dist::squared_norm(g.data() + begin, end - begin);
      return [s](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, s); };
    });
  }

  Napi::Value LoraParameters(const Napi::CallbackInfo& info) {
    auto l = live_lora(info.Env());
    return lora_view_of(info.Env(), l, l->params());
  }

  Napi::Value LoraGradients(const Napi::CallbackInfo& info) {
    auto l = live_lora(info.Env());
    return lora_view_of(info.Env(), l, l->grads());
  }

  // Tensors (PEFT key names) of the adapter buffer, plus the adapted modules and the scale.
  Napi::Value LoraLayout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto l = live_lora(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("tensors", layout_array(env, l->entries()));
    Napi::Array mods = Napi::Array::New(env, l->modules().size());
    for (size_t i = 0; i < l->modules().size(); ++i) {
      const auto& m = l->modules()[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("name", m.name);
      x.Set("inFeatures", static_cast<double>(m.in));
      x.Set("outFeatures", static_cast<double>(m.out));
      x.Set("vision", m.vision());
      mods.Set(static_cast<uint32_t>(i), x);
    }
    o.Set("modules", mods);
    o.Set("scale", l->scale());
    o.Set("total", static_cast<double>(l->params().size()));
    return o;
  }

  // A copy of the parameters with the adapters merged (W + s B A), computed on the model thread.
  Napi::Value MergedParameters(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    return worker_->submit(info.Env(), [m]() -> NativeWorker::Finisher {
      auto merged = std::make_shared<std::vector<float>>(m->merged_params());
      return [merged](Napi::Env env) -> Napi::Value { return owned_f32(env, std::move(*merged)); };
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (worker_) worker_->shutdown();  // finishes queued jobs first
    if (model_) {
      Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -bytes_);
      model_.reset();  // freed now, or when the last parameter view is collected
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelF> model_;
  std::unique_ptr<NativeWorker> worker_;
  int64_t bytes_ = 0;
};

}  // namespace
}  // namespace vgb

namespace vgb {
namespace {

Napi::Value NativeModel::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = live(env);
  Napi::Object o = arg_object(info, "generate");
  auto job = std::make_shared<ForwardJob>(read_forward(o, m->config()));
  const int64_t B = static_cast<int64_t>(job->cu.size()) - 1;
  auto deltas = std::make_shared<std::vector<int32_t>>(copy_array<int32_t>(o, "ropeDeltas", B));
  auto opt = std::make_shared<vg::GenerateOptions>();
  opt->max_new_tokens = get_int(o, "maxNewTokens", NAN, 1, 1 << 20);
  opt->num_samples = get_int(o, "numSamples", 1, 1, 1 << 16);
  const double seed = get_number(o, "seed", 0);
  if (seed < 0 || seed > 9007199254740991.0 || seed != std::floor(seed))
    throw_range(env, "seed must be an integer in [0, 2^53), got " + std::to_string(seed));
  opt->sampling.seed = static_cast<uint64_t>(seed);
  opt->sampling.temperature = get_number(o, "temperature", 1.0);
  opt->sampling.top_k = get_int(o, "topK", 0, 0, INT32_MAX);
  opt->sampling.top_p = get_number(o, "topP", 1.0);
  opt->sampling.min_p = get_number(o, "minP", 0.0);
  if (opt->sampling.temperature < 0) throw_range(env, "temperature must be >= 0 (0 = greedy)");
  if (!(opt->sampling.top_p > 0 && opt->sampling.top_p <= 1)) throw_range(env, "topP must be in (0, 1]");
  if (!(opt->sampling.min_p >= 0 && opt->sampling.min_p <= 1)) throw_range(env, "minP must be in [0, 1]");
  opt->stop_ids = copy_array<int32_t>(o, "stopIds", -1, true);
  opt->banned_ids = copy_array<int32_t>(o, "bannedIds", -1, true);
  opt->sequence_id_base = static_cast<uint32_t>(get_int(o, "sequenceIdBase", 0, 0, UINT32_MAX));
  opt->adapters = get_bool(o, "adapters", true);
  opt->merge_adapters = get_bool(o, "mergeAdapters", true);
  return worker_->submit(env, [m, job, deltas, opt]() -> NativeWorker::Finisher {
    const vg::PackedBatch b = job->batch();
    const vg::VisionInput vin = job->vision();
    auto seqs = std::make_shared<std::vector<vg::GeneratedSequence>>(
        vg::generate(*m, b, deltas->data(), job->has_vision ? &vin : nullptr, *opt));
    return [seqs](Napi::Env env) -> Napi::Value {
      Napi::Array a = Napi::Array::New(env, seqs->size());
      for (size_t i = 0; i < seqs->size(); ++i) {
        auto& s = (*seqs)[i];
        Napi::Object r = Napi::Object::New(env);
        r.Set("prompt", static_cast<double>(s.prompt));
        r.Set("tokens", owned_i32(env, s.tokens));
        r.Set("logprobs", owned_f32(env, std::move(s.logprobs)));
        r.Set("stopped", s.stopped);
        a.Set(static_cast<uint32_t>(i), r);
      }
      return a;
    };
  });
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) { exports.Set("NativeModel", NativeModel::Define(env)); }

}  // namespace vgb
