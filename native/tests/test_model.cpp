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
using vgtest::Case;
using vgtest::make_case;
using vgtest::init_params;

namespace {

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

void check_model_gradients(VisionKind kind, bool tied, uint64_t salt) {
  auto c = make_case(kind, tied, salt);
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
  auto cd = make_case(VisionKind::Qwen2_5, false, 303);
  auto cf = make_case(VisionKind::Qwen2_5, false, 303);
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
  auto c = make_case(VisionKind::Qwen2_5, true, 404);
  Model<double> m(c.cfg);
  init_params(m, 405);
  ForwardOptions o;
  VG_EXPECT_THROWS(m.forward(c.batch(), nullptr, o), "image-pad and 0 video-pad tokens but no image or video");
  c.ids[3] = 1;  // one image-pad token fewer than the image gives
  VG_EXPECT_THROWS(m.forward(c.batch(), &c.vin, o), "vision tokens but the input ids hold 5 (5 image-pad + 0 video-pad");
}
