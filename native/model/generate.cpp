#include "model/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activations.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"
#include "cpu/norms.h"
#include "cpu/rope.h"

namespace vg {
namespace {

// One sequence's keys and values for every layer: [capacity, kv_heads * head_dim] each.
struct KvCache {
  std::vector<std::vector<float>> k, v;
  int64_t len = 0;
};

// Single-query attention of each active sequence over its cache (GQA), out: [A, heads * d].
void decode_attention(const TextConfig& t, const float* q, const std::vector<KvCache*>& caches, int64_t layer, float* out) {
  const int64_t A = static_cast<int64_t>(caches.size()), d = t.head_dim, groups = t.heads / t.kv_heads,
                kvd = t.kv_heads * d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  parallel_for(0, A * t.heads, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> s;
    std::vector<double> acc(d);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t a = i / t.heads, h = i % t.heads, kh = h / groups;
      const KvCache& c = *caches[a];
      const float* qv = q + a * t.heads * d + h * d;
      const float* K = c.k[layer].data() + kh * d;
      const float* V = c.v[layer].data() + kh * d;
      s.resize(c.len);
      float mx = -INFINITY;
      for (int64_t j = 0; j < c.len; ++j) {
        const float* kj = K + j * kvd;
        float dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += qv[e] * kj[e];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < c.len; ++j) {
        const double p = std::exp(static_cast<double>(s[j] - mx));
        sum += p;
        const float* vj = V + j * kvd;
        for (int64_t e = 0; e < d; ++e) acc[e] += p * vj[e];
      }
      float* o = out + a * t.heads * d + h * d;
      for (int64_t e = 0; e < d; ++e) o[e] = static_cast<float>(acc[e] / sum);
    }
  });
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
  std::vector<float> image_embeds;
  const int64_t image_tokens = std::count(prompts.input_ids, prompts.input_ids + prompts.num_tokens,
                                          static_cast<int32_t>(cfg.image_token_id));
  if (vision && vision->num_patches > 0) {
    const int64_t unit = cfg.vision.merge_size * cfg.vision.merge_size;
    VG_CHECK_ARG(vision->num_patches / unit == image_tokens, "generate: the images give ", vision->num_patches / unit,
                 " image tokens but the prompts hold ", image_tokens, " image-pad tokens");
    VisionActs<float> vacts;
    image_embeds.resize(image_tokens * H);
    vision_forward(cfg, p, *vision, vacts, image_embeds.data(), lv);
  }
  DecoderActs<float> acts;
  acts.kv_only = true;
  decoder_forward(cfg, p, prompts, image_embeds.empty() ? nullptr : image_embeds.data(), acts, lv);

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
      c.k.resize(L);
      c.v.resize(L);
      for (int64_t l = 0; l < L; ++l) {
        c.k[l].resize((len + opt.max_new_tokens) * kvd);
        c.v[l].resize((len + opt.max_new_tokens) * kvd);
        std::copy(acts.layers[l].k.begin() + begin * kvd, acts.layers[l].k.begin() + (begin + len) * kvd, c.k[l].begin());
        std::copy(acts.layers[l].v.begin() + begin * kvd, acts.layers[l].v.begin() + (begin + len) * kvd, c.v[l].begin());
      }
      c.len = len;
      out[b * G + g].prompt = b;
      delta[b * G + g] = rope_deltas ? rope_deltas[b] : 0;
    }
  }
  // Hidden state of each sample's last position: the prompt's last row, repeated G times.
  std::vector<float> hidden(S * H), logits;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t row = prompts.cu_seqlens[s / G + 1] - 1;
    std::copy(acts.hidden.begin() + row * H, acts.hidden.begin() + (row + 1) * H, hidden.begin() + s * H);
  }
  acts = DecoderActs<float>();

  std::vector<int64_t> active(S);
  for (int64_t s = 0; s < S; ++s) active[s] = s;
  std::vector<float> x, xn, q, k, v, attn, mid, gate, up, act, cosb, sinb, lps, flps, rstd;
  std::vector<int32_t> pos3, tokens;
  std::vector<uint32_t> seq_ids, steps;
  for (int64_t step = 0; !active.empty(); ++step) {
    const int64_t A = static_cast<int64_t>(active.size());
    // Sample the next token of every active sequence from its hidden state.
    logits.resize(A * V);
    linear_forward<float>(hidden.data(), p.lm_head, nullptr, logits.data(), A, H, V);  // few rows: streamed, not packed
    seq_ids.resize(A);
    steps.assign(A, static_cast<uint32_t>(step));
    for (int64_t a = 0; a < A; ++a) seq_ids[a] = opt.sequence_id_base + static_cast<uint32_t>(active[a]);
    tokens.resize(A);
    lps.resize(A);
    flps.resize(A);
    sample_tokens(logits.data(), A, V, seq_ids.data(), steps.data(), so, tokens.data(), lps.data(), flps.data());
    std::vector<int64_t> next;
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
    std::vector<KvCache*> cs(An);
    x.resize(An * H);
    pos3.resize(3 * An);
    for (int64_t a = 0; a < An; ++a) {
      const int64_t s = active[a];
      cs[a] = &caches[s];
      const int32_t tok = out[s].tokens.back();
      std::copy(p.embed + static_cast<int64_t>(tok) * H, p.embed + (static_cast<int64_t>(tok) + 1) * H, x.begin() + a * H);
      for (int c = 0; c < 3; ++c) pos3[c * An + a] = static_cast<int32_t>(caches[s].len + delta[s]);
    }
    cosb.resize(An * t.head_dim / 2);
    sinb.resize(An * t.head_dim / 2);
    rope_tables(RopeKind::kMRope, pos3.data(), An, t.head_dim, t.rope_theta, t.mrope_section, cosb.data(), sinb.data());
    xn.resize(An * H);
    rstd.resize(An);
    q.resize(An * qd);
    k.resize(An * kvd);
    v.resize(An * kvd);
    attn.resize(An * qd);
    mid.resize(An * H);
    gate.resize(An * I);
    up.resize(An * I);
    act.resize(An * I);
    for (int64_t l = 0; l < L; ++l) {
      const DecoderLayerView<float>& w = p.layers[l];
      rms_norm_forward(x.data(), w.input_norm, xn.data(), rstd.data(), An, H, t.rms_eps);
      linear_forward(xn.data(), w.q_w, w.q_b, q.data(), An, H, qd);
      linear_forward(xn.data(), w.k_w, w.k_b, k.data(), An, H, kvd);
      linear_forward(xn.data(), w.v_w, w.v_b, v.data(), An, H, kvd);
      lora_forward(site(l, kLoraQ), no_dropout, xn.data(), q.data(), An, no_u);
      lora_forward(site(l, kLoraK), no_dropout, xn.data(), k.data(), An, no_u);
      lora_forward(site(l, kLoraV), no_dropout, xn.data(), v.data(), An, no_u);
      rope_apply(q.data(), q.data(), An, t.heads, t.head_dim, cosb.data(), sinb.data(), false);
      rope_apply(k.data(), k.data(), An, t.kv_heads, t.head_dim, cosb.data(), sinb.data(), false);
      for (int64_t a = 0; a < An; ++a) {
        KvCache& c = *cs[a];
        std::copy(k.begin() + a * kvd, k.begin() + (a + 1) * kvd, c.k[l].begin() + c.len * kvd);
        std::copy(v.begin() + a * kvd, v.begin() + (a + 1) * kvd, c.v[l].begin() + c.len * kvd);
      }
      for (KvCache* c : cs) ++c->len;  // this layer's attention sees the new key
      decode_attention(t, q.data(), cs, l, attn.data());
      for (KvCache* c : cs) --c->len;
      linear_forward<float>(attn.data(), w.o_w, nullptr, mid.data(), An, qd, H);
      lora_forward(site(l, kLoraO), no_dropout, attn.data(), mid.data(), An, no_u);
      for (int64_t i = 0; i < An * H; ++i) mid[i] += x[i];
      rms_norm_forward(mid.data(), w.post_norm, xn.data(), rstd.data(), An, H, t.rms_eps);
      linear_forward<float>(xn.data(), w.gate_w, nullptr, gate.data(), An, H, I);
      linear_forward<float>(xn.data(), w.up_w, nullptr, up.data(), An, H, I);
      lora_forward(site(l, kLoraGate), no_dropout, xn.data(), gate.data(), An, no_u);
      lora_forward(site(l, kLoraUp), no_dropout, xn.data(), up.data(), An, no_u);
      swiglu_forward(gate.data(), up.data(), act.data(), An * I);
      linear_forward<float>(act.data(), w.down_w, nullptr, x.data(), An, I, H);
      lora_forward(site(l, kLoraDown), no_dropout, act.data(), x.data(), An, no_u);
      for (int64_t i = 0; i < An * H; ++i) x[i] += mid[i];
    }
    for (KvCache* c : cs) ++c->len;
    hidden.resize(An * H);
    rms_norm_forward(x.data(), p.final_norm, hidden.data(), rstd.data(), An, H, t.rms_eps);
  }
  return out;
}

}  // namespace vg
