// exp(x) that loops can vectorise (std::exp does not without -ffast-math, and one libm call per score would cost
// more than the flops around it). Cephes' expf: Cody-Waite reduction by ln 2, degree-7 polynomial, scale by 2^n
// through the exponent bits; relative error about 2 ulp. x < -87 (including -inf) gives exactly 0; x is clamped
// to 88 so the result stays finite. The double overload is std::exp (double builds exist for gradient checks,
// where accuracy matters more than speed). Used by the flash attention, decode attention and sampling kernels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace vg {

inline float exp_fast(float x) {
  const bool tiny = x < -87.0f;
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2): 1.5*2^23 trick
  const float f = (x - n * 0.693359375f) + n * 2.12194440e-4f;             // x - n*ln2 in two parts
  float y = 1.9875691500e-4f;
  y = y * f + 1.3981999507e-3f;
  y = y * f + 8.3334519073e-3f;
  y = y * f + 4.1665795894e-2f;
  y = y * f + 1.6666665459e-1f;
  y = y * f + 5.0000001201e-1f;
  y = y * (f * f) + f + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 127]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return tiny ? 0.0f : y * scale;
}

inline double exp_fast(double x) { return std::exp(x); }

}  // namespace vg
