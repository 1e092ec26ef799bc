// LoRA adapters on the whole model (vision tower + decoder + LM head) on tiny random configs: gradients of every
// adapter tensor against central finite differences in float64 (B initialised non-zero, decoder, vision blocks
// and merger targets), frozen base (gradient buffer untouched), adapters disabled == base model, merged == on the
// fly (forward and generation), adapter dropout (Philox masks: deterministic, thread-count invariant, backward
// consistent with a fixed mask), initialisation and argument checks.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/parallel.h"
#include "model/generate.h"
#include "model/lora.h"
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

// Every adaptable module of the config (decoder, vision blocks, merger).
std::vector<std::string> all_modules(const ModelConfig& cfg) {
  std::vector<std::string> names;
  for (const LoraModuleInfo& m : lora_adaptable_modules(cfg)) names.push_back(m.name);
  return names;
}

LoraSpec spec_for(const ModelConfig& cfg, double dropout, uint64_t seed) {
  LoraSpec s;
  s.rank = 3;
  s.alpha = 5;
  s.dropout = dropout;
  s.seed = seed;
  s.modules = all_modules(cfg);
  return s;
}

// B = 0 would make dL/dA vanish: give every B random values so both factors' gradients are exercised.
template <typename T>
void randomize_b(LoraAdapters<T>& lora, uint64_t salt, double scale = 0.3) {
  auto g = vgtest::rng(salt);
  for (const ParamEntry& e : lora.entries()) {
    if (e.name.find("lora_B") == std::string::npos) continue;
    auto r = vgtest::randn<double>(e.numel, g, scale);
    for (int64_t i = 0; i < e.numel; ++i) lora.params()[e.offset + i] = static_cast<T>(r[i]);
  }
}

// Overwrites a model's parameters in place (the model's views point into its buffer: never replace the vector).
template <typename T>
void set_params(Model<T>& m, const std::vector<T>& values) {
  std::copy(values.begin(), values.end(), m.params().begin());
}

template <typename T>
ForwardResult<T> run_forward(Model<T>& m, Case& c, bool adapters, bool train, bool logits = false) {
  ForwardOptions o;
  o.targets = c.targets.data();
  o.adapters = adapters;
  o.keep_for_backward = train;
  o.want_logits = logits;
  return m.forward(c.batch(), &c.vin, o);
}

double weighted(const std::vector<double>& lp, const Case& c) {
  double s = 0;
  for (size_t i = 0; i < lp.size(); ++i) s += c.weights[i] * lp[i];
  return s;
}

// Central finite differences on a few entries of every adapter tensor. `call` >= 0 pins the dropout call id
// so every evaluation (and the backward) uses the same masks.
void check_lora_gradients(VisionKind kind, bool tied, bool recompute, double dropout, uint64_t salt) {
  Case c = make_case(kind, tied, salt);
  Model<double> m(c.cfg);
  init_params(m, salt + 1);
  m.zero_grads();  // allocate the base gradient buffer, then fill it with a sentinel that must survive
  auto gs = vgtest::rng(salt + 2);
  for (double& x : m.grads()) x = static_cast<double>(gs() % 1000) / 7.0;
  const std::vector<double> sentinel = m.grads();
  m.enable_lora(spec_for(c.cfg, dropout, salt + 3));
  LoraAdapters<double>& lora = *m.lora();
  randomize_b(lora, salt + 4);
  const uint32_t call = 5;
  auto loss = [&]() {
    m.set_lora_dropout_calls(call);
    ForwardOptions o;
    o.targets = c.targets.data();
    o.keep_for_backward = true;  // a training forward: dropout on when p > 0
    return weighted(m.forward(c.batch(), &c.vin, o).logprobs, c);
  };
  m.set_lora_dropout_calls(call);
  ForwardOptions o;
  o.targets = c.targets.data();
  o.keep_for_backward = true;
  o.recompute = recompute;
  m.forward(c.batch(), &c.vin, o);
  m.zero_grads();
  m.backward(std::vector<double>(c.weights).data(), nullptr);
  const std::vector<double> grads = lora.grads();
  VG_EXPECT(m.grads() == sentinel, "the base gradient buffer changed in LoRA mode");
  auto g = vgtest::rng(salt + 5);
  int checked = 0, vision_checked = 0;
  for (const ParamEntry& e : lora.entries()) {
    double norm = 0;
    for (int64_t i = 0; i < e.numel; ++i) norm += std::fabs(grads[e.offset + i]);
    VG_EXPECT(norm > 0, e.name, ": gradient is identically zero");
    for (int k = 0; k < 2; ++k) {
      const int64_t i = static_cast<int64_t>(g() % static_cast<uint64_t>(e.numel));
      double& p = lora.params()[e.offset + i];
      const double keep = p, h = 1e-5;
      p = keep + h;
      const double lp = loss();
      p = keep - h;
      const double lm = loss();
      p = keep;
      const double fd = (lp - lm) / (2 * h), an = grads[e.offset + i];
      VG_EXPECT(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd), e.name, "[", i, "]: finite difference ", fd,
                " vs backward ", an);
      ++checked;
      if (e.vision) ++vision_checked;
    }
  }
  VG_EXPECT(checked == 2 * static_cast<int>(lora.entries().size()));
  VG_EXPECT(vision_checked >= 2 * 2 * 7, "vision adapters checked: ", vision_checked);
}

}  // namespace

VG_TEST(lora_gradients_qwen2_5_vl_all_targets) { check_lora_gradients(VisionKind::Qwen2_5, true, false, 0.0, 1101); }
VG_TEST(lora_gradients_qwen2_vl_recompute) { check_lora_gradients(VisionKind::Qwen2, false, true, 0.0, 1202); }
VG_TEST(lora_gradients_with_fixed_dropout_mask) { check_lora_gradients(VisionKind::Qwen2_5, false, false, 0.3, 1303); }

VG_TEST(lora_adaptable_modules_and_layout) {
  const ModelConfig c25 = tiny_config(VisionKind::Qwen2_5, true), c2 = tiny_config(VisionKind::Qwen2, true);
  const auto m25 = lora_adaptable_modules(c25), m2 = lora_adaptable_modules(c2);
  VG_EXPECT(m25.size() == 2 * 7 + 2 * 5 + 2, m25.size());
  VG_EXPECT(m2.size() == 2 * 7 + 2 * 4 + 2, m2.size());
  VG_EXPECT(m25[0].name == "model.layers.0.self_attn.q_proj" && m25[0].in == 16 && m25[0].out == 16);
  VG_EXPECT(m25[1].name == "model.layers.0.self_attn.k_proj" && m25[1].out == 8);
  VG_EXPECT(m25[6].name == "model.layers.0.mlp.down_proj" && m25[6].in == 24 && m25[6].out == 16);
  VG_EXPECT(m25[14].name == "visual.blocks.0.attn.qkv" && m25[14].in == 8 && m25[14].out == 24 && m25[14].vision());
  VG_EXPECT(m25[16].name == "visual.blocks.0.mlp.gate_proj" && m25[16].out == 12);
  VG_EXPECT(m2[16].name == "visual.blocks.0.mlp.fc1" && m2[17].name == "visual.blocks.0.mlp.fc2");
  VG_EXPECT(m25.back().name == "visual.merger.mlp.2" && m25.back().in == 32 && m25.back().out == 16);
  // Every module's shape is its base weight's.
  ParamLayout layout(c25);
  for (const auto& m : m25) {
    const ParamEntry& e = layout.find(m.name + ".weight");
    VG_EXPECT(e.shape.size() == 2 && e.shape[0] == m.out && e.shape[1] == m.in, m.name);
  }
  // Streams are unique.
  std::vector<uint32_t> streams;
  for (const auto& m : m25) streams.push_back(m.stream);
  std::sort(streams.begin(), streams.end());
  VG_EXPECT(std::adjacent_find(streams.begin(), streams.end()) == streams.end());

  // Buffer layout: PEFT names in model order (whatever the spec's order), A [r, in] then B [out, r], aligned.
  LoraSpec s;
  s.rank = 4;
  s.alpha = 8;
  s.modules = {"visual.merger.mlp.0", "model.layers.1.mlp.up_proj", "model.layers.0.self_attn.q_proj"};
  LoraAdapters<float> a(c25, s);
  const auto& e = a.entries();
  VG_EXPECT(e.size() == 6);
  VG_EXPECT(e[0].name == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  VG_EXPECT(e[0].shape == std::vector<int64_t>({4, 16}));
  VG_EXPECT(e[1].name == "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  VG_EXPECT(e[1].shape == std::vector<int64_t>({16, 4}));
  VG_EXPECT(e[2].name == "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight");
  VG_EXPECT(e[4].name == "base_model.model.visual.merger.mlp.0.lora_A.weight" && e[4].vision && !e[0].vision);
  for (size_t i = 0; i < e.size(); ++i) {
    VG_EXPECT(e[i].offset % 16 == 0);
    if (i) VG_EXPECT(e[i].offset >= e[i - 1].offset + e[i - 1].numel);
  }
  VG_EXPECT(a.any_vision());
  VG_EXPECT(std::fabs(a.scale() - 2.0) < 1e-15);
  s.rslora = true;
  VG_EXPECT(std::fabs(s.scale() - 4.0) < 1e-15);
}

VG_TEST(lora_init_kaiming_uniform_b_zero_seeded) {
  const ModelConfig cfg = tiny_config(VisionKind::Qwen2_5, false);
  LoraSpec s = spec_for(cfg, 0.0, 77);
  LoraAdapters<double> a(cfg, s), b(cfg, s);
  s.seed = 78;
  LoraAdapters<double> c(cfg, s);
  LoraAdapters<float> f(cfg, spec_for(cfg, 0.0, 77));
  VG_EXPECT(a.params() == b.params(), "same seed, same initialisation");
  VG_EXPECT(a.params() != c.params(), "another seed, another initialisation");
  for (size_t i = 0; i < a.modules().size(); ++i) {
    const ParamEntry& A = a.entries()[2 * i];
    const ParamEntry& B = a.entries()[2 * i + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.modules()[i].in));
    double mn = 1e9, mx = -1e9, mean = 0;
    for (int64_t k = 0; k < A.numel; ++k) {
      const double v = a.params()[A.offset + k];
      mn = std::min(mn, v);
      mx = std::max(mx, v);
      mean += v / static_cast<double>(A.numel);
      VG_EXPECT(std::fabs(static_cast<double>(f.params()[A.offset + k]) - v) <= 1e-7 * bound, "float init = double init");
    }
    VG_EXPECT(mn >= -bound && mx <= bound, A.name, " outside U(-", bound, ", ", bound, ")");
    VG_EXPECT(mx - mn > bound, A.name, " not spread over its range (", mn, "..", mx, ")");
    for (int64_t k = 0; k < B.numel; ++k) VG_EXPECT(a.params()[B.offset + k] == 0.0, B.name, " must start at 0");
  }
  // Over all A entries the values are uniform: mean near 0 and variance near bound^2 / 3 (scaled per module).
  double m1 = 0, m2 = 0;
  int64_t n = 0;
  for (size_t i = 0; i < a.modules().size(); ++i) {
    const ParamEntry& A = a.entries()[2 * i];
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.modules()[i].in));
    for (int64_t k = 0; k < A.numel; ++k) {
      const double z = a.params()[A.offset + k] / bound;  // U(-1, 1)
      m1 += z;
      m2 += z * z;
      ++n;
    }
  }
  m1 /= static_cast<double>(n);
  m2 /= static_cast<double>(n);
  VG_EXPECT(std::fabs(m1) < 5 * std::sqrt(1.0 / 3.0 / static_cast<double>(n)), "mean ", m1, " over ", n);
  VG_EXPECT(std::fabs(m2 - 1.0 / 3.0) < 5 * std::sqrt(4.0 / 45.0 / static_cast<double>(n)), "second moment ", m2);
}

VG_TEST(lora_fresh_adapters_and_disabled_adapters_equal_the_base) {
  Case c = make_case(VisionKind::Qwen2_5, false, 1404);
  Model<double> base(c.cfg), m(c.cfg);
  init_params(base, 1405);
  set_params(m, base.params());
  const auto ref = run_forward(base, c, true, false, true);
  m.enable_lora(spec_for(c.cfg, 0.0, 1406));
  // B = 0: the adapted model is the base model, exactly.
  const auto fresh = run_forward(m, c, true, false, true);
  VG_EXPECT(fresh.logits == ref.logits && fresh.logprobs == ref.logprobs, "a fresh adapter changed the output");
  randomize_b(*m.lora(), 1407);
  const auto adapted = run_forward(m, c, true, false, true);
  const auto off = run_forward(m, c, false, false, true);
  VG_EXPECT(off.logits == ref.logits && off.logprobs == ref.logprobs, "adapters:false must be the base model exactly");
  VG_EXPECT(off.image_embeds == ref.image_embeds);
  double diff = 0;
  for (size_t i = 0; i < ref.logits.size(); ++i) diff = std::max(diff, std::fabs(adapted.logits[i] - ref.logits[i]));
  VG_EXPECT(diff > 1e-3, "random B should change the logits, max diff ", diff);
  // A backward of a forward without adapters has nothing to train.
  run_forward(m, c, false, true);
  VG_EXPECT_THROWS(m.backward(std::vector<double>(c.weights).data(), nullptr), "adapters disabled");
  // Disabling LoRA goes back to the (unchanged) base.
  m.disable_lora();
  const auto back = run_forward(m, c, true, false, true);
  VG_EXPECT(back.logits == ref.logits);
}

VG_TEST(lora_merged_params_equal_on_the_fly_forward) {
  for (VisionKind kind : {VisionKind::Qwen2_5, VisionKind::Qwen2}) {
    Case c = make_case(kind, true, 1505);
    Model<double> m(c.cfg), merged(c.cfg);
    init_params(m, 1506);
    const std::vector<double> base = m.params();
    m.enable_lora(spec_for(c.cfg, 0.0, 1507));
    randomize_b(*m.lora(), 1508);
    set_params(merged, m.merged_params());
    VG_EXPECT(m.params() == base, "merging must not touch the base weights");
    const auto a = run_forward(m, c, true, false, true);
    const auto b = run_forward(merged, c, true, false, true);
    VG_EXPECT_ALLCLOSE(b.logits.data(), a.logits.data(), a.logits.size(), 1e-11, 1e-10);
    VG_EXPECT_ALLCLOSE(b.logprobs.data(), a.logprobs.data(), a.logprobs.size(), 1e-11, 1e-10);
    // Reference merge computed here: W' = W + s B A for one decoder and one vision matrix.
    const LoraAdapters<double>& L = *m.lora();
    for (size_t i : {size_t(0), L.modules().size() - 3}) {
      const LoraModuleInfo& mod = L.modules()[i];
      const ParamEntry& w = m.layout().find(mod.name + ".weight");
      const double* A = L.params().data() + L.entries()[2 * i].offset;
      const double* B = L.params().data() + L.entries()[2 * i + 1].offset;
      for (int64_t o = 0; o < mod.out; ++o)
        for (int64_t j = 0; j < mod.in; ++j) {
          double want = base[w.offset + o * mod.in + j];
          for (int64_t k = 0; k < 3; ++k) want += L.scale() * B[o * 3 + k] * A[k * mod.in + j];
          VG_EXPECT(std::fabs(merged.params()[w.offset + o * mod.in + j] - want) < 1e-12, mod.name);
        }
    }
  }
}

VG_TEST(lora_generation_merged_equals_on_the_fly) {
  Case c = make_case(VisionKind::Qwen2_5, false, 1606);
  Model<float> m(c.cfg), merged(c.cfg), plain(c.cfg);
  init_params(m, 1607);
  set_params(plain, m.params());
  LoraSpec s = spec_for(c.cfg, 0.2, 1608);  // dropout must not apply in generation
  m.enable_lora(s);
  randomize_b(*m.lora(), 1609);
  set_params(merged, m.merged_params());
  const std::vector<float> base = m.params();
  std::vector<int32_t> deltas = {-3, 0};  // next position minus length (get_rope_index)
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.sampling.temperature = 0;
  auto tokens = [](const std::vector<GeneratedSequence>& v) {
    std::vector<std::vector<int32_t>> t;
    for (auto& s : v) t.push_back(s.tokens);
    return t;
  };
  g.merge_adapters = true;
  const auto a = generate(m, c.batch(), deltas.data(), &c.vin, g);
  g.merge_adapters = false;
  const auto b = generate(m, c.batch(), deltas.data(), &c.vin, g);
  const auto ref = generate(merged, c.batch(), deltas.data(), &c.vin, g);
  g.adapters = false;
  const auto off = generate(m, c.batch(), deltas.data(), &c.vin, g);
  const auto base_gen = generate(plain, c.batch(), deltas.data(), &c.vin, g);
  VG_EXPECT(tokens(a) == tokens(b), "merged and on-the-fly adapters generate different tokens");
  VG_EXPECT(tokens(a) == tokens(ref), "merged generation differs from a model holding the merged weights");
  VG_EXPECT(tokens(off) == tokens(base_gen), "adapters:false generation differs from the base model");
  VG_EXPECT(m.params() == base, "generation modified the base weights");
  for (size_t i = 0; i < a.size(); ++i) {
    VG_EXPECT(a[i].logprobs.size() == b[i].logprobs.size());
    for (size_t j = 0; j < a[i].logprobs.size(); ++j) {
      VG_EXPECT(std::fabs(a[i].logprobs[j] - b[i].logprobs[j]) <= 1e-5, "seq ", i, " step ", j, ": ", a[i].logprobs[j],
                " vs ", b[i].logprobs[j]);
      VG_EXPECT(std::fabs(a[i].logprobs[j] - ref[i].logprobs[j]) <= 1e-5);
    }
  }
  // With random B the adapted model should generate something else than the base somewhere.
  bool any_logprob_diff = false;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < std::min(a[i].logprobs.size(), off[i].logprobs.size()); ++j)
      any_logprob_diff |= std::fabs(a[i].logprobs[j] - off[i].logprobs[j]) > 1e-4;
  VG_EXPECT(any_logprob_diff, "the adapters had no effect on generation");
}

VG_TEST(lora_dropout_mask_statistics_and_thread_invariance) {
  const int64_t n = 200003;  // not a multiple of 4
  std::vector<double> ones(n, 1.0), a(n), b(n), c(n), d(n);
  LoraRun run;
  run.dropout = 0.25;
  run.seed = 42;
  run.call = 3;
  const int threads = num_threads();
  set_num_threads(1);
  lora_dropout(run, 7, ones.data(), a.data(), n);
  set_num_threads(3);
  lora_dropout(run, 7, ones.data(), b.data(), n);
  set_num_threads(threads);
  VG_EXPECT(a == b, "the dropout mask depends on the thread count");
  int64_t kept = 0;
  for (double v : a) {
    VG_EXPECT(v == 0.0 || std::fabs(v - 1.0 / 0.75) < 1e-15, "kept values are scaled by 1 / (1 - p): ", v);
    kept += v != 0.0;
  }
  const double frac = static_cast<double>(kept) / static_cast<double>(n), sd = std::sqrt(0.75 * 0.25 / static_cast<double>(n));
  VG_EXPECT(std::fabs(frac - 0.75) < 5 * sd, "kept fraction ", frac);
  run.call = 4;
  lora_dropout(run, 7, ones.data(), c.data(), n);
  run.call = 3;
  lora_dropout(run, 8, ones.data(), d.data(), n);
  VG_EXPECT(c != a && d != a, "another call or stream must give another mask");
  // Agreement between the masks of different calls is what independence predicts (p_keep^2 + p_drop^2).
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) same += (a[i] != 0) == (c[i] != 0);
  VG_EXPECT(std::fabs(static_cast<double>(same) / static_cast<double>(n) - 0.625) < 0.01);
  // The mask of element e does not depend on the length of the call (pure function of e).
  std::vector<double> part(1001);
  lora_dropout(run, 7, ones.data(), part.data(), 1001);
  VG_EXPECT(std::equal(part.begin(), part.end(), a.begin()));
  run.dropout = 1.0;
  VG_EXPECT_THROWS(lora_dropout(run, 7, ones.data(), a.data(), n), "[0, 1)");
}

VG_TEST(lora_dropout_training_forward_only_and_thread_invariant) {
  Case c = make_case(VisionKind::Qwen2_5, false, 1707);
  Model<double> m(c.cfg);
  init_params(m, 1708);
  m.enable_lora(spec_for(c.cfg, 0.4, 1709));
  randomize_b(*m.lora(), 1710, 1.0);
  const auto eval1 = run_forward(m, c, true, false).logprobs;
  VG_EXPECT(m.lora_dropout_calls() == 0, "an eval forward must not consume a dropout call");
  const int threads = num_threads();
  set_num_threads(1);
  const auto t1 = run_forward(m, c, true, true).logprobs;  // call 0
  const auto t2 = run_forward(m, c, true, true).logprobs;  // call 1
  m.set_lora_dropout_calls(0);
  set_num_threads(2);
  const auto t1_again = run_forward(m, c, true, true).logprobs;
  set_num_threads(threads);
  const auto eval2 = run_forward(m, c, true, false).logprobs;
  VG_EXPECT(eval1 == eval2, "eval forwards are deterministic and dropout-free");
  VG_EXPECT_ALLCLOSE(t1_again.data(), t1.data(), t1.size(), 1e-13, 1e-12);
  auto maxdiff = [](const std::vector<double>& x, const std::vector<double>& y) {
    double d = 0;
    for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(x[i] - y[i]));
    return d;
  };
  VG_EXPECT(maxdiff(t1, eval1) > 1e-6, "dropout had no effect on a training forward");
  VG_EXPECT(maxdiff(t1, t2) > 1e-6, "two training forwards used the same mask");
  // Gradients with dropout and checkpointing equal those without checkpointing (masks are recomputed).
  auto grads = [&](bool recompute) {
    m.set_lora_dropout_calls(9);
    ForwardOptions o;
    o.targets = c.targets.data();
    o.keep_for_backward = true;
    o.recompute = recompute;
    m.forward(c.batch(), &c.vin, o);
    m.zero_grads();
    m.backward(std::vector<double>(c.weights).data(), nullptr);
    return m.lora()->grads();
  };
  const auto g_plain = grads(false), g_ckpt = grads(true);
  VG_EXPECT_ALLCLOSE(g_ckpt.data(), g_plain.data(), g_plain.size(), 1e-12, 1e-9);
}

VG_TEST(lora_train_vision_false_skips_vision_adapters) {
  Case c = make_case(VisionKind::Qwen2_5, false, 1808);
  Model<double> m(c.cfg);
  init_params(m, 1809);
  m.enable_lora(spec_for(c.cfg, 0.0, 1810));
  randomize_b(*m.lora(), 1811);
  run_forward(m, c, true, true);
  m.zero_grads();
  m.backward(std::vector<double>(c.weights).data(), nullptr, /*train_vision=*/false);
  for (const ParamEntry& e : m.lora()->entries()) {
    double s = 0;
    for (int64_t i = 0; i < e.numel; ++i) s += std::fabs(m.lora()->grads()[e.offset + i]);
    VG_EXPECT(e.vision ? s == 0 : s > 0, e.name, " gradient sum ", s);
  }
}

VG_TEST(lora_rejects_bad_specs) {
  const ModelConfig cfg = tiny_config(VisionKind::Qwen2, true);
  Model<float> m(cfg);
  LoraSpec s = spec_for(cfg, 0.0, 1);
  s.rank = 0;
  VG_EXPECT_THROWS(m.enable_lora(s), "r must be >= 1, got 0");
  s.rank = 2;
  s.dropout = 1.0;
  VG_EXPECT_THROWS(m.enable_lora(s), "dropout must be in [0, 1), got 1");
  s.dropout = 0;
  s.modules = {"model.layers.0.self_attn.q_proj", "visual.blocks.0.mlp.gate_proj"};  // Qwen2-VL has fc1/fc2
  VG_EXPECT_THROWS(m.enable_lora(s), "'visual.blocks.0.mlp.gate_proj' is not an adaptable linear layer");
  s.modules = {"model.layers.2.self_attn.q_proj"};
  VG_EXPECT_THROWS(m.enable_lora(s), "is not an adaptable");
  s.modules = {"lm_head"};
  VG_EXPECT_THROWS(m.enable_lora(s), "is not an adaptable");
  s.modules = {"model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj"};
  VG_EXPECT_THROWS(m.enable_lora(s), "listed twice");
  s.modules = {};
  VG_EXPECT_THROWS(m.enable_lora(s), "no modules");
  VG_EXPECT(m.lora() == nullptr, "a rejected spec must leave the model without adapters");
}
