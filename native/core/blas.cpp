#include "core/blas.h"

#include "build_config.h"

#if VG_HAVE_BLAS
#include <cblas.h>
#endif

namespace vg {

bool blas_available() { return VG_HAVE_BLAS != 0; }

std::string blas_name() {
#if VG_HAVE_BLAS
  std::string s = openblas_get_config();
  int par = openblas_get_parallel();
  s += par == 0 ? " (sequential)" : par == 1 ? " (pthreads)" : " (OpenMP)";
  return s;
#else
  return VG_BUILD_BLAS_NAME;
#endif
}

void blas_set_num_threads(int n) {
#if VG_HAVE_BLAS
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace vg
