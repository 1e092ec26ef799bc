#include "model/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activations.h"
#include "cpu/decode_attention.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"
#include "cpu/norms.h"
#include "cpu/rope.h"
#include "cpu/skinny_linear.h"

namespace vg {
namespace {

// One sequence's keys and values for every layer, in decode_attention's layout: keys [kv_heads, head_dim,
// capacity] (transposed), values [kv_heads, capacity, head_dim].
struct KvCache {
  std::vector<std::vector<float>> k, v;
  int64_t len = 0, capacity = 0;
};

// Linears of one input for the decode step: the streaming kernel in one dispatch for up to kSkinnyMaxRows rows,
// else one GEMM per output, then its residual (so here a residual must not alias its y).
void decode_linears(const float* x, int64_t rows, int64_t in, const SkinnyOutput<float>* outs, int64_t count) {
  if (rows <= kSkinnyMaxRows) {
    skinny_linear_multi(x, rows, in, outs, count);
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const SkinnyOutput<float>& s = outs[i];
    linear_forward(x, s.W, s.bias, s.y, rows, in, s.out);
    if (s.residual)
      parallel_for(0, rows * s.out, 1 << 14, [&](int64_t i0, int64_t i1) {
        for (int64_t j = i0; j < i1; ++j) s.y[j] += s.residual[j];
      });
  }
}

SkinnyOutput<float> output(const float* W, const float* bias, const float* residual, float* y, int64_t out) {
  SkinnyOutput<float> s;
  s.W = W;
  s.bias = bias;
  s.residual = residual;
  s.y = y;
  s.out = out;
  return s;
}

}  // namespace

std::vector<GeneratedSequence> generate(Model<float>& model, const PackedBatch& prompts, const int32_t* rope_deltas,
                                        const VisionInput* vision, const GenerateOptions& opt) {
  const ModelConfig& cfg = model.config();
  const TextConfig& t = cfg.text;
  // Adapters: merged into a per-call copy of the adapted matrices, or applied on the fly (no dropout either way).
  const LoraAdapters<float>* lora = opt.adapters ? model.lora().get() : nullptr;
  std::vector<float> merged_buffer;
  ModelView<float> merged;
  LoraView<float> lview;
  const LoraView<float>* lv = nullptr;
  if (lora && opt.merge_adapters) {
    merged = lora->merged_view(model.view(), merged_buffer);
  } else if (lora) {
    lview = lora->view(LoraRun{});
    lv = &lview;
  }
  const ModelView<float>& p = lora && opt.merge_adapters ? merged : model.view();
  const LoraRun no_dropout;
  std::vector<float>* const no_u = nullptr;  // decode steps keep nothing for a backward
  auto site = [&](int64_t l, int slot) { return lv ? lv->layer(l, slot) : nullptr; };
  const int64_t B = prompts.num_seqs, G = opt.num_samples, H = t.hidden, V = t.vocab_size, kvd = t.kv_heads * t.head_dim,
                qd = t.heads * t.head_dim, I = t.intermediate, L = t.layers;
  VG_CHECK_ARG(G >= 1, "generate: numSamples must be >= 1, got ", G);
  VG_CHECK_ARG(opt.max_new_tokens >= 1, "generate: maxNewTokens must be >= 1, got ", opt.max_new_tokens);
  // Prefill: vision tower, then the decoder over all prompts, keeping each layer's keys and values.
  // Vision features: the images' tokens, then the videos' (placed by decoder_forward, see decoder.h).
  std::vector<float> image_embeds;
  VisionActs<float> vacts;
  const int64_t image_tokens = std::count(prompts.input_ids, prompts.input_ids + prompts.num_tokens,
                                          static_cast<int32_t>(cfg.image_token_id)) +
                               std::count(prompts.input_ids, prompts.input_ids + prompts.num_tokens,
                                          static_cast<int32_t>(cfg.video_token_id));
  if (vision && vision->num_patches > 0) {
    const int64_t unit = cfg.vision.merge_size * cfg.vision.merge_size;
    VG_CHECK_ARG(vision->num_patches / unit == image_tokens, "generate: the images and videos give ",
                 vision->num_patches / unit, " vision tokens but the prompts hold ", image_tokens,
                 " image-pad and video-pad tokens");
    image_embeds.resize(image_tokens * H);
    vision_forward(cfg, p, *vision, vacts, image_embeds.data(), lv);
  }
  DecoderActs<float> acts;
  acts.kv_only = true;
  DeepstackInput<float> deepstack;  // Qwen3-VL: intermediate vision features added after the first layers
  for (const std::vector<float>& f : vacts.deepstack_out) deepstack.push_back(f.data());
  decoder_forward(cfg, p, prompts, image_embeds.empty() ? nullptr : image_embeds.data(), acts, lv, &deepstack);

  // Banned: the caller's list plus the vision special tokens.
  std::vector<int32_t> banned = opt.banned_ids;
  for (int64_t id : {cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id})
    if (id >= 0 && id < V) banned.push_back(static_cast<int32_t>(id));
  SamplingOptions so = opt.sampling;
  so.banned = banned.data();
  so.num_banned = static_cast<int64_t>(banned.size());

  const int64_t S = B * G;
  std::vector<GeneratedSequence> out(S);
  std::vector<KvCache> caches(S);
  std::vector<int32_t> delta(S);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = prompts.cu_seqlens[b], len = prompts.cu_seqlens[b + 1] - begin;
    VG_CHECK_ARG(len > 0, "generate: prompt ", b, " is empty");
    for (int64_t g = 0; g < G; ++g) {
      KvCache& c = caches[b * G + g];
      // The last new token is never fed back, so len + max_new_tokens - 1 positions suffice.
      c.capacity = len + opt.max_new_tokens - 1;
      c.k.resize(L);
      c.v.resize(L);
      for (int64_t l = 0; l < L; ++l) {
        c.k[l].resize(c.capacity * kvd);
        c.v[l].resize(c.capacity * kvd);
        for (int64_t j = 0; j < len; ++j)
          decode_kv_store(c.k[l].data(), c.v[l].data(), c.capacity, t.kv_heads, t.head_dim, j,
                          acts.layers[l].k.data() + (begin + j) * kvd, acts.layers[l].v.data() + (begin + j) * kvd);
      }
      c.len = len;
      out[b * G + g].prompt = b;
      delta[b * G + g] = rope_deltas ? rope_deltas[b] : 0;
    }
  }
  // Hidden state of each sample's last position: the prompt's last row, repeated G times.
  std::vector<float> hidden(S * H);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t row = prompts.cu_seqlens[s / G + 1] - 1;
    std::copy(acts.hidden.begin() + row * H, acts.hidden.begin() + (row + 1) * H, hidden.begin() + s * H);
  }
  acts = DecoderActs<float>();

  std::vector<int64_t> active(S);
  for (int64_t s = 0; s < S; ++s) active[s] = s;
  // Decode-step buffers, sized once for all S sequences (the active set only shrinks).
  std::vector<float> x(S * H), xn(S * H), mid(S * H), q(S * qd), k(S * kvd), v(S * kvd), attn(S * qd), act(S * I),
      cosb(S * t.head_dim / 2), sinb(S * t.head_dim / 2), rstd(S), rstd_qk(S * t.heads), logits(S * V), lps(S), flps(S);
  std::vector<float> gate, up;  // only for on-the-fly adapters on gate/up (they must see the pre-activation values)
  std::vector<int32_t> pos3(3 * S), tokens(S);
  std::vector<uint32_t> seq_ids(S), steps(S);
  std::vector<int64_t> next;
  std::vector<DecodeKv<float>> kvs(S);
  DecodeAttentionDims dims;
  dims.heads = t.heads;
  dims.kv_heads = t.kv_heads;
  dims.head_dim = t.head_dim;
  dims.scale = 1.0 / std::sqrt(static_cast<double>(t.head_dim));
  for (int64_t step = 0; !active.empty(); ++step) {
    const int64_t A = static_cast<int64_t>(active.size());
    // Sample the next token of every active sequence from its hidden state.
    linear_forward<float>(hidden.data(), p.lm_head, nullptr, logits.data(), A, H, V);  // few rows: streamed, not packed
    for (int64_t a = 0; a < A; ++a) {
      seq_ids[a] = opt.sequence_id_base + static_cast<uint32_t>(active[a]);
      steps[a] = static_cast<uint32_t>(step);
    }
    sample_tokens(logits.data(), A, V, seq_ids.data(), steps.data(), so, tokens.data(), lps.data(), flps.data());
    next.clear();
    for (int64_t a = 0; a < A; ++a) {
      GeneratedSequence& g = out[active[a]];
      g.tokens.push_back(tokens[a]);
      g.logprobs.push_back(lps[a]);
      g.stopped = std::find(opt.stop_ids.begin(), opt.stop_ids.end(), tokens[a]) != opt.stop_ids.end();
      if (!g.stopped && static_cast<int64_t>(g.tokens.size()) < opt.max_new_tokens) next.push_back(active[a]);
    }
    active.swap(next);
    if (active.empty()) break;
    // One decoder step for the sequences still running: their last token at position cache_len + delta.
    const int64_t An = static_cast<int64_t>(active.size());
    for (int64_t a = 0; a < An; ++a) {
      const int64_t s = active[a];
      const int32_t tok = out[s].tokens.back();
      std::copy(p.embed + static_cast<int64_t>(tok) * H, p.embed + (static_cast<int64_t>(tok) + 1) * H, x.begin() + a * H);
      for (int c = 0; c < 3; ++c) pos3[c * An + a] = static_cast<int32_t>(caches[s].len + delta[s]);
    }
    // All three axes share one position here, so Qwen3-VL's interleaved M-RoPE gives the same tables.
    rope_tables(RopeKind::kMRope, pos3.data(), An, t.head_dim, t.rope_theta, t.mrope_section, cosb.data(), sinb.data());
    dims.batch = An;
    for (int64_t l = 0; l < L; ++l) {
      const DecoderLayerView<float>& w = p.layers[l];
      rms_norm_forward(x.data(), w.input_norm, xn.data(), rstd.data(), An, H, t.rms_eps);
      const SkinnyOutput<float> qkv[3] = {output(w.q_w, w.q_b, nullptr, q.data(), qd),
                                          output(w.k_w, w.k_b, nullptr, k.data(), kvd),
                                          output(w.v_w, w.v_b, nullptr, v.data(), kvd)};
      decode_linears(xn.data(), An, H, qkv, 3);
      lora_forward(site(l, kLoraQ), no_dropout, xn.data(), q.data(), An, no_u);
      lora_forward(site(l, kLoraK), no_dropout, xn.data(), k.data(), An, no_u);
      lora_forward(site(l, kLoraV), no_dropout, xn.data(), v.data(), An, no_u);
      if (w.q_norm) {  // Qwen3-VL per-head q/k RMSNorm (in place)
        rms_norm_forward(q.data(), w.q_norm, q.data(), rstd_qk.data(), An * t.heads, t.head_dim, t.rms_eps);
        rms_norm_forward(k.data(), w.k_norm, k.data(), rstd_qk.data(), An * t.kv_heads, t.head_dim, t.rms_eps);
      }
      rope_apply(q.data(), q.data(), An, t.heads, t.head_dim, cosb.data(), sinb.data(), false);
      rope_apply(k.data(), k.data(), An, t.kv_heads, t.head_dim, cosb.data(), sinb.data(), false);
      // The new position's keys and values go into the cache first: this layer's attention sees them.
      for (int64_t a = 0; a < An; ++a) {
        KvCache& c = caches[active[a]];
        decode_kv_store(c.k[l].data(), c.v[l].data(), c.capacity, t.kv_heads, t.head_dim, c.len, k.data() + a * kvd,
                        v.data() + a * kvd);
        kvs[a].keys = c.k[l].data();
        kvs[a].values = c.v[l].data();
        kvs[a].len = c.len + 1;
        kvs[a].capacity = c.capacity;
      }
      decode_attention(dims, q.data(), kvs.data(), attn.data());
      // mid = x + o_proj(attn); with an on-the-fly adapter the residual comes after it, as in the forward.
      const LoraSite<float>* lo = site(l, kLoraO);
      const SkinnyOutput<float> o = output(w.o_w, nullptr, lo ? nullptr : x.data(), mid.data(), H);
      decode_linears(attn.data(), An, qd, &o, 1);
      if (lo) {
        lora_forward(lo, no_dropout, attn.data(), mid.data(), An, no_u);
        for (int64_t i = 0; i < An * H; ++i) mid[i] += x[i];
      }
      rms_norm_forward(mid.data(), w.post_norm, xn.data(), rstd.data(), An, H, t.rms_eps);
      // act = silu(gate) * up: fused (gate and up weight rows streamed together) unless an adapter changes them.
      if (An <= kSkinnyMaxRows && !site(l, kLoraGate) && !site(l, kLoraUp)) {
        skinny_swiglu(xn.data(), w.gate_w, w.up_w, act.data(), An, H, I);
      } else {
        gate.resize(S * I);
        up.resize(S * I);
        const SkinnyOutput<float> gu[2] = {output(w.gate_w, nullptr, nullptr, gate.data(), I),
                                           output(w.up_w, nullptr, nullptr, up.data(), I)};
        decode_linears(xn.data(), An, H, gu, 2);
        lora_forward(site(l, kLoraGate), no_dropout, xn.data(), gate.data(), An, no_u);
        lora_forward(site(l, kLoraUp), no_dropout, xn.data(), up.data(), An, no_u);
        swiglu_forward(gate.data(), up.data(), act.data(), An * I);
      }
      // x = mid + down(act) (the residual after an on-the-fly adapter, as above).
      const LoraSite<float>* ld = site(l, kLoraDown);
      const SkinnyOutput<float> down = output(w.down_w, nullptr, ld ? nullptr : mid.data(), x.data(), H);
      decode_linears(act.data(), An, I, &down, 1);
      if (ld) {
        lora_forward(ld, no_dropout, act.data(), x.data(), An, no_u);
        for (int64_t i = 0; i < An * H; ++i) x[i] += mid[i];
      }
    }
    for (int64_t a = 0; a < An; ++a) ++caches[active[a]].len;
    rms_norm_forward(x.data(), p.final_norm, hidden.data(), rstd.data(), An, H, t.rms_eps);
  }
  return out;
}

}  // namespace vg
