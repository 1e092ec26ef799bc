// cuBLAS run-time loader and bf16 GEMM: see cublas_loader.h.
#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>

namespace vg {
namespace cuda {
namespace {

// ---- The cuBLAS C API we use, declared from the cuBLAS documentation (cublas_api.h) ----
struct cublasContext;
using cublasHandle_t = cublasContext*;
using cublasStatus_t = int;                 // CUBLAS_STATUS_SUCCESS = 0
constexpr int kCublasOpN = 0, kCublasOpT = 1;  // cublasOperation_t
constexpr int kCublasCompute32F = 68;          // cublasComputeType_t CUBLAS_COMPUTE_32F
constexpr int kCublasGemmDefault = -1;         // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT

using CreateFn = cublasStatus_t (*)(cublasHandle_t*);
using DestroyFn = cublasStatus_t (*)(cublasHandle_t);
using SetStreamFn = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
using GemmExFn = cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void*, const void*, cudaDataType_t,
                                    int, const void*, cudaDataType_t, int, const void*, void*, cudaDataType_t, int,
                                    int, int);
using GemmStridedBatchedExFn = cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void*, const void*,
                                                  cudaDataType_t, int, long long, const void*, cudaDataType_t, int,
                                                  long long, const void*, void*, cudaDataType_t, int, long long, int,
                                                  int, int);

struct Api {
  void* lib = nullptr;
  std::string path;
  CreateFn create = nullptr;
  DestroyFn destroy = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
  GemmStridedBatchedExFn gemm_strided_batched_ex = nullptr;
};

const char* kFix =
    "Install cuBLAS (the CUDA toolkit's libcublas, or `pip install nvidia-cublas`), then either put its lib folder "
    "on LD_LIBRARY_PATH or set VG_CUBLAS_LIB to the full path of libcublas.so.*";

std::vector<std::string> default_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("VG_CUBLAS_LIB"); env && *env) c.emplace_back(env);
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) c.emplace_back(name);
  for (const char* name : {"/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.12"})
    c.emplace_back(name);
  return c;
}

// Preloads libcublasLt from the folder of `path` (when path has a folder) so libcublas resolves it there.
void preload_lt(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return;
  std::string dir = path.substr(0, slash + 1);
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"})
    if (dlopen((dir + name).c_str(), RTLD_NOW | RTLD_GLOBAL)) return;
}

// Tries the candidates in order. On success fills *api and returns ""; otherwise returns the error message.
std::string load(const std::vector<std::string>& candidates, Api* api) {
  std::string tried;
  for (const auto& cand : candidates) {
    preload_lt(cand);
    void* lib = dlopen(cand.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* err = dlerror();
      tried += detail::concat("\n  ", cand, ": ", err ? err : "not found");
      continue;
    }
    Api a;
    a.lib = lib;
    a.path = cand;
    a.create = reinterpret_cast<CreateFn>(dlsym(lib, "cublasCreate_v2"));
    a.destroy = reinterpret_cast<DestroyFn>(dlsym(lib, "cublasDestroy_v2"));
    a.set_stream = reinterpret_cast<SetStreamFn>(dlsym(lib, "cublasSetStream_v2"));
    a.gemm_ex = reinterpret_cast<GemmExFn>(dlsym(lib, "cublasGemmEx"));
    a.gemm_strided_batched_ex = reinterpret_cast<GemmStridedBatchedExFn>(dlsym(lib, "cublasGemmStridedBatchedEx"));
    if (!a.create || !a.destroy || !a.set_stream || !a.gemm_ex || !a.gemm_strided_batched_ex) {
      tried += detail::concat("\n  ", cand, ": loaded, but an entry point (cublasCreate_v2, cublasDestroy_v2, ",
                              "cublasSetStream_v2, cublasGemmEx, cublasGemmStridedBatchedEx) is missing");
      dlclose(lib);
      continue;
    }
    *api = a;
    return "";
  }
  return detail::concat("cuBLAS could not be loaded; tried:", tried, "\n", kFix);
}

std::mutex g_mu;
bool g_tried = false;
Api g_api;
std::string g_error;

const Api& api_or_throw() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_tried) {
    g_error = load(default_candidates(), &g_api);
    g_tried = true;
  }
  if (!g_error.empty()) throw CublasUnavailable(g_error, __FILE__, __LINE__);
  return g_api;
}

const char* status_name(cublasStatus_t s) {
  switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

void check_status(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != 0) throw CudaError(detail::concat("cuBLAS call failed: ", what, ": ", status_name(s), " (", s, ")"), file, line);
}
#define VG_CUBLAS_CHECK(call) check_status((call), #call, __FILE__, __LINE__)

// One handle per (thread, device). Handles are deliberately never destroyed: destroying them from thread-exit or
// static destructors can run after the CUDA runtime has shut down.
cublasHandle_t handle_for(const Api& api, cudaStream_t stream) {
  thread_local std::map<int, cublasHandle_t> handles;
  int dev = 0;
  VG_CUDA_CHECK(cudaGetDevice(&dev));
  auto it = handles.find(dev);
  if (it == handles.end()) {
    cublasHandle_t h = nullptr;
    VG_CUBLAS_CHECK(api.create(&h));
    it = handles.emplace(dev, h).first;
  }
  VG_CUBLAS_CHECK(api.set_stream(it->second, stream));
  return it->second;
}

int to_int(int64_t v, const char* name) {
  VG_CHECK_ARG(v >= 0 && v <= INT_MAX, "gemm_bf16: ", name, " = ", v, " is outside [0, ", INT_MAX, "]");
  return static_cast<int>(v);
}

void check_shapes(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                  cudaDataType_t c_type) {
  VG_CHECK_ARG(M >= 0 && N >= 0 && K >= 0, "gemm_bf16: negative size M=", M, " N=", N, " K=", K);
  VG_CHECK_ARG(lda >= (ta ? M : K) && lda >= 1, "gemm_bf16: lda=", lda, " is smaller than the row length ", (ta ? M : K));
  VG_CHECK_ARG(ldb >= (tb ? K : N) && ldb >= 1, "gemm_bf16: ldb=", ldb, " is smaller than the row length ", (tb ? K : N));
  VG_CHECK_ARG(ldc >= N && ldc >= 1, "gemm_bf16: ldc=", ldc, " is smaller than N=", N);
  VG_CHECK_ARG(c_type == CUDA_R_16BF || c_type == CUDA_R_32F, "gemm_bf16: C must be bf16 or fp32 (cudaDataType ",
               static_cast<int>(c_type), ")");
}

}  // namespace

bool cublas_available(std::string* why) {
  try {
    api_or_throw();
    return true;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

std::string cublas_loaded_path() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_error.empty() && g_tried ? g_api.path : std::string();
}

std::string cublas_probe_candidates(const std::vector<std::string>& candidates) {
  Api a;
  std::string err = load(candidates, &a);
  if (err.empty()) dlclose(a.lib);  // balanced with load's dlopen; the process-wide copy keeps its own reference
  return err;
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, void* C, cudaDataType_t c_type, int64_t ldc,
               cudaStream_t stream) {
  check_shapes(trans_a, trans_b, M, N, K, lda, ldb, ldc, c_type);
  if (M == 0 || N == 0) return;
  const Api& api = api_or_throw();
  cublasHandle_t h = handle_for(api, stream);
  // Column-major Cᵀ[N, M] = op(B)ᵀ[N, K] · op(A)ᵀ[K, M]; see the header.
  VG_CUBLAS_CHECK(api.gemm_ex(h, trans_b ? kCublasOpT : kCublasOpN, trans_a ? kCublasOpT : kCublasOpN,
                              to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B, CUDA_R_16BF,
                              to_int(ldb, "ldb"), A, CUDA_R_16BF, to_int(lda, "lda"), &beta, C, c_type,
                              to_int(ldc, "ldc"), kCublasCompute32F, kCublasGemmDefault));
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, float* C, cudaStream_t stream) {
  gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, CUDA_R_32F, N,
            stream);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, bf16* C, cudaStream_t stream) {
  gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, CUDA_R_16BF, N,
            stream);
}

void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                               const bf16* A, int64_t lda, int64_t stride_a, const bf16* B, int64_t ldb,
                               int64_t stride_b, float beta, void* C, cudaDataType_t c_type, int64_t ldc,
                               int64_t stride_c, int64_t batch, cudaStream_t stream) {
  check_shapes(trans_a, trans_b, M, N, K, lda, ldb, ldc, c_type);
  VG_CHECK_ARG(batch >= 0, "gemm_bf16_strided_batched: batch=", batch, " < 0");
  if (M == 0 || N == 0 || batch == 0) return;
  const Api& api = api_or_throw();
  cublasHandle_t h = handle_for(api, stream);
  VG_CUBLAS_CHECK(api.gemm_strided_batched_ex(
      h, trans_b ? kCublasOpT : kCublasOpN, trans_a ? kCublasOpT : kCublasOpN, to_int(N, "N"), to_int(M, "M"),
      to_int(K, "K"), &alpha, B, CUDA_R_16BF, to_int(ldb, "ldb"), stride_b, A, CUDA_R_16BF, to_int(lda, "lda"),
      stride_a, &beta, C, c_type, to_int(ldc, "ldc"), stride_c, to_int(batch, "batch"), kCublasCompute32F,
      kCublasGemmDefault));
}

}  // namespace cuda
}  // namespace vg
