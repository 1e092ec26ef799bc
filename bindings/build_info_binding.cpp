// buildInfo(), cudaInfo(), setNumThreads(), getNumThreads().
#include "build_config.h"
#include "common.h"
#include "core/build_info.h"
#include "core/parallel.h"

namespace vgb {

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  vg::BuildInfo b = vg::build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", b.version);
  o.Set("blas", b.blas);
  o.Set("blasAvailable", b.blas_available);
  o.Set("cudaCompiled", b.cuda_compiled);
  o.Set("cudaToolkit", b.cuda_toolkit);
  o.Set("glooAvailable", VG_BUILD_HAVE_GLOO != 0);  // CPU collectives (data-parallel training)
  o.Set("cpuFlags", b.cpu_flags);
  o.Set("buildType", b.build_type);
  o.Set("sanitize", b.sanitize);
  o.Set("compiler", b.compiler);
  o.Set("buildTime", b.build_time);
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return o;
}

static Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  vg::CudaRuntimeInfo c = vg::cuda_runtime_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", c.compiled);
  o.Set("toolkitVersion", vg::build_info().cuda_toolkit);
  o.Set("runtimeVersion", c.runtime_version);
  o.Set("driverVersion", c.driver_version);
  o.Set("status", c.status);
  o.Set("kernelOk", c.kernel_ok);
  Napi::Array gpus = Napi::Array::New(env, c.gpus.size());
  for (size_t i = 0; i < c.gpus.size(); ++i) {
    const auto& g = c.gpus[i];
    Napi::Object go = Napi::Object::New(env);
    go.Set("index", g.index);
    go.Set("name", g.name);
    go.Set("computeCapability", std::to_string(g.major) + "." + std::to_string(g.minor));
    go.Set("totalMemory", static_cast<double>(g.total_memory));
    go.Set("multiprocessors", g.multiprocessors);
    gpus.Set(static_cast<uint32_t>(i), go);
  }
  o.Set("gpus", gpus);
  return o;
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "setNumThreads(n) expects a number");
  double n = info[0].As<Napi::Number>().DoubleValue();
  if (n != std::floor(n) || n < 0 || n > 1024)
    throw_range(env, "setNumThreads: n must be an integer in [0, 1024] (0 = all hardware threads), got " +
                         std::to_string(n));
  vg::set_num_threads(static_cast<int>(n));
  return Napi::Number::New(env, vg::num_threads());
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), vg::num_threads());
}

void register_build_info(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
}

}  // namespace vgb
