// Qwen3-VL (dense) on a tiny random config: every parameter's gradient (q/k norm, deepstack mergers, the
// interpolated position table, patch-embed bias, LayerNorm blocks, interleaved M-RoPE) against central finite
// differences in float64; float against double; gradient checkpointing against the plain backward; greedy
// generation (KV cache, q/k norm in the decode step, deepstack in the prefill) against the argmax chain of full
// forwards; config validation.
#include <algorithm>
#include <cmath>

#include "model/generate.h"
#include "model/model.h"
#include "test_framework.h"
#include "tiny_model.h"

using namespace vg;
using vgtest::Case;

namespace {

// Text: hidden 16, 4 heads / 2 kv heads with an explicit head_dim 12 (q width 48 != hidden), mrope [2, 2, 2]
// interleaved (pairs 0..5 → t h w t h w). Vision: depth 3, deepstack after blocks 0 and 2 (2 decoder layers get
// them), a 3 × 3 position table interpolated to the 4 × 6 patch grid.
ModelConfig q3_config(bool tied) {
  ModelConfig c = vgtest::tiny_config(VisionKind::Qwen2, tied);
  c.text.head_dim = 12;
  c.text.mrope_section[0] = c.text.mrope_section[1] = c.text.mrope_section[2] = 2;
  c.text.attention_bias = false;
  c.text.qk_norm = true;
  c.text.mrope_interleaved = true;
  c.vision.kind = VisionKind::Qwen3;
  c.vision.depth = 3;
  c.vision.act = Activation::GELUTanh;
  c.vision.fullatt_blocks.clear();
  c.vision.num_position_embeddings = 9;
  c.vision.deepstack_indexes = {0, 2};
  return c;
}

// The tiny two-sequence case (one image of grid (1, 4, 6), one text-only sequence) with the Qwen3-VL config.
Case q3_case(bool tied, uint64_t salt) {
  Case c = vgtest::make_case(VisionKind::Qwen2, tied, salt);  // no window arrays (Qwen3-VL has none)
  c.cfg = q3_config(tied);
  return c;
}

template <typename T>
double loss_of(Model<T>& m, Case& c) {
  ForwardOptions o;
  o.targets = c.targets.data();
  auto r = m.forward(c.batch(), &c.vin, o);
  double s = 0;
  for (size_t i = 0; i < r.logprobs.size(); ++i) s += c.weights[i] * static_cast<double>(r.logprobs[i]);
  return s;
}

template <typename T>
std::vector<T> grads_of(Model<T>& m, Case& c, bool recompute) {
  ForwardOptions o;
  o.targets = c.targets.data();
  o.keep_for_backward = true;
  o.recompute = recompute;
  m.forward(c.batch(), &c.vin, o);
  std::vector<T> dl(c.weights.begin(), c.weights.end());
  m.zero_grads();
  m.backward(dl.data(), nullptr);
  return m.grads();
}

void check_gradients(bool tied, uint64_t salt) {
  Case c = q3_case(tied, salt);
  Model<double> m(c.cfg);
  vgtest::init_params(m, salt + 1);
  auto grads = grads_of(m, c, false);
  auto g = vgtest::rng(salt + 2);
  int checked = 0;
  for (const ParamEntry& e : m.layout().entries()) {
    for (int k = 0; k < 3; ++k) {
      int64_t i = static_cast<int64_t>(g() % static_cast<uint64_t>(e.numel));
      if (e.name == "model.embed_tokens.weight") i = static_cast<int64_t>(c.ids[g() % c.ids.size()]) * c.cfg.text.hidden + k;
      double& p = m.params()[e.offset + i];
      const double keep = p, h = 1e-5;
      p = keep + h;
      const double lp = loss_of(m, c);
      p = keep - h;
      const double lm = loss_of(m, c);
      p = keep;
      const double fd = (lp - lm) / (2 * h), an = grads[e.offset + i];
      VG_EXPECT(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd), e.name, "[", i, "]: finite difference ", fd,
                " vs backward ", an);
      ++checked;
    }
  }
  VG_EXPECT(checked > 100, checked);
  // The new pieces must actually receive gradient (a silently skipped path would pass the check with zeros).
  for (const char* name : {"visual.pos_embed.weight", "visual.deepstack_merger_list.0.linear_fc1.weight",
                           "visual.deepstack_merger_list.1.norm.weight", "visual.patch_embed.proj.bias",
                           "model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight"}) {
    const ParamEntry& e = m.layout().find(name);
    double s = 0;
    for (int64_t i = 0; i < e.numel; ++i) s += std::fabs(grads[e.offset + i]);
    VG_EXPECT(s > 1e-8, name, " has an all-zero gradient");
  }
}

int32_t argmax_allowed(const float* z, int64_t V, const std::vector<int32_t>& banned) {
  int32_t best = -1;
  for (int32_t j = 0; j < V; ++j) {
    if (std::find(banned.begin(), banned.end(), j) != banned.end()) continue;
    if (best < 0 || z[j] > z[best]) best = j;
  }
  return best;
}

}  // namespace

VG_TEST(qwen3_vl_gradients_untied) { check_gradients(false, 3101); }
VG_TEST(qwen3_vl_gradients_tied_with_deepstack) { check_gradients(true, 3202); }

VG_TEST(qwen3_vl_float_matches_double_and_recompute_matches) {
  Case cd = q3_case(false, 3303), cf = q3_case(false, 3303);
  Model<double> md(cd.cfg);
  Model<float> mf(cf.cfg);
  vgtest::init_params(md, 3304);
  for (size_t i = 0; i < md.params().size(); ++i) mf.params()[i] = static_cast<float>(md.params()[i]);
  ForwardOptions o;
  o.targets = cd.targets.data();
  o.want_logits = true;
  auto rd = md.forward(cd.batch(), &cd.vin, o);
  o.targets = cf.targets.data();
  auto rf = mf.forward(cf.batch(), &cf.vin, o);
  VG_EXPECT_ALLCLOSE(rf.logits.data(), rd.logits.data(), rd.logits.size(), 1e-4, 1e-4);
  auto g_plain = grads_of(md, cd, false);
  auto g_ckpt = grads_of(md, cd, true);
  VG_EXPECT_ALLCLOSE(g_ckpt.data(), g_plain.data(), g_plain.size(), 1e-12, 1e-9);
}

VG_TEST(qwen3_vl_deepstack_changes_the_logits) {
  // Zeroing the deepstack mergers' output layers must change the image sequence's logits and leave the text-only
  // sequence's logits bitwise unchanged (deepstack touches only vision-pad rows).
  Case c = q3_case(false, 3404);
  Model<double> m(c.cfg);
  vgtest::init_params(m, 3405);
  ForwardOptions o;
  o.want_logits = true;
  auto a = m.forward(c.batch(), &c.vin, o);
  for (int i = 0; i < 2; ++i) {
    const std::string p = "visual.deepstack_merger_list." + std::to_string(i) + ".linear_fc2.";
    for (const char* s : {"weight", "bias"}) {
      const ParamEntry& e = m.layout().find(p + s);
      std::fill(m.params().begin() + e.offset, m.params().begin() + e.offset + e.numel, 0.0);
    }
  }
  auto b = m.forward(c.batch(), &c.vin, o);
  const int64_t V = c.cfg.text.vocab_size, n0 = c.cu[1];
  double diff = 0;
  for (int64_t i = 0; i < n0 * V; ++i) diff = std::max(diff, std::fabs(a.logits[i] - b.logits[i]));
  VG_EXPECT(diff > 1e-6, "deepstack had no effect on the image sequence (max diff ", diff, ")");
  for (int64_t i = n0 * V; i < static_cast<int64_t>(a.logits.size()); ++i) VG_EXPECT(a.logits[i] == b.logits[i], i);
}

VG_TEST(qwen3_vl_greedy_generation_equals_argmax_chain) {
  Case c = q3_case(false, 3505);
  Model<float> m(c.cfg);
  vgtest::init_params(m, 3506);
  // The image prompt alone (sequence 0).
  const int64_t len = c.cu[1], N = static_cast<int64_t>(c.ids.size());
  std::vector<int32_t> ids(c.ids.begin(), c.ids.begin() + len), pos(3 * len);
  int32_t mx = 0;
  for (int a = 0; a < 3; ++a)
    for (int64_t n = 0; n < len; ++n) mx = std::max(mx, pos[a * len + n] = c.positions[a * N + n]);
  const int32_t delta = mx + 1 - static_cast<int32_t>(len);
  std::vector<int32_t> cu = {0, static_cast<int32_t>(len)};
  PackedBatch pb{len, 1, ids.data(), pos.data(), cu.data()};
  GenerateOptions go;
  go.max_new_tokens = 5;
  go.sampling.temperature = 0;
  const auto out = generate(m, pb, &delta, &c.vin, go);
  VG_EXPECT(out.size() == 1 && out[0].tokens.size() == 5, out.size());
  const std::vector<int32_t> banned = {35, 36, 37, 38};
  // Argmax chain: a full forward over prompt + tokens so far; the next position is (cache index + delta) on all axes.
  for (size_t s = 0; s < out[0].tokens.size(); ++s) {
    const int64_t L = static_cast<int64_t>(ids.size());
    std::vector<int32_t> p3(3 * L), cu2 = {0, static_cast<int32_t>(L)};
    for (int a = 0; a < 3; ++a)
      for (int64_t n = 0; n < L; ++n) p3[a * L + n] = n < len ? pos[a * len + n] : static_cast<int32_t>(n + delta);
    PackedBatch b{L, 1, ids.data(), p3.data(), cu2.data()};
    ForwardOptions o;
    o.want_logits = true;
    auto r = m.forward(b, &c.vin, o);
    const int32_t want = argmax_allowed(r.logits.data() + (L - 1) * c.cfg.text.vocab_size, c.cfg.text.vocab_size, banned);
    VG_EXPECT(out[0].tokens[s] == want, "step ", s, ": generated ", out[0].tokens[s], ", argmax of the forward ", want);
    ids.push_back(out[0].tokens[s]);
  }
}

VG_TEST(qwen3_vl_config_rejects_bad_deepstack_and_pos_table) {
  ModelConfig c = q3_config(false);
  c.vision.num_position_embeddings = 10;
  VG_EXPECT_THROWS(c.validate(), "num_position_embeddings 10 must be a positive perfect square");
  c = q3_config(false);
  c.vision.deepstack_indexes = {0, 3};
  VG_EXPECT_THROWS(c.validate(), "deepstack_visual_indexes entry 3 is outside [0, 3)");
  c = q3_config(false);
  c.vision.deepstack_indexes = {0, 1, 2};
  VG_EXPECT_THROWS(c.validate(), "3 deepstack_visual_indexes but only 2 decoder layers");
  c = q3_config(false);
  c.vision.kind = VisionKind::Qwen2;
  VG_EXPECT_THROWS(c.validate(), "deepstack_visual_indexes is a Qwen3-VL feature");
}
