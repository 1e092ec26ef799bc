// Helpers for the GPU tests (test_cuda_*.cpp, compiled only when VG_HAVE_CUDA): the skip gate, device round
// trips and error measures. Each GPU test starts with VG_CUDA_TEST_REQUIRE_GPU(); without a usable GPU it prints
// one "skipped: no CUDA device (reason)" line and returns (the test passes), so the suite runs on CI machines
// that have nvcc but no GPU.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "test_framework.h"

namespace vgtest {

inline bool cuda_gpu_present(const char* test_name) {
  const auto& a = vg::cuda::cuda_available();
  const std::string name(test_name);
  const std::string shown = name.rfind("vg_test_fn_", 0) == 0 ? name.substr(11) : name;  // VG_TEST's function name
  if (!a.ok) std::printf("     %s skipped: no CUDA device (%s)\n", shown.c_str(), a.reason.c_str());
  return a.ok;
}

// ‖a − b‖₂ / ‖b‖₂ over n elements (NaN anywhere gives +inf).
template <typename A, typename B>
double rel_l2(const A* a, const B* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (std::isnan(x) || std::isnan(y)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Random floats rounded to bf16, so CPU references see exactly the GPU's inputs.
inline std::vector<float> randn_bf16(size_t n, std::mt19937_64& g, double scale = 1.0, double mean = 0.0) {
  auto v = randn<float>(n, g, scale);
  for (auto& x : v) x = static_cast<float>(x + mean);
  return vg::cuda::round_to_bf16(v);
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

inline vg::cuda::DeviceBuffer<vg::cuda::bf16> device_bf16(const std::vector<float>& v) {
  return vg::cuda::to_device(vg::cuda::to_bf16(v));
}
inline std::vector<float> host_float(const vg::cuda::DeviceBuffer<vg::cuda::bf16>& d) {
  return vg::cuda::to_float(d.to_host());
}

}  // namespace vgtest

// Skips the current test (one visible line) when no usable GPU is present.
#define VG_CUDA_TEST_REQUIRE_GPU()                                 \
  do {                                                             \
    if (!::vgtest::cuda_gpu_present(__func__)) return;             \
  } while (0)

// Relative L2 error of two arrays within `tol` (the test's written tolerance).
#define VG_EXPECT_REL_L2(a, b, n, tol)                                                                          \
  do {                                                                                                          \
    const double vg_rel_ = ::vgtest::rel_l2((a), (b), (n));                                                     \
    if (!(vg_rel_ <= (tol)))                                                                                    \
      throw ::vgtest::Failure(::vg::detail::concat(__FILE__, ":", __LINE__, ": ", #a, " vs ", #b,               \
                                                   ": relative L2 error ", vg_rel_, " > ", (tol)));            \
  } while (0)
