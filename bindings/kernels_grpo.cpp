// grpoLoss({...}) -> { loss, grad, gradEntropy?, stats }, adamwStep({...}) (in place) and
// clipGradNorm({ grads, maxNorm }) -> { totalNorm, scale }. The TS wrappers (src/kernels/grpo.ts, optim.ts)
// validate and default every field; this layer re-checks types and lengths. See native/cpu/grpo_loss.h and
// native/cpu/adamw.h for the math.
#include <vector>

#include "common.h"
#include "cpu/adamw.h"
#include "cpu/grpo_loss.h"

namespace vgb {

namespace {

constexpr int64_t kMaxElems = int64_t(1) << 40;

vg::KlEstimator parse_estimator(Napi::Env env, const std::string& s) {
  if (s == "k1") return vg::KlEstimator::K1;
  if (s == "k2") return vg::KlEstimator::K2;
  if (s == "k3") return vg::KlEstimator::K3;
  if (s == "abs") return vg::KlEstimator::Abs;
  throw_range(env, "klEstimator must be one of 'k1', 'k2', 'k3', 'abs', got '" + s + "'");
}

vg::LossAgg parse_agg(Napi::Env env, const std::string& s) {
  if (s == "token-mean") return vg::LossAgg::TokenMean;
  if (s == "seq-mean-token-mean") return vg::LossAgg::SeqMeanTokenMean;
  if (s == "seq-mean-token-sum") return vg::LossAgg::SeqMeanTokenSum;
  if (s == "seq-mean-token-sum-norm") return vg::LossAgg::SeqMeanTokenSumNorm;
  throw_range(env, "lossAgg must be one of 'token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', "
                   "'seq-mean-token-sum-norm', got '" + s + "'");
}

vg::RatioLevel parse_level(Napi::Env env, const std::string& s) {
  if (s == "token") return vg::RatioLevel::Token;
  if (s == "sequence") return vg::RatioLevel::Sequence;
  throw_range(env, "ratioLevel must be one of 'token', 'sequence', got '" + s + "'");
}

vg::PolicyLoss parse_policy(Napi::Env env, const std::string& s) {
  if (s == "ppo") return vg::PolicyLoss::Ppo;
  if (s == "cispo") return vg::PolicyLoss::Cispo;
  throw_range(env, "policyLoss must be one of 'ppo', 'cispo', got '" + s + "'");
}

}  // namespace

static Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "grpoLoss");
  vg::GrpoLossConfig c;
  c.num_sequences = get_int(o, "numSequences", NAN, 0, kMaxElems);
  c.seq_len = get_int(o, "seqLen", NAN, 0, kMaxElems);
  const int64_t n = c.num_sequences * c.seq_len;
  c.clip_low = get_number(o, "clipLow");
  c.clip_high = get_number(o, "clipHigh", c.clip_low);
  c.dual_clip = get_number(o, "dualClip", 0.0);
  c.kl_coef = get_number(o, "klCoef", 0.0);
  c.kl_estimator = parse_estimator(env, get_string(o, "klEstimator", "k3"));
  c.loss_agg = parse_agg(env, get_string(o, "lossAgg", "token-mean"));
  c.loss_scale = get_number(o, "lossScale", 0.0);
  c.entropy_coef = get_number(o, "entropyCoef", 0.0);
  c.ratio_level = parse_level(env, get_string(o, "ratioLevel", "token"));
  c.policy_loss = parse_policy(env, get_string(o, "policyLoss", "ppo"));
  c.token_count_normalizer = get_number(o, "tokenCountNormalizer", 0.0);
  c.sequence_count_normalizer = get_number(o, "sequenceCountNormalizer", 0.0);

  auto lp = get_array<float>(o, "logprobs", n);
  auto lo = get_array<float>(o, "oldLogprobs", n);
  auto lr = get_array<float>(o, "refLogprobs", n, true);
  auto adv = get_array<float>(o, "advantages", c.num_sequences);
  auto ent = get_array<float>(o, "entropy", n, true);
  Napi::Value mv = o.Get("mask");
  const bool mask_u8 = mv.IsTypedArray() && mv.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  const bool mask_f32 = mv.IsTypedArray() && mv.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
  if (!mask_u8 && !mask_f32) throw_type(env, "mask must be a Uint8Array or a Float32Array");
  // Presence is decided by the field, not the data pointer (an empty typed array may have none).
  const bool has_ent = !(o.Get("entropy").IsUndefined() || o.Get("entropy").IsNull());
  auto grad = new_array<float>(env, static_cast<size_t>(n));
  Napi::TypedArrayOf<float> grad_ent;
  if (has_ent) grad_ent = new_array<float>(env, static_cast<size_t>(n));
  float* ge = has_ent ? grad_ent.Data() : nullptr;

  vg::GrpoLossStats s = guard(env, [&] {
    if (mask_u8) {
      auto m = get_array<uint8_t>(o, "mask", n);
      return vg::grpo_loss<float, uint8_t>(c, lp.data, lo.data, lr.data, adv.data, m.data, ent.data, grad.Data(), ge);
    }
    auto m = get_array<float>(o, "mask", n);
    return vg::grpo_loss<float, float>(c, lp.data, lo.data, lr.data, adv.data, m.data, ent.data, grad.Data(), ge);
  });

  Napi::Object stats = Napi::Object::New(env);
  stats.Set("clipFracLow", s.clip_frac_low);
  stats.Set("clipFracHigh", s.clip_frac_high);
  stats.Set("clipFracDual", s.clip_frac_dual);
  stats.Set("kl", s.kl);
  stats.Set("ratioMean", s.ratio_mean);
  stats.Set("ppoKl", s.ppo_kl);
  stats.Set("pgLoss", s.pg_loss);
  stats.Set("klLoss", s.kl_loss);
  stats.Set("entropyLoss", s.entropy_loss);
  stats.Set("numTokens", s.num_tokens);
  stats.Set("numValidSequences", s.num_valid_sequences);
  Napi::Object r = Napi::Object::New(env);
  r.Set("loss", s.loss);
  r.Set("grad", grad);
  if (has_ent) r.Set("gradEntropy", grad_ent);
  r.Set("stats", stats);
  return r;
}

static Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "adamwStep");
  auto params = get_array<float>(o, "params");
  const int64_t n = static_cast<int64_t>(params.length);
  auto grads = get_array<float>(o, "grads", n);
  auto m = get_array<float>(o, "expAvg", n);
  auto v = get_array<float>(o, "expAvgSq", n);
  vg::AdamWConfig c;
  c.step = get_int(o, "step", NAN, 1, int64_t(1) << 53);
  c.lr = get_number(o, "lr");
  c.beta1 = get_number(o, "beta1", c.beta1);
  c.beta2 = get_number(o, "beta2", c.beta2);
  c.eps = get_number(o, "eps", c.eps);
  c.weight_decay = get_number(o, "weightDecay", c.weight_decay);
  guard(env, [&] { vg::adamw_step<float>(params.data, grads.data, m.data, v.data, n, c); });
  return env.Undefined();
}

static Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "clipGradNorm");
  Napi::Value gv = o.Get("grads");
  if (!gv.IsArray()) throw_type(env, "grads must be an array of Float32Array");
  Napi::Array arr = gv.As<Napi::Array>();
  const uint32_t count = arr.Length();
  std::vector<float*> ptrs(count);
  std::vector<int64_t> lens(count);
  for (uint32_t k = 0; k < count; ++k) {
    Napi::Value e = arr.Get(k);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_type(env, "grads[" + std::to_string(k) + "] must be a Float32Array");
    auto t = e.As<Napi::Float32Array>();
    ptrs[k] = t.Data();
    lens[k] = static_cast<int64_t>(t.ElementLength());
  }
  const double max_norm = get_number(o, "maxNorm", 0.0);  // 0 (or < 0) means measure only
  vg::ClipGradNormResult res =
      guard(env, [&] { return vg::clip_grad_norm<float>(ptrs.data(), lens.data(), count, max_norm); });
  Napi::Object r = Napi::Object::New(env);
  r.Set("totalNorm", res.total_norm);
  r.Set("scale", res.scale);
  return r;
}

void register_grpo_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("grpoLoss", Napi::Function::New(env, GrpoLoss, "grpoLoss"));
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep, "adamwStep"));
  exports.Set("clipGradNorm", Napi::Function::New(env, ClipGradNorm, "clipGradNorm"));
}

}  // namespace vgb
