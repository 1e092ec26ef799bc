#include "io/dtype_convert.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {

DType dtype_from_string(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  VG_CHECK_ARG(false, "unsupported tensor dtype '", s, "' (supported: F32, F16, BF16, F64)");
  return DType::F32;
}

int dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F64: return 8;
  }
  return 0;
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      u = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | mant << 13;  // inf / NaN
  } else {
    u = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                        // below the smallest normal half: subnormal or zero
    float a;
    std::memcpy(&a, &abs, 4);
    // Scale so the subnormal unit (2^-24) becomes 1, then round to nearest even.
    float scaled = a * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t mant = abs & 0x7fffff;
  uint32_t exp = (abs >> 23) - 127 + 15;
  uint32_t h = exp << 10 | mant >> 13;
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: still correct
  return sign | static_cast<uint16_t>(h);
}

template <typename T>
void convert_to(const void* src, DType t, int64_t n, T* dst) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      switch (t) {
        case DType::F32: {
          float v;
          std::memcpy(&v, s + 4 * i, 4);
          dst[i] = static_cast<T>(v);
          break;
        }
        case DType::F64: {
          double v;
          std::memcpy(&v, s + 8 * i, 8);
          dst[i] = static_cast<T>(v);
          break;
        }
        case DType::BF16: {
          uint16_t h;
          std::memcpy(&h, s + 2 * i, 2);
          dst[i] = static_cast<T>(bf16_to_f32(h));
          break;
        }
        case DType::F16: {
          uint16_t h;
          std::memcpy(&h, s + 2 * i, 2);
          dst[i] = static_cast<T>(f16_to_f32(h));
          break;
        }
      }
    }
  });
}

void convert_from_f32(const float* src, int64_t n, DType t, void* dst) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  VG_CHECK_ARG(t != DType::F64, "convert_from_f32: F64 output is not supported");
  parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (t == DType::F32) {
        std::memcpy(d + 4 * i, src + i, 4);
      } else {
        uint16_t h = t == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
    }
  });
}

template void convert_to<float>(const void*, DType, int64_t, float*);
template void convert_to<double>(const void*, DType, int64_t, double*);

}  // namespace vg
