// Norms, rotary embeddings and activations on Float32Arrays (native/cpu/norms.h, rope.h, activations.h):
//   rmsNorm, rmsNormBackward, layerNorm, layerNormBackward, ropeTables, ropeApply, rope, swiglu, swigluBackward,
//   gelu, geluBackward, quickGelu, quickGeluBackward. Each takes one options object (camelCase fields) and
// returns new arrays; parameter gradients can be accumulated into caller arrays (gradWeight / gradBias).
#include <string>
#include <vector>

#include "common.h"
#include "cpu/activations.h"
#include "cpu/norms.h"
#include "cpu/rope.h"

namespace vgb {
namespace {

constexpr int64_t kMaxDim = INT32_MAX;

// An optional caller-provided accumulator of length n, or a new zero-filled array.
Napi::TypedArrayOf<float> accumulator(const Napi::Object& o, const char* field, int64_t n) {
  auto given = get_array<float>(o, field, n, true);
  if (given.data) return o.Get(field).As<Napi::TypedArrayOf<float>>();
  return new_array<float>(o.Env(), static_cast<size_t>(n));
}

// ---- norms

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "rmsNorm");
  const int64_t rows = get_int(o, "rows", NAN, 0, kMaxDim), hidden = get_int(o, "hidden", NAN, 1, kMaxDim);
  const double eps = get_number(o, "eps");
  auto x = get_array<float>(o, "x", rows * hidden);
  auto w = get_array<float>(o, "weight", hidden);
  auto y = new_array<float>(env, static_cast<size_t>(rows * hidden));
  auto rstd = new_array<float>(env, static_cast<size_t>(rows));
  guard(env, [&] { vg::rms_norm_forward<float>(x.data, w.data, y.Data(), rstd.Data(), rows, hidden, eps); });
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", y);
  r.Set("rstd", rstd);
  return r;
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "rmsNormBackward");
  const int64_t rows = get_int(o, "rows", NAN, 0, kMaxDim), hidden = get_int(o, "hidden", NAN, 1, kMaxDim);
  auto x = get_array<float>(o, "x", rows * hidden);
  auto w = get_array<float>(o, "weight", hidden);
  auto rstd = get_array<float>(o, "rstd", rows);
  auto dy = get_array<float>(o, "gradOut", rows * hidden);
  auto dx = new_array<float>(env, static_cast<size_t>(rows * hidden));
  auto dw = accumulator(o, "gradWeight", hidden);
  guard(env, [&] {
    vg::rms_norm_backward<float>(x.data, w.data, rstd.data, dy.data, dx.Data(), dw.Data(), rows, hidden);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("gradInput", dx);
  r.Set("gradWeight", dw);
  return r;
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "layerNorm");
  const int64_t rows = get_int(o, "rows", NAN, 0, kMaxDim), hidden = get_int(o, "hidden", NAN, 1, kMaxDim);
  const double eps = get_number(o, "eps");
  auto x = get_array<float>(o, "x", rows * hidden);
  auto w = get_array<float>(o, "weight", hidden);
  auto b = get_array<float>(o, "bias", hidden, true);
  auto y = new_array<float>(env, static_cast<size_t>(rows * hidden));
  auto mean = new_array<float>(env, static_cast<size_t>(rows));
  auto rstd = new_array<float>(env, static_cast<size_t>(rows));
  guard(env, [&] {
    vg::layer_norm_forward<float>(x.data, w.data, b.data, y.Data(), mean.Data(), rstd.Data(), rows, hidden, eps);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", y);
  r.Set("mean", mean);
  r.Set("rstd", rstd);
  return r;
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "layerNormBackward");
  const int64_t rows = get_int(o, "rows", NAN, 0, kMaxDim), hidden = get_int(o, "hidden", NAN, 1, kMaxDim);
  auto x = get_array<float>(o, "x", rows * hidden);
  auto w = get_array<float>(o, "weight", hidden);
  auto mean = get_array<float>(o, "mean", rows);
  auto rstd = get_array<float>(o, "rstd", rows);
  auto dy = get_array<float>(o, "gradOut", rows * hidden);
  auto dx = new_array<float>(env, static_cast<size_t>(rows * hidden));
  auto dw = accumulator(o, "gradWeight", hidden);
  auto db = accumulator(o, "gradBias", hidden);
  guard(env, [&] {
    vg::layer_norm_backward<float>(x.data, w.data, mean.data, rstd.data, dy.data, dx.Data(), dw.Data(), db.Data(),
                                   rows, hidden);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("gradInput", dx);
  r.Set("gradWeight", dw);
  r.Set("gradBias", db);
  return r;
}

// ---- rotary embeddings

struct RopeSpec {
  vg::RopeKind kind;
  int64_t num_tokens, head_dim;
  double theta;
  int64_t section[3] = {0, 0, 0};
  View<int32_t> positions;
};

// kind, numTokens, headDim, positions, theta (default 1e6 for text kinds, 1e4 for vision2d), mropeSection.
RopeSpec read_rope_spec(const Napi::Object& o) {
  Napi::Env env = o.Env();
  RopeSpec s{};
  const std::string kind = get_string(o, "kind");
  int64_t per_token = 1;
  if (kind == "1d") {
    s.kind = vg::RopeKind::k1D;
  } else if (kind == "mrope") {
    s.kind = vg::RopeKind::kMRope, per_token = 3;
  } else if (kind == "vision2d") {
    s.kind = vg::RopeKind::kVision2D, per_token = 2;
  } else {
    throw_range(env, "kind must be '1d', 'mrope' or 'vision2d', got '" + kind + "'");
  }
  s.num_tokens = get_int(o, "numTokens", NAN, 0, kMaxDim);
  s.head_dim = get_int(o, "headDim", NAN, 2, kMaxDim);
  s.theta = get_number(o, "theta", s.kind == vg::RopeKind::kVision2D ? 1e4 : 1e6);
  s.positions = get_array<int32_t>(o, "positions", per_token * s.num_tokens);
  if (s.kind == vg::RopeKind::kMRope) {
    Napi::Value v = o.Get("mropeSection");
    if (!v.IsArray()) throw_type(env, "mropeSection is required for kind 'mrope' (an array of 3 integers)");
    Napi::Array a = v.As<Napi::Array>();
    if (a.Length() != 3) throw_range(env, "mropeSection must have 3 entries, got " + std::to_string(a.Length()));
    for (uint32_t i = 0; i < 3; ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw_type(env, "mropeSection[" + std::to_string(i) + "] must be a number");
      const double d = e.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= kMaxDim && d == static_cast<double>(static_cast<int64_t>(d))))
        throw_range(env, "mropeSection[" + std::to_string(i) + "] must be a non-negative integer, got " +
                             std::to_string(d));
      s.section[i] = static_cast<int64_t>(d);
    }
  }
  return s;
}

Napi::Value RopeTables(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "ropeTables");
  const RopeSpec s = read_rope_spec(o);
  const size_t n = static_cast<size_t>(s.num_tokens * (s.head_dim / 2));
  auto cos = new_array<float>(env, n), sin = new_array<float>(env, n);
  guard(env, [&] {
    vg::rope_tables<float>(s.kind, s.positions.data, s.num_tokens, s.head_dim, s.theta, s.section, cos.Data(),
                           sin.Data());
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("cos", cos);
  r.Set("sin", sin);
  return r;
}

Napi::Value RopeApply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "ropeApply");
  const int64_t n = get_int(o, "numTokens", NAN, 0, kMaxDim), heads = get_int(o, "numHeads", NAN, 1, kMaxDim),
                d = get_int(o, "headDim", NAN, 2, kMaxDim);
  const bool inverse = get_bool(o, "inverse", false);
  auto x = get_array<float>(o, "x", n * heads * d);
  auto cos = get_array<float>(o, "cos", n * (d / 2));
  auto sin = get_array<float>(o, "sin", n * (d / 2));
  auto y = new_array<float>(env, static_cast<size_t>(n * heads * d));
  guard(env, [&] { vg::rope_apply<float>(x.data, y.Data(), n, heads, d, cos.data, sin.data, inverse); });
  return y;
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "rope");
  const RopeSpec s = read_rope_spec(o);
  const int64_t heads = get_int(o, "numHeads", NAN, 1, kMaxDim);
  const bool inverse = get_bool(o, "inverse", false);
  auto x = get_array<float>(o, "x", s.num_tokens * heads * s.head_dim);
  auto y = new_array<float>(env, static_cast<size_t>(s.num_tokens * heads * s.head_dim));
  guard(env, [&] {
    std::vector<float> cos(static_cast<size_t>(s.num_tokens * (s.head_dim / 2))), sin(cos.size());
    vg::rope_tables<float>(s.kind, s.positions.data, s.num_tokens, s.head_dim, s.theta, s.section, cos.data(),
                           sin.data());
    vg::rope_apply<float>(x.data, y.Data(), s.num_tokens, heads, s.head_dim, cos.data(), sin.data(), inverse);
  });
  return y;
}

// ---- activations

// Split layout { gate, up } or fused { gateUp, intermediate }; exactly one of them.
bool is_fused(const Napi::Object& o, const char* fn) {
  const bool fused = !o.Get("gateUp").IsUndefined(), split = !o.Get("gate").IsUndefined() || !o.Get("up").IsUndefined();
  if (fused == split)
    throw_type(o.Env(), std::string(fn) + " takes either { gate, up } or { gateUp, intermediate }" +
                            (fused ? ", not both" : ""));
  return fused;
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "swiglu");
  if (is_fused(o, "swiglu")) {
    const int64_t inter = get_int(o, "intermediate", NAN, 1, kMaxDim);
    auto gu = get_array<float>(o, "gateUp");
    if (gu.length % (2 * inter) != 0)
      throw_range(env, "gateUp has length " + std::to_string(gu.length) + ", not a multiple of 2*intermediate = " +
                           std::to_string(2 * inter));
    const int64_t rows = static_cast<int64_t>(gu.length) / (2 * inter);
    auto out = new_array<float>(env, static_cast<size_t>(rows * inter));
    guard(env, [&] { vg::swiglu_fused_forward<float>(gu.data, out.Data(), rows, inter); });
    return out;
  }
  auto gate = get_array<float>(o, "gate");
  auto up = get_array<float>(o, "up", static_cast<int64_t>(gate.length));
  auto out = new_array<float>(env, gate.length);
  guard(env, [&] { vg::swiglu_forward<float>(gate.data, up.data, out.Data(), static_cast<int64_t>(gate.length)); });
  return out;
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "swigluBackward");
  Napi::Object r = Napi::Object::New(env);
  if (is_fused(o, "swigluBackward")) {
    const int64_t inter = get_int(o, "intermediate", NAN, 1, kMaxDim);
    auto gu = get_array<float>(o, "gateUp");
    if (gu.length % (2 * inter) != 0)
      throw_range(env, "gateUp has length " + std::to_string(gu.length) + ", not a multiple of 2*intermediate = " +
                           std::to_string(2 * inter));
    const int64_t rows = static_cast<int64_t>(gu.length) / (2 * inter);
    auto dy = get_array<float>(o, "gradOut", rows * inter);
    auto dgu = new_array<float>(env, gu.length);
    guard(env, [&] { vg::swiglu_fused_backward<float>(gu.data, dy.data, dgu.Data(), rows, inter); });
    r.Set("gradGateUp", dgu);
    return r;
  }
  auto gate = get_array<float>(o, "gate");
  const int64_t n = static_cast<int64_t>(gate.length);
  auto up = get_array<float>(o, "up", n);
  auto dy = get_array<float>(o, "gradOut", n);
  auto dgate = new_array<float>(env, gate.length), dup = new_array<float>(env, gate.length);
  guard(env, [&] { vg::swiglu_backward<float>(gate.data, up.data, dy.data, dgate.Data(), dup.Data(), n); });
  r.Set("gradGate", dgate);
  r.Set("gradUp", dup);
  return r;
}

vg::GeluApprox read_approx(const Napi::Object& o) {
  const std::string a = get_string(o, "approximate", "none");
  if (a == "none") return vg::GeluApprox::kNone;
  if (a == "tanh") return vg::GeluApprox::kTanh;
  throw_range(o.Env(), "approximate must be 'none' or 'tanh', got '" + a + "'");
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "gelu");
  const vg::GeluApprox approx = read_approx(o);
  auto x = get_array<float>(o, "x");
  auto y = new_array<float>(env, x.length);
  guard(env, [&] { vg::gelu_forward<float>(x.data, y.Data(), static_cast<int64_t>(x.length), approx); });
  return y;
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "geluBackward");
  const vg::GeluApprox approx = read_approx(o);
  auto x = get_array<float>(o, "x");
  auto dy = get_array<float>(o, "gradOut", static_cast<int64_t>(x.length));
  auto dx = new_array<float>(env, x.length);
  guard(env, [&] { vg::gelu_backward<float>(x.data, dy.data, dx.Data(), static_cast<int64_t>(x.length), approx); });
  return dx;
}

Napi::Value QuickGelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "quickGelu");
  auto x = get_array<float>(o, "x");
  auto y = new_array<float>(env, x.length);
  guard(env, [&] { vg::quick_gelu_forward<float>(x.data, y.Data(), static_cast<int64_t>(x.length)); });
  return y;
}

Napi::Value QuickGeluBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "quickGeluBackward");
  auto x = get_array<float>(o, "x");
  auto dy = get_array<float>(o, "gradOut", static_cast<int64_t>(x.length));
  auto dx = new_array<float>(env, x.length);
  guard(env, [&] { vg::quick_gelu_backward<float>(x.data, dy.data, dx.Data(), static_cast<int64_t>(x.length)); });
  return dx;
}

}  // namespace

void register_layer_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm, "rmsNorm"));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward, "rmsNormBackward"));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm, "layerNorm"));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward, "layerNormBackward"));
  exports.Set("ropeTables", Napi::Function::New(env, RopeTables, "ropeTables"));
  exports.Set("ropeApply", Napi::Function::New(env, RopeApply, "ropeApply"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  exports.Set("gelu", Napi::Function::New(env, Gelu, "gelu"));
  exports.Set("geluBackward", Napi::Function::New(env, GeluBackward, "geluBackward"));
  exports.Set("quickGelu", Napi::Function::New(env, QuickGelu, "quickGelu"));
  exports.Set("quickGeluBackward", Napi::Function::New(env, QuickGeluBackward, "quickGeluBackward"));
}

}  // namespace vgb
