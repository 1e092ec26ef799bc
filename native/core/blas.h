// Which BLAS the core was built with. GEMM itself lives in cpu/gemm.h.
#pragma once
#include <string>

namespace vg {
// "OpenBLAS 0.3.21 (pthread)" or "built-in (cache-blocked, no BLAS found at build time)".
std::string blas_name();
bool blas_available();
void blas_set_num_threads(int n);
}  // namespace vg
