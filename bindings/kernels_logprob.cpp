// logprobs / logprobsBackward (chunked log-prob gather, native/cpu/logprob.h) and sample (the sampler,
// native/cpu/sampling.h). Each takes one options object; float32 in, float32 out.
#include <cmath>
#include <cstdint>

#include "common.h"
#include "cpu/logprob.h"
#include "cpu/sampling.h"

namespace vgb {

namespace {

struct LogprobDims {
  int64_t n, h, v, chunk;
  double temperature;
  bool full;
};

LogprobDims logprob_dims(const Napi::Object& o) {
  LogprobDims d;
  d.n = get_int(o, "numTokens", NAN, 0, INT32_MAX);
  d.h = get_int(o, "hiddenSize", NAN, 1, INT32_MAX);
  d.v = get_int(o, "vocabSize", NAN, 1, INT32_MAX);
  d.chunk = get_int(o, "chunkSize", static_cast<double>(vg::kLogprobDefaultChunk), 1, INT32_MAX);
  d.temperature = get_number(o, "temperature", 1.0);
  d.full = get_bool(o, "fullLogits", false);
  return d;
}

}  // namespace

static Napi::Value Logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "logprobs");
  const LogprobDims d = logprob_dims(o);
  auto h = get_array<float>(o, "hidden", d.n * d.h);
  auto w = get_array<float>(o, "lmHead", d.v * d.h);
  auto t = get_array<int32_t>(o, "targets", d.n);
  const bool with_entropy = get_bool(o, "withEntropy", false);
  auto lp = new_array<float>(env, static_cast<size_t>(d.n));
  auto lse = new_array<float>(env, static_cast<size_t>(d.n));
  auto ent = new_array<float>(env, with_entropy ? static_cast<size_t>(d.n) : 0);
  float* ent_ptr = with_entropy ? ent.Data() : nullptr;
  guard(env, [&] {
    if (d.full)
      vg::logprob_forward_full<float>(h.data, w.data, t.data, lp.Data(), ent_ptr, lse.Data(), d.n, d.h, d.v,
                                      d.temperature);
    else
      vg::logprob_forward<float>(h.data, w.data, t.data, lp.Data(), ent_ptr, lse.Data(), d.n, d.h, d.v, d.temperature,
                                 d.chunk);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("logprobs", lp);
  if (with_entropy) r.Set("entropy", ent);
  r.Set("logsumexp", lse);
  return r;
}

static Napi::Value LogprobsBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "logprobsBackward");
  const LogprobDims d = logprob_dims(o);
  auto h = get_array<float>(o, "hidden", d.n * d.h);
  auto w = get_array<float>(o, "lmHead", d.v * d.h);
  auto t = get_array<int32_t>(o, "targets", d.n);
  auto lse = get_array<float>(o, "logsumexp", d.n);
  auto gl = get_array<float>(o, "gradLogprobs", d.n);
  auto ge = get_array<float>(o, "gradEntropy", d.n, true);
  auto ent = get_array<float>(o, "entropy", d.n, true);
  auto dh = new_array<float>(env, static_cast<size_t>(d.n * d.h));
  auto dw = new_array<float>(env, static_cast<size_t>(d.v * d.h));
  guard(env, [&] {
    if (d.full)
      vg::logprob_backward_full<float>(h.data, w.data, t.data, lse.data, gl.data, ge.data, ent.data, dh.Data(),
                                       dw.Data(), d.n, d.h, d.v, d.temperature);
    else
      vg::logprob_backward<float>(h.data, w.data, t.data, lse.data, gl.data, ge.data, ent.data, dh.Data(), dw.Data(),
                                  d.n, d.h, d.v, d.temperature, d.chunk);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("gradHidden", dh);
  r.Set("gradLmHead", dw);
  return r;
}

static Napi::Value Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "sample");
  const int64_t rows = get_int(o, "numRows", NAN, 0, INT32_MAX), vocab = get_int(o, "vocabSize", NAN, 1, INT32_MAX);
  auto logits = get_array<float>(o, "logits", rows * vocab);
  // seed: a non-negative integer up to 2^53 - 1 (exactly representable in a JS number); key = (low, high) halves.
  const int64_t seed = get_int(o, "seed", NAN, 0, (int64_t(1) << 53) - 1);

  // sequenceIds: Uint32Array, or Int32Array with non-negative entries (same bits as uint32 then).
  const uint32_t* seq = nullptr;
  {
    Napi::Value v = o.Get("sequenceIds");
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      auto a = get_array<int32_t>(o, "sequenceIds", rows);
      for (size_t i = 0; i < a.length; ++i)
        if (a.data[i] < 0)
          throw_range(env, "sequenceIds[" + std::to_string(i) + "] = " + std::to_string(a.data[i]) + " must be >= 0");
      seq = reinterpret_cast<const uint32_t*>(a.data);
    } else if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
      seq = get_array<uint32_t>(o, "sequenceIds", rows).data;
    } else {
      throw_type(env, "sequenceIds must be an Int32Array or a Uint32Array");
    }
  }
  auto pos = get_array<int32_t>(o, "positions", rows);
  for (size_t i = 0; i < pos.length; ++i)
    if (pos.data[i] < 0)
      throw_range(env, "positions[" + std::to_string(i) + "] = " + std::to_string(pos.data[i]) + " must be >= 0");

  vg::SamplingOptions so;
  so.seed = static_cast<uint64_t>(seed);
  so.temperature = get_number(o, "temperature", 1.0);
  so.top_k = get_int(o, "topK", 0, 0, INT32_MAX);
  so.top_p = get_number(o, "topP", 1.0);
  so.min_p = get_number(o, "minP", 0.0);
  auto banned = get_array<int32_t>(o, "bannedTokens", -1, true);
  so.banned = banned.data;
  so.num_banned = static_cast<int64_t>(banned.length);

  auto tokens = new_array<int32_t>(env, static_cast<size_t>(rows));
  auto lp = new_array<float>(env, static_cast<size_t>(rows));
  auto flp = new_array<float>(env, static_cast<size_t>(rows));
  guard(env, [&] {
    vg::sample_tokens<float>(logits.data, rows, vocab, seq, reinterpret_cast<const uint32_t*>(pos.data), so,
                             tokens.Data(), lp.Data(), flp.Data());
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("tokens", tokens);
  r.Set("logprobs", lp);
  r.Set("filteredLogprobs", flp);
  return r;
}

void register_logprob_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("logprobs", Napi::Function::New(env, Logprobs, "logprobs"));
  exports.Set("logprobsBackward", Napi::Function::New(env, LogprobsBackward, "logprobsBackward"));
  exports.Set("sample", Napi::Function::New(env, Sample, "sample"));
}

}  // namespace vgb
