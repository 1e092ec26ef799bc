// attention({ q, k, v, cuSeqlensQ, cuSeqlensK?, numHeads, numKvHeads, headDim, causal?, scale? })
//   -> { out, lse }
// attentionBackward({ ...same, out, lse, gradOut }) -> { gradQ, gradK, gradV }
// attentionNaive / attentionNaiveBackward: the materialising baseline with the same options and results
// (for benchmarks and cross-checks). Float32 arrays, int32 cu_seqlens; layout and math in native/cpu/attention.h.
#include <cmath>

#include "common.h"
#include "cpu/attention.h"

namespace vgb {
namespace {

struct AttentionArgs {
  vg::AttentionDims dims;
  View<float> q, k, v;
  View<int32_t> cu_q, cu_k;
};

// Reads and length-checks the options shared by all four functions. cu_seqlens contents (start at 0,
// non-decreasing, last = total) are checked by native code, which throws ArgumentError -> RangeError.
AttentionArgs read_args(const Napi::Object& o) {
  Napi::Env env = o.Env();
  AttentionArgs a;
  const int64_t hq = get_int(o, "numHeads", NAN, 1, INT32_MAX), hkv = get_int(o, "numKvHeads", NAN, 1, INT32_MAX),
                d = get_int(o, "headDim", NAN, 1, INT32_MAX);
  a.q = get_array<float>(o, "q");
  a.k = get_array<float>(o, "k");
  a.v = get_array<float>(o, "v", static_cast<int64_t>(a.k.length));
  if (a.q.length % (hq * d) != 0)
    throw_range(env, "q has length " + std::to_string(a.q.length) + ", not a multiple of numHeads*headDim = " +
                         std::to_string(hq * d));
  if (a.k.length % (hkv * d) != 0)
    throw_range(env, "k has length " + std::to_string(a.k.length) + ", not a multiple of numKvHeads*headDim = " +
                         std::to_string(hkv * d));
  a.cu_q = get_array<int32_t>(o, "cuSeqlensQ");
  if (a.cu_q.length < 1) throw_range(env, "cuSeqlensQ must have at least 1 entry (B + 1 for B sequences)");
  a.cu_k = get_array<int32_t>(o, "cuSeqlensK", static_cast<int64_t>(a.cu_q.length), true);
  if (!a.cu_k.data) a.cu_k = a.cu_q;
  a.dims.batch = static_cast<int64_t>(a.cu_q.length) - 1;
  a.dims.total_q = static_cast<int64_t>(a.q.length) / (hq * d);
  a.dims.total_k = static_cast<int64_t>(a.k.length) / (hkv * d);
  a.dims.num_heads = hq;
  a.dims.num_kv_heads = hkv;
  a.dims.head_dim = d;
  a.dims.causal = get_bool(o, "causal", false);
  a.dims.scale = get_number(o, "scale", vg::AttentionDims::default_scale(d));
  return a;
}

Napi::Value Forward(const Napi::CallbackInfo& info, const char* name, bool naive) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, name);
  AttentionArgs a = read_args(o);
  auto out = new_array<float>(env, a.q.length);
  auto lse = new_array<float>(env, static_cast<size_t>(a.dims.num_heads * a.dims.total_q));
  guard(env, [&] {
    (naive ? vg::attention_forward_materialized<float> : vg::attention_forward<float>)(
        a.dims, a.q.data, a.k.data, a.v.data, a.cu_q.data, a.cu_k.data, out.Data(), lse.Data());
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", out);
  r.Set("lse", lse);
  return r;
}

Napi::Value Backward(const Napi::CallbackInfo& info, const char* name, bool naive) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, name);
  AttentionArgs a = read_args(o);
  auto out = get_array<float>(o, "out", static_cast<int64_t>(a.q.length));
  auto lse = get_array<float>(o, "lse", a.dims.num_heads * a.dims.total_q);
  auto dout = get_array<float>(o, "gradOut", static_cast<int64_t>(a.q.length));
  auto dq = new_array<float>(env, a.q.length);
  auto dk = new_array<float>(env, a.k.length);
  auto dv = new_array<float>(env, a.v.length);
  guard(env, [&] {
    (naive ? vg::attention_backward_materialized<float> : vg::attention_backward<float>)(
        a.dims, a.q.data, a.k.data, a.v.data, out.data, lse.data, dout.data, a.cu_q.data, a.cu_k.data, dq.Data(),
        dk.Data(), dv.Data());
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("gradQ", dq);
  r.Set("gradK", dk);
  r.Set("gradV", dv);
  return r;
}

Napi::Value Attention(const Napi::CallbackInfo& info) { return Forward(info, "attention", false); }
Napi::Value AttentionNaive(const Napi::CallbackInfo& info) { return Forward(info, "attentionNaive", true); }
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) { return Backward(info, "attentionBackward", false); }
Napi::Value AttentionNaiveBackward(const Napi::CallbackInfo& info) {
  return Backward(info, "attentionNaiveBackward", true);
}

}  // namespace

void register_attention_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
  exports.Set("attentionNaive", Napi::Function::New(env, AttentionNaive, "attentionNaive"));
  exports.Set("attentionNaiveBackward", Napi::Function::New(env, AttentionNaiveBackward, "attentionNaiveBackward"));
}

}  // namespace vgb
