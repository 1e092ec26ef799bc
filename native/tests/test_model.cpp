// The whole model (vision tower + decoder + LM head) on tiny random configs: gradients of every parameter
// tensor against central finite differences in float64, the float model against the double model, and
// gradient checkpointing against the plain backward.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/model.h"
#include "test_framework.h"
#include "tiny_model.h"

using namespace vg;
using vgtest::tiny_config;
using vgtest::vision_index;
using vgtest::VisionIndex;

namespace {

template <typename T>
struct Case {
  ModelConfig cfg;
  std::vector<int32_t> ids, positions, cu, targets;
  std::vector<float> pixels;
  VisionIndex vi;
  VisionInput vin;
  std::vector<double> weights;  // loss = sum_n weights[n] * logprob[n]
  PackedBatch batch() const {
    PackedBatch b;
    b.num_tokens = static_cast<int64_t>(ids.size());
    b.num_seqs = static_cast<int64_t>(cu.size()) - 1;
    b.input_ids = ids.data();
    b.positions = positions.data();
    b.cu_seqlens = cu.data();
    return b;
  }
};

// Two sequences: one with an image of grid (1, 4, 6) (6 image tokens, 2 windows), one text only.
template <typename T>
Case<T> make_case(VisionKind kind, bool tied, uint64_t salt) {
  Case<T> c;
  c.cfg = tiny_config(kind, tied);
  auto g = vgtest::rng(salt);
  const int64_t gh = 4, gw = 6, P = gh * gw, tokens = P / 4;
  std::vector<int32_t> s0 = {1, 2, 36};
  for (int i = 0; i < tokens; ++i) s0.push_back(35);
  for (int v : {37, 5, 6, 7, 8}) s0.push_back(v);
  std::vector<int32_t> s1 = {3, 9, 10, 11, 12, 13, 14};
  c.ids = s0;
  c.ids.insert(c.ids.end(), s1.begin(), s1.end());
  c.cu = {0, static_cast<int32_t>(s0.size()), static_cast<int32_t>(s0.size() + s1.size())};
  const int64_t N = static_cast<int64_t>(c.ids.size());
  c.positions.assign(3 * N, 0);
  // Sequence 0: text 0..2, image block at base 3 (t = 3, h = 3 + row, w = 3 + col), then text from max + 1.
  int64_t n = 0;
  for (int p = 0; p < 3; ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  for (int i = 0; i < gh / 2; ++i)
    for (int j = 0; j < gw / 2; ++j, ++n) {
      c.positions[0 * N + n] = 3;
      c.positions[1 * N + n] = 3 + i;
      c.positions[2 * N + n] = 3 + j;
    }
  for (int p = 6; n < static_cast<int64_t>(s0.size()); ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  for (int p = 0; n < N; ++p, ++n) for (int a = 0; a < 3; ++a) c.positions[a * N + n] = p;
  // Targets: the next token inside each sequence, none at each sequence's last position and at image pads.
  c.targets.assign(N, -1);
  for (size_t s = 0; s + 1 < c.cu.size(); ++s)
    for (int64_t t = c.cu[s]; t + 1 < c.cu[s + 1]; ++t)
      if (c.ids[t + 1] != 35) c.targets[t] = c.ids[t + 1];
  c.pixels = vgtest::randn<float>(P * c.cfg.vision.patch_dim(), g);
  c.vi = vision_index(gh, gw, c.cfg.vision.window_size / (c.cfg.vision.patch_size * c.cfg.vision.merge_size));
  c.vin.num_patches = P;
  c.vin.pixel_values = c.pixels.data();
  c.vin.pos_ids = c.vi.pos.data();
  c.vin.num_images = 1;
  c.vin.cu_seqlens = c.vi.cu.data();
  if (kind == VisionKind::Qwen2_5) {
    c.vin.window_index = c.vi.win.data();
    c.vin.num_windows = static_cast<int64_t>(c.vi.cu_win.size()) - 1;
    c.vin.cu_window_seqlens = c.vi.cu_win.data();
  }
  c.weights = vgtest::randn<double>(N, g);
  return c;
}

template <typename T>
void init_params(Model<T>& m, uint64_t salt) {
  auto g = vgtest::rng(salt);
  for (const ParamEntry& e : m.layout().entries()) {
    const bool norm = e.name.find("norm") != std::string::npos || e.name.find("ln_q") != std::string::npos;
    const bool bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;
    auto r = vgtest::randn<double>(e.numel, g, norm && !bias ? 0.1 : 0.3);
    for (int64_t i = 0; i < e.numel; ++i) m.params()[e.offset + i] = static_cast<T>(r[i] + (norm && !bias ? 1.0 : 0.0));
  }
}

template <typename T>
double loss_of(Model<T>& m, Case<T>& c) {
  ForwardOptions o;
  o.targets = c.targets.data();
  auto r = m.forward(c.batch(), &c.vin, o);
  double s = 0;
  for (size_t i = 0; i < r.logprobs.size(); ++i) s += c.weights[i] * static_cast<double>(r.logprobs[i]);
  return s;
}

template <typename T>
std::vector<T> grads_of(Model<T>& m, Case<T>& c, bool recompute) {
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

void check_model_gradients(VisionKind kind, bool tied, uint64_t salt) {
  auto c = make_case<double>(kind, tied, salt);
  Model<double> m(c.cfg);
  init_params(m, salt + 1);
  auto grads = grads_of(m, c, false);
  auto g = vgtest::rng(salt + 2);
  int checked = 0;
  for (const ParamEntry& e : m.layout().entries()) {
    // A few entries of every tensor (the embedding rows of tokens that occur, so the check is not trivially 0).
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
  VG_EXPECT(checked > 50);
}

}  // namespace

VG_TEST(model_gradients_qwen2_5_vl_windows_tied) { check_model_gradients(VisionKind::Qwen2_5, true, 101); }
VG_TEST(model_gradients_qwen2_vl_untied) { check_model_gradients(VisionKind::Qwen2, false, 202); }

VG_TEST(model_float_matches_double_and_recompute_matches) {
  auto cd = make_case<double>(VisionKind::Qwen2_5, false, 303);
  auto cf = make_case<float>(VisionKind::Qwen2_5, false, 303);
  Model<double> md(cd.cfg);
  Model<float> mf(cf.cfg);
  init_params(md, 304);
  for (size_t i = 0; i < md.params().size(); ++i) mf.params()[i] = static_cast<float>(md.params()[i]);
  ForwardOptions o;
  o.targets = cd.targets.data();
  o.want_logits = true;
  auto rd = md.forward(cd.batch(), &cd.vin, o);
  o.targets = cf.targets.data();
  auto rf = mf.forward(cf.batch(), &cf.vin, o);
  VG_EXPECT_ALLCLOSE(rf.logprobs.data(), rd.logprobs.data(), rd.logprobs.size(), 1e-4, 1e-4);
  VG_EXPECT_ALLCLOSE(rf.logits.data(), rd.logits.data(), rd.logits.size(), 1e-4, 1e-4);
  // log-probs agree with log_softmax of the returned logits at the targets
  const int64_t V = cd.cfg.text.vocab_size;
  for (size_t n = 0; n < cd.targets.size(); ++n) {
    if (cd.targets[n] < 0) { VG_EXPECT(rd.logprobs[n] == 0.0); continue; }
    const double* z = rd.logits.data() + n * V;
    double mx = *std::max_element(z, z + V), s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(z[j] - mx);
    VG_EXPECT(std::fabs(z[cd.targets[n]] - mx - std::log(s) - rd.logprobs[n]) < 1e-10, "row ", n);
  }
  auto g_plain = grads_of(md, cd, false);
  auto g_ckpt = grads_of(md, cd, true);
  VG_EXPECT_ALLCLOSE(g_ckpt.data(), g_plain.data(), g_plain.size(), 1e-12, 1e-9);
}

VG_TEST(model_rejects_mismatched_image_tokens) {
  auto c = make_case<double>(VisionKind::Qwen2_5, true, 404);
  Model<double> m(c.cfg);
  init_params(m, 405);
  ForwardOptions o;
  VG_EXPECT_THROWS(m.forward(c.batch(), nullptr, o), "image-pad tokens but no image");
  c.ids[3] = 1;  // one image-pad token fewer than the image gives
  VG_EXPECT_THROWS(m.forward(c.batch(), &c.vin, o), "image tokens but the input ids hold 5");
}
