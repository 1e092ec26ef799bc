#include "cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {
namespace {

void check_dims(const char* fn, RopeKind kind, int64_t head_dim) {
  VG_CHECK_ARG(head_dim >= 2 && head_dim % 2 == 0, fn, ": head_dim must be even and >= 2, got ", head_dim);
  if (kind == RopeKind::kVision2D)
    VG_CHECK_ARG(head_dim % 4 == 0, fn, ": vision2d rotary needs head_dim divisible by 4 (h and w halves), got ",
                 head_dim);
}

}  // namespace

template <typename T>
void rope_inv_freq(RopeKind kind, int64_t head_dim, double theta, T* inv_freq) {
  check_dims("rope_inv_freq", kind, head_dim);
  VG_CHECK_ARG(std::isfinite(theta) && theta > 0, "rope_inv_freq: theta must be finite and > 0, got ", theta);
  // Vision: HF's VisionRotaryEmbedding(dim = head_dim/2) builds 1/theta^(arange(0, dim, 2)/dim).
  const int64_t denom = kind == RopeKind::kVision2D ? head_dim / 2 : head_dim;
  const int64_t count = denom / 2;
  const T base = static_cast<T>(theta);
  for (int64_t k = 0; k < count; ++k) {
    const T e = static_cast<T>(2 * k) / static_cast<T>(denom);  // float32 division for T = float, as in HF
    inv_freq[k] = T(1) / std::pow(base, e);
  }
}

template <typename T>
void rope_tables(RopeKind kind, const int32_t* positions, int64_t n, int64_t head_dim, double theta,
                 const int64_t* mrope_section, T* cos, T* sin) {
  check_dims("rope_tables", kind, head_dim);
  VG_CHECK_ARG(n >= 0, "rope_tables: num_tokens must be >= 0, got ", n);
  const int64_t half = head_dim / 2;
  // Per rotation pair k: which position row it reads (component) and which frequency.
  std::vector<int> comp(static_cast<size_t>(half), 0);
  std::vector<T> freq(static_cast<size_t>(half));
  if (kind == RopeKind::kMRope) {
    VG_CHECK_ARG(mrope_section != nullptr, "rope_tables: mrope needs mrope_section");
    const int64_t s0 = mrope_section[0], s1 = mrope_section[1], s2 = mrope_section[2];
    VG_CHECK_ARG(s0 >= 0 && s1 >= 0 && s2 >= 0 && s0 + s1 + s2 == half, "rope_tables: mrope_section [", s0, ", ", s1,
                 ", ", s2, "] must be >= 0 and sum to head_dim/2 = ", half, " (sum ", s0 + s1 + s2, ")");
    for (int64_t k = 0; k < half; ++k) comp[k] = k < s0 ? 0 : (k < s0 + s1 ? 1 : 2);
  }
  if (kind == RopeKind::kVision2D) {
    const int64_t q = head_dim / 4;
    rope_inv_freq<T>(kind, head_dim, theta, freq.data());                      // q values
    for (int64_t j = 0; j < q; ++j) freq[q + j] = freq[j], comp[q + j] = 1;  // second half: wpos, same freqs
  } else {
    rope_inv_freq<T>(kind, head_dim, theta, freq.data());
  }
  if (n == 0) return;
  VG_CHECK_ARG(positions != nullptr, "rope_tables: positions is null");
  parallel_for(0, n, std::max<int64_t>(1, 4096 / half), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int32_t pos[3];
      switch (kind) {
        case RopeKind::k1D: pos[0] = positions[t]; break;
        case RopeKind::kMRope: for (int c = 0; c < 3; ++c) pos[c] = positions[c * n + t]; break;
        case RopeKind::kVision2D: pos[0] = positions[2 * t], pos[1] = positions[2 * t + 1]; break;
      }
      T* ct = cos + t * half;
      T* st = sin + t * half;
      for (int64_t k = 0; k < half; ++k) {
        const T angle = static_cast<T>(pos[comp[k]]) * freq[k];  // fp32 product for T = float, as in HF
        ct[k] = std::cos(angle);
        st[k] = std::sin(angle);
      }
    }
  });
}

template <typename T>
void rope_apply(const T* x, int64_t x_stride, T* y, int64_t y_stride, int64_t num_tokens, int64_t heads,
                int64_t head_dim, const T* cos, const T* sin, bool inverse) {
  check_dims("rope_apply", RopeKind::k1D, head_dim);
  VG_CHECK_ARG(num_tokens >= 0, "rope_apply: num_tokens must be >= 0, got ", num_tokens);
  VG_CHECK_ARG(heads >= 1, "rope_apply: heads must be >= 1, got ", heads);
  VG_CHECK_ARG(x_stride >= heads * head_dim && y_stride >= heads * head_dim, "rope_apply: token strides (x ",
               x_stride, ", y ", y_stride, ") must be >= heads*head_dim = ", heads * head_dim);
  const int64_t half = head_dim / 2;
  const T sign = inverse ? T(-1) : T(1);
  parallel_for(0, num_tokens, std::max<int64_t>(1, 8192 / (heads * head_dim)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const T* ct = cos + t * half;
      const T* st = sin + t * half;
      for (int64_t h = 0; h < heads; ++h) {
        const T* xa = x + t * x_stride + h * head_dim;
        T* ya = y + t * y_stride + h * head_dim;
        for (int64_t k = 0; k < half; ++k) {
          const T c = ct[k], s = sign * st[k];
          const T a = xa[k], b = xa[k + half];  // both read before either is written (in place is safe)
          ya[k] = a * c - b * s;
          ya[k + half] = b * c + a * s;
        }
      }
    }
  });
}

template <typename T>
void rope_apply(const T* x, T* y, int64_t num_tokens, int64_t heads, int64_t head_dim, const T* cos, const T* sin,
                bool inverse) {
  rope_apply<T>(x, heads * head_dim, y, heads * head_dim, num_tokens, heads, head_dim, cos, sin, inverse);
}

template <typename T>
void rope_backward(const T* dy, T* dx, int64_t num_tokens, int64_t heads, int64_t head_dim, const T* cos,
                   const T* sin) {
  rope_apply<T>(dy, dx, num_tokens, heads, head_dim, cos, sin, /*inverse=*/true);
}

#define VG_ROPE_INSTANTIATE(T)                                                                                    \
  template void rope_inv_freq<T>(RopeKind, int64_t, double, T*);                                                  \
  template void rope_tables<T>(RopeKind, const int32_t*, int64_t, int64_t, double, const int64_t*, T*, T*);       \
  template void rope_apply<T>(const T*, int64_t, T*, int64_t, int64_t, int64_t, int64_t, const T*, const T*, bool); \
  template void rope_apply<T>(const T*, T*, int64_t, int64_t, int64_t, const T*, const T*, bool);                 \
  template void rope_backward<T>(const T*, T*, int64_t, int64_t, int64_t, const T*, const T*);
VG_ROPE_INSTANTIATE(float)
VG_ROPE_INSTANTIATE(double)
#undef VG_ROPE_INSTANTIATE

}  // namespace vg
