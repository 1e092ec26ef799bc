// The addon's entry point: each binding file registers its functions on `exports`.
#include <napi.h>

namespace vgb {
void register_build_info(Napi::Env env, Napi::Object exports);
void register_gemm_kernels(Napi::Env env, Napi::Object exports);
void register_logprob_kernels(Napi::Env env, Napi::Object exports);
void register_grpo_kernels(Napi::Env env, Napi::Object exports);
void register_attention_kernels(Napi::Env env, Napi::Object exports);
void register_layer_kernels(Napi::Env env, Napi::Object exports);
void register_model(Napi::Env env, Napi::Object exports);
void register_communicator(Napi::Env env, Napi::Object exports);
}  // namespace vgb

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vgb::register_build_info(env, exports);
  vgb::register_gemm_kernels(env, exports);
  vgb::register_logprob_kernels(env, exports);
  vgb::register_grpo_kernels(env, exports);
  vgb::register_attention_kernels(env, exports);
  vgb::register_layer_kernels(env, exports);
  vgb::register_model(env, exports);
  vgb::register_communicator(env, exports);
  return exports;
}

NODE_API_MODULE(vlm_grpo, Init)
