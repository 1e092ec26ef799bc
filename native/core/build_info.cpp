#include "core/build_info.h"

#include "build_config.h"
#include "core/blas.h"

#ifndef VG_VERSION
#define VG_VERSION "0.0.0-dev"
#endif

namespace vg {

BuildInfo build_info() {
  BuildInfo b;
  b.version = VG_VERSION;
  b.blas = blas_name();
  b.blas_available = blas_available();
  b.cuda_compiled = VG_HAVE_CUDA != 0;
  b.cuda_toolkit = VG_BUILD_CUDA_VERSION;
  b.cpu_flags = VG_BUILD_CPU_FLAGS;
  b.build_type = VG_BUILD_TYPE;
  b.sanitize = VG_BUILD_SANITIZE;
  b.compiler = VG_BUILD_COMPILER;
  b.build_time = VG_BUILD_TIME;
  return b;
}

}  // namespace vg
