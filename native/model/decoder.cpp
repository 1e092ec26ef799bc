#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activations.h"
#include "cpu/attention.h"
#include "cpu/linear.h"
#include "cpu/norms.h"
#include "cpu/rope.h"

namespace vg {

template <typename T>
void LayerActs<T>::keep_only_kv() {
  for (auto* v : {&x_in, &rstd1, &xn1, &q, &attn, &lse, &x_mid, &rstd2, &xn2, &gate, &up, &act, &q_raw, &k_raw, &rstd_q,
                  &rstd_k}) {
    v->clear();
    v->shrink_to_fit();
  }
  for (auto& u : lora_u) std::vector<T>().swap(u);
}

template <typename T>
void LayerActs<T>::clear_all_but_input() {
  for (auto* v : {&rstd1, &xn1, &q, &k, &v, &attn, &lse, &x_mid, &rstd2, &xn2, &gate, &up, &act, &q_raw, &k_raw, &rstd_q,
                  &rstd_k}) {
    v->clear();
    v->shrink_to_fit();
  }
  for (auto& u : lora_u) std::vector<T>().swap(u);
}

namespace {

AttentionDims text_attention_dims(const TextConfig& t, const PackedBatch& b) {
  AttentionDims d;
  d.batch = b.num_seqs;
  d.total_q = d.total_k = b.num_tokens;
  d.num_heads = t.heads;
  d.num_kv_heads = t.kv_heads;
  d.head_dim = t.head_dim;
  d.causal = true;
  d.scale = AttentionDims::default_scale(t.head_dim);
  return d;
}

// One layer forward from a.x_in, filling every other field of `a`; returns the layer output in `out`.
// lo: this layer's adapter sites (null slots = not adapted), run: the dropout context.
template <typename T>
void layer_forward(const ModelConfig& cfg, const DecoderLayerView<T>& w, const PackedBatch& b, const DecoderActs<T>& acts,
                   LayerActs<T>& a, std::vector<T>& out, const std::array<const LoraSite<T>*, kLoraDecoderSlots>& lo,
                   const LoraRun& run) {
  const TextConfig& t = cfg.text;
  const int64_t N = b.num_tokens, H = t.hidden, d = t.head_dim, qd = t.heads * d, kvd = t.kv_heads * d,
                I = t.intermediate;
  a.rstd1.resize(N);
  a.xn1.resize(N * H);
  rms_norm_forward(a.x_in.data(), w.input_norm, a.xn1.data(), a.rstd1.data(), N, H, t.rms_eps);
  a.q.resize(N * qd);
  a.k.resize(N * kvd);
  a.v.resize(N * kvd);
  linear_forward(a.xn1.data(), w.q_w, w.q_b, a.q.data(), N, H, qd);
  linear_forward(a.xn1.data(), w.k_w, w.k_b, a.k.data(), N, H, kvd);
  linear_forward(a.xn1.data(), w.v_w, w.v_b, a.v.data(), N, H, kvd);
  lora_forward(lo[kLoraQ], run, a.xn1.data(), a.q.data(), N, &a.lora_u[kLoraQ]);
  lora_forward(lo[kLoraK], run, a.xn1.data(), a.k.data(), N, &a.lora_u[kLoraK]);
  lora_forward(lo[kLoraV], run, a.xn1.data(), a.v.data(), N, &a.lora_u[kLoraV]);
  if (w.q_norm) {  // Qwen3-VL: RMSNorm over each head's d values (keeps the projections for the backward)
    a.q_raw.swap(a.q);
    a.k_raw.swap(a.k);
    a.q.resize(N * qd);
    a.k.resize(N * kvd);
    a.rstd_q.resize(N * t.heads);
    a.rstd_k.resize(N * t.kv_heads);
    rms_norm_forward(a.q_raw.data(), w.q_norm, a.q.data(), a.rstd_q.data(), N * t.heads, d, t.rms_eps);
    rms_norm_forward(a.k_raw.data(), w.k_norm, a.k.data(), a.rstd_k.data(), N * t.kv_heads, d, t.rms_eps);
  }
  rope_apply(a.q.data(), a.q.data(), N, t.heads, d, acts.cos.data(), acts.sin.data(), false);
  rope_apply(a.k.data(), a.k.data(), N, t.kv_heads, d, acts.cos.data(), acts.sin.data(), false);
  a.attn.resize(N * qd);
  a.lse.resize(t.heads * N);
  AttentionDims dims = text_attention_dims(t, b);
  attention_forward(dims, a.q.data(), a.k.data(), a.v.data(), b.cu_seqlens, b.cu_seqlens, a.attn.data(), a.lse.data());
  a.x_mid.resize(N * H);
  linear_forward<T>(a.attn.data(), w.o_w, nullptr, a.x_mid.data(), N, qd, H);
  lora_forward(lo[kLoraO], run, a.attn.data(), a.x_mid.data(), N, &a.lora_u[kLoraO]);
  parallel_for(0, N * H, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a.x_mid[i] += a.x_in[i];
  });
  a.rstd2.resize(N);
  a.xn2.resize(N * H);
  rms_norm_forward(a.x_mid.data(), w.post_norm, a.xn2.data(), a.rstd2.data(), N, H, t.rms_eps);
  a.gate.resize(N * I);
  a.up.resize(N * I);
  a.act.resize(N * I);
  linear_forward<T>(a.xn2.data(), w.gate_w, nullptr, a.gate.data(), N, H, I);
  linear_forward<T>(a.xn2.data(), w.up_w, nullptr, a.up.data(), N, H, I);
  lora_forward(lo[kLoraGate], run, a.xn2.data(), a.gate.data(), N, &a.lora_u[kLoraGate]);
  lora_forward(lo[kLoraUp], run, a.xn2.data(), a.up.data(), N, &a.lora_u[kLoraUp]);
  swiglu_forward(a.gate.data(), a.up.data(), a.act.data(), N * I);
  out.resize(N * H);
  linear_forward<T>(a.act.data(), w.down_w, nullptr, out.data(), N, I, H);
  lora_forward(lo[kLoraDown], run, a.act.data(), out.data(), N, &a.lora_u[kLoraDown]);
  parallel_for(0, N * H, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] += a.x_mid[i];
  });
}

template <typename T>
void add_into(std::vector<T>& dst, const std::vector<T>& src) {
  parallel_for(0, static_cast<int64_t>(dst.size()), 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

// Row of the vision features each pad token takes, as HF scatters them: image features (all images of the batch,
// in order) into the image-pad positions and video features into the video-pad positions, each in token order.
// The vision tower runs on the images' patches followed by the videos' patches, so the k-th image pad takes row k
// and the k-th video pad takes row (image pads in the batch) + k.
struct VisionRows {
  int64_t image_id, video_id, img = 0, vid = 0;
  VisionRows(const ModelConfig& cfg, const PackedBatch& b) : image_id(cfg.image_token_id), video_id(cfg.video_token_id) {
    vid = std::count(b.input_ids, b.input_ids + b.num_tokens, static_cast<int32_t>(image_id));
  }
  // The feature row of token `id`, or -1 when it is not a vision pad.
  int64_t next(int32_t id) {
    if (id == image_id) return img++;
    if (id == video_id) return vid++;
    return -1;
  }
};

// Row of the vision features for every token (-1 for tokens that are not vision pads), as VisionRows assigns them.
std::vector<int64_t> vision_row_of_token(const ModelConfig& cfg, const PackedBatch& b) {
  std::vector<int64_t> out(b.num_tokens);
  VisionRows rows(cfg, b);
  for (int64_t n = 0; n < b.num_tokens; ++n) out[n] = rows.next(b.input_ids[n]);
  return out;
}

// Qwen3-VL interleaved M-RoPE tables [N, d/2]: pair k rotates by pos[axis(k), n] · inv_freq[k] with
// axis(k) = h when k % 3 == 1 and k < 3·s1, w when k % 3 == 2 and k < 3·s2, else t (HF apply_interleaved_mrope
// overwrites the t frequencies at those slots). Angles and cos/sin in T (fp32 for float, as HF).
template <typename T>
void interleaved_mrope_tables(const TextConfig& t, const int32_t* positions, int64_t N, T* cos, T* sin) {
  const int64_t half = t.head_dim / 2;
  std::vector<T> inv(half);
  rope_inv_freq<T>(RopeKind::kMRope, t.head_dim, t.rope_theta, inv.data());
  std::vector<int> axis(half, 0);
  for (int64_t k = 0; k < half; ++k) {
    if (k % 3 == 1 && k < 3 * t.mrope_section[1]) axis[k] = 1;
    else if (k % 3 == 2 && k < 3 * t.mrope_section[2]) axis[k] = 2;
  }
  parallel_for(0, N, 256, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t k = 0; k < half; ++k) {
        const T ang = static_cast<T>(positions[axis[k] * N + n]) * inv[k];
        cos[n * half + k] = std::cos(ang);
        sin[n * half + k] = std::sin(ang);
      }
  });
}

template <typename T>
std::array<const LoraSite<T>*, kLoraDecoderSlots> layer_sites(const LoraView<T>* lora, int64_t l) {
  if (!lora || lora->layers.empty()) return {};
  return lora->layers[l];
}

}  // namespace

template <typename T>
void decoder_forward(const ModelConfig& cfg, const ModelView<T>& p, const PackedBatch& b, const T* vision_embeds,
                     DecoderActs<T>& acts, const LoraView<T>* lora, const DeepstackInput<T>* deepstack) {
  const TextConfig& t = cfg.text;
  const int64_t N = b.num_tokens, H = t.hidden;
  VG_CHECK_ARG(N > 0 && b.num_seqs > 0, "decoder_forward: empty batch (", N, " tokens, ", b.num_seqs, " sequences)");
  VG_CHECK_ARG(b.cu_seqlens[0] == 0 && b.cu_seqlens[b.num_seqs] == N, "decoder_forward: cu_seqlens must run from 0 to ",
               N, ", got ", b.cu_seqlens[0], "..", b.cu_seqlens[b.num_seqs]);
  // Embedding lookup; image-pad and video-pad positions take their rows of vision_embeds (see vision_rows).
  std::vector<T>& x = acts.x;
  x.resize(N * H);
  VisionRows rows(cfg, b);
  for (int64_t n = 0; n < N; ++n) {
    const int32_t id = b.input_ids[n];
    VG_CHECK_ARG(id >= 0 && id < t.vocab_size, "decoder_forward: token id ", id, " at position ", n,
                 " is outside the vocabulary (", t.vocab_size, ")");
    const T* src;
    const int64_t row = rows.next(id);
    if (row >= 0) {
      VG_CHECK_ARG(vision_embeds != nullptr, "decoder_forward: ", id == cfg.image_token_id ? "image" : "video",
                   "-pad token at position ", n, " but no vision features were given");
      src = vision_embeds + row * H;
    } else {
      src = p.embed + static_cast<int64_t>(id) * H;
    }
    std::copy(src, src + H, x.data() + n * H);
  }
  acts.cos.resize(N * t.head_dim / 2);
  acts.sin.resize(N * t.head_dim / 2);
  if (t.mrope_interleaved) interleaved_mrope_tables(t, b.positions, N, acts.cos.data(), acts.sin.data());
  else rope_tables(RopeKind::kMRope, b.positions, N, t.head_dim, t.rope_theta, t.mrope_section, acts.cos.data(),
                   acts.sin.data());
  const int64_t ds_count = deepstack ? static_cast<int64_t>(deepstack->size()) : 0;
  VG_CHECK_ARG(ds_count <= t.layers, "decoder_forward: ", ds_count, " deepstack inputs for ", t.layers, " layers");
  const std::vector<int64_t> vrows = ds_count > 0 ? vision_row_of_token(cfg, b) : std::vector<int64_t>();
  acts.deepstack_count = ds_count;
  acts.layers.resize(t.layers);
  for (int64_t l = 0; l < t.layers; ++l) {
    LayerActs<T>& a = acts.layers[l];
    a.x_in.swap(x);  // x takes over the layer's old buffer (reused capacity) and receives the layer's output
    layer_forward(cfg, p.layers[l], b, acts, a, x, layer_sites(lora, l), lora ? lora->run : LoraRun{});
    if (l < ds_count) {  // deepstack: this layer's output at the vision pads gets its vision features added
      const T* f = (*deepstack)[l];
      VG_CHECK_ARG(f != nullptr, "decoder_forward: deepstack input ", l, " is null");
      for (int64_t n = 0; n < N; ++n) {
        if (vrows[n] < 0) continue;
        const T* src = f + vrows[n] * H;
        T* dst = x.data() + n * H;
        for (int64_t j = 0; j < H; ++j) dst[j] += src[j];
      }
    }
    if (acts.recompute) a.clear_all_but_input();
    if (acts.kv_only) a.keep_only_kv();
  }
  acts.x_final.swap(x);
  acts.rstd_f.resize(N);
  acts.hidden.resize(N * H);
  rms_norm_forward(acts.x_final.data(), p.final_norm, acts.hidden.data(), acts.rstd_f.data(), N, H, t.rms_eps);
}

template <typename T>
void decoder_backward(const ModelConfig& cfg, const ModelView<T>& p, const ModelView<T>& g, const PackedBatch& b,
                      DecoderActs<T>& acts, std::vector<T>& dhidden, T* d_vision_embeds, const LoraView<T>* lora,
                      std::vector<std::vector<T>>* d_deepstack) {
  const TextConfig& t = cfg.text;
  const int64_t N = b.num_tokens, H = t.hidden, d = t.head_dim, qd = t.heads * d, kvd = t.kv_heads * d,
                I = t.intermediate;
  auto& gr = acts.grad;  // reused buffers; every one is fully overwritten before it is read
  for (auto* v : {&gr.dx, &gr.tmp, &gr.dmid, &gr.dxn}) v->resize(N * H);
  for (auto* v : {&gr.dact, &gr.dgate, &gr.dup}) v->resize(N * I);
  for (auto* v : {&gr.dattn, &gr.dq}) v->resize(N * qd);
  for (auto* v : {&gr.dk, &gr.dv}) v->resize(N * kvd);
  std::vector<T>&dx = gr.dx, &tmp = gr.tmp, &dmid = gr.dmid, &dact = gr.dact, &dgate = gr.dgate, &dup = gr.dup,
  &dattn = gr.dattn, &dq = gr.dq, &dk = gr.dk, &dv = gr.dv, &dxn = gr.dxn, &scratch = gr.scratch;
  rms_norm_backward(acts.x_final.data(), p.final_norm, acts.rstd_f.data(), dhidden.data(), dx.data(), g.final_norm, N, H);
  const AttentionDims dims = text_attention_dims(t, b);
  const int64_t ds_count = d_deepstack ? acts.deepstack_count : 0;
  std::vector<int64_t> vrows;
  if (ds_count > 0) {
    vrows = vision_row_of_token(cfg, b);
    const int64_t rows = static_cast<int64_t>(std::count_if(vrows.begin(), vrows.end(), [](int64_t r) { return r >= 0; }));
    d_deepstack->resize(ds_count);
    for (auto& d : *d_deepstack) d.assign(rows * H, T(0));
  }
  for (int64_t l = t.layers - 1; l >= 0; --l) {
    const DecoderLayerView<T>& w = p.layers[l];
    const DecoderLayerView<T>& gw = g.layers[l];
    LayerActs<T>& a = acts.layers[l];
    if (l < ds_count) {  // the deepstack add is an identity on the residual: its gradient is dx at the vision pads
      T* dd = (*d_deepstack)[l].data();
      for (int64_t n = 0; n < N; ++n)
        if (vrows[n] >= 0) std::copy(dx.data() + n * H, dx.data() + (n + 1) * H, dd + vrows[n] * H);
    }
    const auto lo = layer_sites(lora, l);
    const LoraRun run = lora ? lora->run : LoraRun{};
    if (acts.recompute) layer_forward(cfg, w, b, acts, a, scratch, lo, run);
    // MLP: out = x_mid + down(silu(gate) * up)
    linear_backward<T>(a.act.data(), w.down_w, dx.data(), dact.data(), gw.down_w, nullptr, N, I, H);
    lora_backward(lo[kLoraDown], run, a.act.data(), a.lora_u[kLoraDown].data(), dx.data(), dact.data(), N);
    swiglu_backward(a.gate.data(), a.up.data(), dact.data(), dgate.data(), dup.data(), N * I);
    linear_backward<T>(a.xn2.data(), w.gate_w, dgate.data(), dxn.data(), gw.gate_w, nullptr, N, H, I);
    lora_backward(lo[kLoraGate], run, a.xn2.data(), a.lora_u[kLoraGate].data(), dgate.data(), dxn.data(), N);
    linear_backward<T>(a.xn2.data(), w.up_w, dup.data(), tmp.data(), gw.up_w, nullptr, N, H, I);
    lora_backward(lo[kLoraUp], run, a.xn2.data(), a.lora_u[kLoraUp].data(), dup.data(), tmp.data(), N);
    add_into(dxn, tmp);
    rms_norm_backward(a.x_mid.data(), w.post_norm, a.rstd2.data(), dxn.data(), dmid.data(), gw.post_norm, N, H);
    add_into(dmid, dx);  // residual
    // Attention: x_mid = x_in + o_proj(attn(q, k, v))
    linear_backward<T>(a.attn.data(), w.o_w, dmid.data(), dattn.data(), gw.o_w, nullptr, N, qd, H);
    lora_backward(lo[kLoraO], run, a.attn.data(), a.lora_u[kLoraO].data(), dmid.data(), dattn.data(), N);
    attention_backward(dims, a.q.data(), a.k.data(), a.v.data(), a.attn.data(), a.lse.data(), dattn.data(),
                       b.cu_seqlens, b.cu_seqlens, dq.data(), dk.data(), dv.data());
    rope_backward(dq.data(), dq.data(), N, t.heads, d, acts.cos.data(), acts.sin.data());
    rope_backward(dk.data(), dk.data(), N, t.kv_heads, d, acts.cos.data(), acts.sin.data());
    if (w.q_norm) {
      rms_norm_backward(a.q_raw.data(), w.q_norm, a.rstd_q.data(), dq.data(), dq.data(), gw.q_norm, N * t.heads, d);
      rms_norm_backward(a.k_raw.data(), w.k_norm, a.rstd_k.data(), dk.data(), dk.data(), gw.k_norm, N * t.kv_heads, d);
    }
    linear_backward(a.xn1.data(), w.q_w, dq.data(), dxn.data(), gw.q_w, gw.q_b, N, H, qd);
    lora_backward(lo[kLoraQ], run, a.xn1.data(), a.lora_u[kLoraQ].data(), dq.data(), dxn.data(), N);
    linear_backward(a.xn1.data(), w.k_w, dk.data(), tmp.data(), gw.k_w, gw.k_b, N, H, kvd);
    lora_backward(lo[kLoraK], run, a.xn1.data(), a.lora_u[kLoraK].data(), dk.data(), tmp.data(), N);
    add_into(dxn, tmp);
    linear_backward(a.xn1.data(), w.v_w, dv.data(), tmp.data(), gw.v_w, gw.v_b, N, H, kvd);
    lora_backward(lo[kLoraV], run, a.xn1.data(), a.lora_u[kLoraV].data(), dv.data(), tmp.data(), N);
    add_into(dxn, tmp);
    rms_norm_backward(a.x_in.data(), w.input_norm, a.rstd1.data(), dxn.data(), dx.data(), gw.input_norm, N, H);
    add_into(dx, dmid);  // residual
    if (acts.recompute) a.clear_all_but_input();
    if (acts.on_layer_grads) acts.on_layer_grads(l);
  }
  // Embedding: scatter-add rows (unless frozen); image-pad and video-pad rows go to the vision features instead.
  if (!g.embed && !d_vision_embeds) return;
  VisionRows rows(cfg, b);
  for (int64_t n = 0; n < N; ++n) {
    const int32_t id = b.input_ids[n];
    const T* src = dx.data() + n * H;
    const int64_t row = rows.next(id);
    if (row >= 0) {
      if (d_vision_embeds) std::copy(src, src + H, d_vision_embeds + row * H);
      continue;
    }
    if (!g.embed) continue;
    T* dst = g.embed + static_cast<int64_t>(id) * H;
    for (int64_t j = 0; j < H; ++j) dst[j] += src[j];
  }
}

template struct LayerActs<float>;
template struct LayerActs<double>;
template void decoder_forward<float>(const ModelConfig&, const ModelView<float>&, const PackedBatch&, const float*,
                                     DecoderActs<float>&, const LoraView<float>*, const DeepstackInput<float>*);
template void decoder_forward<double>(const ModelConfig&, const ModelView<double>&, const PackedBatch&, const double*,
                                      DecoderActs<double>&, const LoraView<double>*, const DeepstackInput<double>*);
template void decoder_backward<float>(const ModelConfig&, const ModelView<float>&, const ModelView<float>&,
                                      const PackedBatch&, DecoderActs<float>&, std::vector<float>&, float*,
                                      const LoraView<float>*, std::vector<std::vector<float>>*);
template void decoder_backward<double>(const ModelConfig&, const ModelView<double>&, const ModelView<double>&,
                                       const PackedBatch&, DecoderActs<double>&, std::vector<double>&, double*,
                                       const LoraView<double>*, std::vector<std::vector<double>>*);

}  // namespace vg
