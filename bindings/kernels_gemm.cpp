// gemm({ a, b, c?, m, n, k, transA?, transB?, alpha?, beta?, batch?, builtin? }) -> Float32Array c
// and linear / linearBackward. Row-major; see native/cpu/gemm.h and native/cpu/linear.h.
#include "common.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"

namespace vgb {

static Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "gemm");
  const int64_t m = get_int(o, "m", NAN, 0, INT32_MAX), n = get_int(o, "n", NAN, 0, INT32_MAX),
                k = get_int(o, "k", NAN, 0, INT32_MAX), batch = get_int(o, "batch", 1, 1, INT32_MAX);
  const bool tA = get_bool(o, "transA", false), tB = get_bool(o, "transB", false), builtin = get_bool(o, "builtin", false);
  const float alpha = static_cast<float>(get_number(o, "alpha", 1.0)), beta = static_cast<float>(get_number(o, "beta", 0.0));
  auto a = get_array<float>(o, "a", batch * m * k);
  auto b = get_array<float>(o, "b", batch * k * n);
  auto cin = get_array<float>(o, "c", batch * m * n, true);
  auto c = new_array<float>(env, static_cast<size_t>(batch * m * n));
  if (cin.data) std::copy(cin.data, cin.data + cin.length, c.Data());
  const int64_t lda = tA ? m : k, ldb = tB ? k : n;
  guard(env, [&] {
    if (builtin) {
      for (int64_t i = 0; i < batch; ++i)
        vg::gemm_builtin<float>(tA, tB, m, n, k, alpha, a.data + i * m * k, lda, b.data + i * k * n, ldb, beta,
                                c.Data() + i * m * n, n);
    } else {
      vg::gemm_strided_batched<float>(tA, tB, m, n, k, alpha, a.data, lda, m * k, b.data, ldb, k * n, beta, c.Data(),
                                      n, m * n, batch);
    }
  });
  return c;
}

static Napi::Value Linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "linear");
  const int64_t rows = get_int(o, "rows", NAN, 0, INT32_MAX), in = get_int(o, "inFeatures", NAN, 1, INT32_MAX),
                out = get_int(o, "outFeatures", NAN, 1, INT32_MAX);
  auto x = get_array<float>(o, "x", rows * in);
  auto w = get_array<float>(o, "weight", out * in);
  auto bias = get_array<float>(o, "bias", out, true);
  auto y = new_array<float>(env, static_cast<size_t>(rows * out));
  guard(env, [&] { vg::linear_forward<float>(x.data, w.data, bias.data, y.Data(), rows, in, out); });
  return y;
}

static Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "linearBackward");
  const int64_t rows = get_int(o, "rows", NAN, 0, INT32_MAX), in = get_int(o, "inFeatures", NAN, 1, INT32_MAX),
                out = get_int(o, "outFeatures", NAN, 1, INT32_MAX);
  auto x = get_array<float>(o, "x", rows * in);
  auto w = get_array<float>(o, "weight", out * in);
  auto dy = get_array<float>(o, "gradOutput", rows * out);
  const bool withBias = get_bool(o, "bias", true);
  auto dx = new_array<float>(env, static_cast<size_t>(rows * in));
  auto dw = new_array<float>(env, static_cast<size_t>(out * in));
  auto db = new_array<float>(env, withBias ? static_cast<size_t>(out) : 0);
  guard(env, [&] {
    vg::linear_backward<float>(x.data, w.data, dy.data, dx.Data(), dw.Data(), withBias ? db.Data() : nullptr, rows,
                               in, out);
  });
  Napi::Object r = Napi::Object::New(env);
  r.Set("gradInput", dx);
  r.Set("gradWeight", dw);
  if (withBias) r.Set("gradBias", db);
  return r;
}

void register_gemm_kernels(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("linear", Napi::Function::New(env, Linear, "linear"));
  exports.Set("linearBackward", Napi::Function::New(env, LinearBackward, "linearBackward"));
}

}  // namespace vgb
