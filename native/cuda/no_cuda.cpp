// Built instead of the CUDA sources when nvcc was not found at build time.
#include "core/build_info.h"
#include "cuda/available.h"

namespace vg {
CudaRuntimeInfo cuda_runtime_info() {
  CudaRuntimeInfo info;
  info.status = "this build has no CUDA (nvcc was not found at build time); using the CPU";
  return info;
}

namespace cuda {
const Availability& cuda_available() {
  static const Availability a{false, cuda_runtime_info().status};
  return a;
}
}  // namespace cuda
}  // namespace vg
