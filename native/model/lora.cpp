#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "cpu/gemm.h"

namespace vg {

namespace {

constexpr uint32_t kDropoutTag = 0x4C6F5241u;  // 'LoRA': keeps these streams apart from the sampler's (words 2, 3 = 0)
constexpr uint32_t kInitTag = 0x4C6F5249u;     // 'LoRI'
constexpr int64_t kAlign = 16;                 // elements, as ParamLayout

const char* const kDecoderNames[kLoraDecoderSlots] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                      "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                      "mlp.down_proj"};
const char* const kVisionNames[kLoraVisionSlots] = {"attn.qkv",      "attn.proj", "mlp.gate_proj", "mlp.up_proj",
                                                    "mlp.down_proj", "mlp.fc1",   "mlp.fc2"};

// The field of a ModelView holding an adapted module's weight matrix.
template <typename T>
T** weight_field(ModelView<T>& v, const LoraModuleInfo& m) {
  if (m.group == LoraGroup::Decoder) {
    DecoderLayerView<T>& l = v.layers[m.index];
    T** f[kLoraDecoderSlots] = {&l.q_w, &l.k_w, &l.v_w, &l.o_w, &l.gate_w, &l.up_w, &l.down_w};
    return f[m.slot];
  }
  if (m.group == LoraGroup::Vision) {
    VisionBlockView<T>& b = v.blocks[m.index];
    T** f[kLoraVisionSlots] = {&b.qkv_w, &b.proj_w, &b.gate_w, &b.up_w, &b.down_w, &b.fc1_w, &b.fc2_w};
    return f[m.slot];
  }
  return m.slot == kLoraMerger0 ? &v.merger_fc1_w : &v.merger_fc2_w;
}

template <typename T>
void add_into(T* dst, const T* src, int64_t n) {
  parallel_for(0, n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

}  // namespace

double LoraSpec::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

std::vector<LoraModuleInfo> lora_adaptable_modules(const ModelConfig& cfg) {
  std::vector<LoraModuleInfo> out;
  const TextConfig& t = cfg.text;
  const int64_t H = t.hidden, qd = t.heads * t.head_dim, kvd = t.kv_heads * t.head_dim, I = t.intermediate;
  const int64_t dec_io[kLoraDecoderSlots][2] = {{H, qd}, {H, kvd}, {H, kvd}, {qd, H}, {H, I}, {H, I}, {I, H}};
  for (int64_t l = 0; l < t.layers; ++l)
    for (int s = 0; s < kLoraDecoderSlots; ++s) {
      LoraModuleInfo m;
      m.name = "model.layers." + std::to_string(l) + "." + kDecoderNames[s];
      m.in = dec_io[s][0];
      m.out = dec_io[s][1];
      m.group = LoraGroup::Decoder;
      m.index = l;
      m.slot = s;
      m.stream = static_cast<uint32_t>(l * 8 + s);
      out.push_back(m);
    }
  if (!cfg.vision.present) return out;
  const VisionConfig& v = cfg.vision;
  const int64_t D = v.hidden, Iv = v.intermediate, M = v.merged_dim();
  const int64_t vis_io[kLoraVisionSlots][2] = {{D, 3 * D}, {D, D}, {D, Iv}, {D, Iv}, {Iv, D}, {D, Iv}, {Iv, D}};
  const bool gated = v.kind == VisionKind::Qwen2_5;
  for (int64_t b = 0; b < v.depth; ++b)
    for (int s = 0; s < kLoraVisionSlots; ++s) {
      const bool is_gated_slot = s == kLoraVGate || s == kLoraVUp || s == kLoraVDown;
      const bool is_fc_slot = s == kLoraFc1 || s == kLoraFc2;
      if ((is_gated_slot && !gated) || (is_fc_slot && gated)) continue;
      LoraModuleInfo m;
      // Qwen3-VL names its block MLP linear_fc1 / linear_fc2 (same math as Qwen2-VL's fc1 / fc2).
      const bool q3_fc = v.kind == VisionKind::Qwen3 && is_fc_slot;
      m.name = "visual.blocks." + std::to_string(b) + "." + (q3_fc ? (s == kLoraFc1 ? "mlp.linear_fc1" : "mlp.linear_fc2") : kVisionNames[s]);
      m.in = vis_io[s][0];
      m.out = vis_io[s][1];
      m.group = LoraGroup::Vision;
      m.index = b;
      m.slot = s;
      m.stream = static_cast<uint32_t>((1u << 24) + b * 8 + s);
      out.push_back(m);
    }
  for (int s = 0; s < kLoraMergerSlots; ++s) {
    LoraModuleInfo m;
    if (v.kind == VisionKind::Qwen3) m.name = s == kLoraMerger0 ? "visual.merger.linear_fc1" : "visual.merger.linear_fc2";
    else m.name = s == kLoraMerger0 ? "visual.merger.mlp.0" : "visual.merger.mlp.2";
    m.in = M;
    m.out = s == kLoraMerger0 ? M : v.out_hidden;
    m.group = LoraGroup::Merger;
    m.slot = s;
    m.stream = static_cast<uint32_t>((1u << 25) + s);
    out.push_back(m);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// kernels

template <typename T>
void lora_dropout(const LoraRun& run, uint32_t stream, const T* x, T* out, int64_t count) {
  const double p = run.dropout;
  VG_CHECK_ARG(p >= 0 && p < 1, "LoRA dropout must be in [0, 1), got ", p);
  VG_CHECK_ARG(count >= 0 && count / 4 < (int64_t(1) << 32), "LoRA dropout: ", count,
               " elements exceed the 2^34 a stream can address");
  // keep iff a uniform 32-bit word >= p · 2^32 (P(keep) = 1 - p up to 2^-32).
  const double t = std::round(p * 4294967296.0);
  const uint64_t threshold = static_cast<uint64_t>(std::min(t, 4294967295.0));
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  const Philox4x32Key key = philox_key(run.seed);
  const int64_t blocks = (count + 3) / 4;
  parallel_for(0, blocks, 1024, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const Philox4x32Counter r = philox4x32_10({static_cast<uint32_t>(q), stream, run.call, kDropoutTag}, key);
      const int64_t e0 = q * 4, e1 = std::min(count, e0 + 4);
      for (int64_t e = e0; e < e1; ++e) out[e] = r[e - e0] >= threshold ? x[e] * keep_scale : T(0);
    }
  });
}

template <typename T>
void lora_forward(const LoraSite<T>* s, const LoraRun& run, const T* x, T* y, int64_t n, std::vector<T>* u) {
  if (!s || n == 0) return;
  const int64_t r = s->rank, in = s->in, out = s->out;
  std::vector<T> local, xd;
  std::vector<T>& U = u ? *u : local;
  U.resize(n * r);
  const T* xin = x;
  if (run.dropout > 0) {
    xd.resize(n * in);
    lora_dropout(run, s->stream, x, xd.data(), n * in);
    xin = xd.data();
  }
  gemm<T>(false, true, n, r, in, T(1), xin, in, s->A, in, T(0), U.data(), r);
  gemm<T>(false, true, n, out, r, s->scale, U.data(), r, s->B, r, T(1), y, out);
}

template <typename T>
void lora_backward(const LoraSite<T>* s, const LoraRun& run, const T* x, const T* u, const T* dy, T* dx, int64_t n) {
  if (!s || n == 0) return;
  const int64_t r = s->rank, in = s->in, out = s->out;
  std::vector<T> du(n * r), scratch;
  gemm<T>(false, false, n, r, out, s->scale, dy, out, s->B, r, T(0), du.data(), r);  // du = s · dy B
  if (s->gB) gemm<T>(true, false, out, r, n, s->scale, dy, out, u, r, T(1), s->gB, r);
  const bool drop = run.dropout > 0;
  if (s->gA) {
    const T* xin = x;
    if (drop) {
      scratch.resize(n * in);
      lora_dropout(run, s->stream, x, scratch.data(), n * in);
      xin = scratch.data();
    }
    gemm<T>(true, false, r, in, n, T(1), du.data(), r, xin, in, T(1), s->gA, in);
  }
  if (!dx) return;
  if (!drop) {
    gemm<T>(false, false, n, in, r, T(1), du.data(), r, s->A, in, T(1), dx, in);
    return;
  }
  scratch.resize(n * in);
  gemm<T>(false, false, n, in, r, T(1), du.data(), r, s->A, in, T(0), scratch.data(), in);
  lora_dropout(run, s->stream, scratch.data(), scratch.data(), n * in);
  add_into(dx, scratch.data(), n * in);
}

// ---------------------------------------------------------------------------------------------------------
// LoraAdapters

template <typename T>
LoraAdapters<T>::LoraAdapters(const ModelConfig& cfg, const LoraSpec& spec) : cfg_(cfg), spec_(spec) {
  cfg.validate();
  VG_CHECK_ARG(spec.rank >= 1, "LoRA: r must be >= 1, got ", spec.rank);
  VG_CHECK_ARG(std::isfinite(spec.alpha), "LoRA: alpha must be a finite number, got ", spec.alpha);
  VG_CHECK_ARG(spec.dropout >= 0 && spec.dropout < 1, "LoRA: dropout must be in [0, 1), got ", spec.dropout);
  VG_CHECK_ARG(!spec.modules.empty(), "LoRA: no modules to adapt");
  const std::vector<LoraModuleInfo> all = lora_adaptable_modules(cfg);
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < all.size(); ++i) index[all[i].name] = i;
  std::vector<bool> chosen(all.size(), false);
  for (const std::string& name : spec.modules) {
    auto it = index.find(name);
    VG_CHECK_ARG(it != index.end(), "LoRA: '", name, "' is not an adaptable linear layer of this model (adaptable: ",
                 all.front().name, ", ..., ", all.back().name, ")");
    VG_CHECK_ARG(!chosen[it->second], "LoRA: module '", name, "' is listed twice");
    chosen[it->second] = true;
  }
  int64_t total = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool vision) {
    ParamEntry e;
    e.name = name;
    e.numel = shape[0] * shape[1];
    e.shape = std::move(shape);
    e.offset = total;
    e.vision = vision;
    total += (e.numel + kAlign - 1) / kAlign * kAlign;
    entries_.push_back(std::move(e));
  };
  for (size_t i = 0; i < all.size(); ++i) {
    if (!chosen[i]) continue;
    const LoraModuleInfo& m = all[i];
    modules_.push_back(m);
    any_vision_ = any_vision_ || m.vision();
    add("base_model.model." + m.name + ".lora_A.weight", {spec.rank, m.in}, m.vision());
    add("base_model.model." + m.name + ".lora_B.weight", {m.out, spec.rank}, m.vision());
  }
  params_.assign(total, T(0));
  grads_.assign(total, T(0));
  for (size_t i = 0; i < modules_.size(); ++i) {
    LoraSite<T> s;
    s.A = params_.data() + entries_[2 * i].offset;
    s.B = params_.data() + entries_[2 * i + 1].offset;
    s.gA = grads_.data() + entries_[2 * i].offset;
    s.gB = grads_.data() + entries_[2 * i + 1].offset;
    s.rank = spec.rank;
    s.in = modules_[i].in;
    s.out = modules_[i].out;
    s.scale = static_cast<T>(spec.scale());
    s.stream = modules_[i].stream;
    sites_.push_back(s);
  }
  reset_parameters();
}

template <typename T>
void LoraAdapters<T>::reset_parameters() {
  std::fill(params_.begin(), params_.end(), T(0));
  const Philox4x32Key key = philox_key(spec_.seed);
  for (size_t i = 0; i < modules_.size(); ++i) {
    const ParamEntry& a = entries_[2 * i];
    const double bound = 1.0 / std::sqrt(static_cast<double>(modules_[i].in));
    const uint32_t stream = modules_[i].stream;
    T* A = params_.data() + a.offset;
    parallel_for(0, a.numel, 4096, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        const double u = uniform53(philox4x32_10(
            {static_cast<uint32_t>(e), static_cast<uint32_t>(static_cast<uint64_t>(e) >> 32), stream, kInitTag}, key));
        A[e] = static_cast<T>((2.0 * u - 1.0) * bound);
      }
    });
  }
}

template <typename T>
void LoraAdapters<T>::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
LoraView<T> LoraAdapters<T>::view(const LoraRun& run) const {
  LoraView<T> v;
  v.run = run;
  v.layers.assign(cfg_.text.layers, {});
  if (cfg_.vision.present) v.blocks.assign(cfg_.vision.depth, {});
  for (size_t i = 0; i < modules_.size(); ++i) {
    const LoraModuleInfo& m = modules_[i];
    if (m.group == LoraGroup::Decoder) v.layers[m.index][m.slot] = &sites_[i];
    else if (m.group == LoraGroup::Vision) v.blocks[m.index][m.slot] = &sites_[i];
    else v.merger[m.slot] = &sites_[i];
  }
  v.any_vision = any_vision_;
  return v;
}

template <typename T>
ModelView<T> LoraAdapters<T>::merged_view(const ModelView<T>& base, std::vector<T>& buffer) const {
  int64_t total = 0;
  for (const LoraModuleInfo& m : modules_) total += m.in * m.out;
  buffer.resize(total);
  ModelView<T> v = base;
  int64_t off = 0;
  for (size_t i = 0; i < modules_.size(); ++i) {
    const LoraModuleInfo& m = modules_[i];
    const LoraSite<T>& s = sites_[i];
    T** field = weight_field(v, m);
    T* dst = buffer.data() + off;
    std::copy(*field, *field + m.in * m.out, dst);
    gemm<T>(false, false, m.out, m.in, s.rank, s.scale, s.B, s.rank, s.A, m.in, T(1), dst, m.in);
    *field = dst;
    off += m.in * m.out;
  }
  return v;
}

template <typename T>
void LoraAdapters<T>::merge_into(const ParamLayout& layout, T* params) const {
  for (size_t i = 0; i < modules_.size(); ++i) {
    const LoraModuleInfo& m = modules_[i];
    const LoraSite<T>& s = sites_[i];
    const ParamEntry& e = layout.find(m.name + ".weight");
    VG_CHECK(e.numel == m.in * m.out, "LoRA merge: ", e.name, " has ", e.numel, " elements, expected ", m.out, " x ", m.in);
    gemm<T>(false, false, m.out, m.in, s.rank, s.scale, s.B, s.rank, s.A, m.in, T(1), params + e.offset, m.in);
  }
}

template void lora_dropout<float>(const LoraRun&, uint32_t, const float*, float*, int64_t);
template void lora_dropout<double>(const LoraRun&, uint32_t, const double*, double*, int64_t);
template void lora_forward<float>(const LoraSite<float>*, const LoraRun&, const float*, float*, int64_t,
                                  std::vector<float>*);
template void lora_forward<double>(const LoraSite<double>*, const LoraRun&, const double*, double*, int64_t,
                                   std::vector<double>*);
template void lora_backward<float>(const LoraSite<float>*, const LoraRun&, const float*, const float*, const float*,
                                   float*, int64_t);
template void lora_backward<double>(const LoraSite<double>*, const LoraRun&, const double*, const double*,
                                    const double*, double*, int64_t);
template class LoraAdapters<float>;
template class LoraAdapters<double>;

}  // namespace vg
