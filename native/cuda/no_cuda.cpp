// Built instead of the CUDA sources when nvcc was not found at build time.
#include "core/build_info.h"

namespace vg {
CudaRuntimeInfo cuda_runtime_info() {
  CudaRuntimeInfo info;
  info.status = "this build has no CUDA (nvcc was not found at build time); using the CPU";
  return info;
}
}  // namespace vg
