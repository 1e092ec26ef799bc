// What this build of the native core contains and what the machine offers at run time.
#pragma once
#include <string>
#include <vector>

namespace vg {

struct GpuInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;      // compute capability
  size_t total_memory = 0;       // bytes
  int multiprocessors = 0;
};

struct CudaRuntimeInfo {
  bool compiled = false;         // CUDA sources were compiled into this build
  std::string toolkit_version;   // nvcc version used at build time
  int runtime_version = 0;       // e.g. 13000
  int driver_version = 0;        // 0 when no driver is installed
  std::vector<GpuInfo> gpus;
  std::string status;            // "ok", or why the GPU path cannot be used (one clear line)
  bool kernel_ok = false;        // a probe kernel ran and returned the right answer
};

struct BuildInfo {
  std::string version;
  std::string blas;              // BLAS in use (or the built-in GEMM)
  bool blas_available = false;
  bool cuda_compiled = false;
  std::string cuda_toolkit;
  std::string cpu_flags;         // compile flags for the CPU code (-march=native or generic)
  std::string build_type;
  std::string sanitize;
  std::string compiler;
  std::string build_time;
};

BuildInfo build_info();
// Probes the CUDA driver and devices; never throws (failures are reported in `status`).
CudaRuntimeInfo cuda_runtime_info();

}  // namespace vg
