#include "cpu/activations.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {
namespace {

constexpr int64_t kGrain = 16384;
// Beyond this |x| every derivative below equals its limit (1 for x > 0, 0 for x < 0) to working precision; the
// cut keeps x² and 1.702x from overflowing into inf·0 = NaN.
constexpr double kSaturate = 1e4;

// 1/(1+e^−x) is finite for every x: e^−x = inf gives 0 and e^−x = 0 gives 1, so no branch is needed.
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// s = σ(a) and its complement 1 − s = σ(−a), each to full relative precision (1 − s is not formed by subtraction,
// which would cancel for a >> 0), from one exp of a non-positive argument (never overflows).
template <typename T>
inline void sigmoid_pair(T a, T& s, T& one_minus_s) {
  const T e = std::exp(-std::fabs(a));
  const T r = T(1) / (T(1) + e);
  if (a >= 0) s = r, one_minus_s = e * r;
  else s = e * r, one_minus_s = r;
}

template <typename T>
inline T silu(T a) {
  return a * sigmoid(a);
}

// d silu / da = σ(a) (1 + a (1 − σ(a))); |a (1 − σ)| <= |a|, so this never overflows.
template <typename T>
inline T silu_grad(T a) {
  T s, c;
  sigmoid_pair(a, s, c);
  return s * (T(1) + a * c);
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kTanhCoef = 0.044715;
constexpr double kQuickGelu = 1.702;

template <typename T>
inline T gelu_erf(T x) {
  // x Φ(x) with Φ(x) = erfc(−x/√2)/2: same value as 0.5x(1 + erf(x/√2)) without the cancellation for x << 0.
  return T(0.5) * x * std::erfc(-x * T(kInvSqrt2));
}

template <typename T>
inline T gelu_erf_grad(T x) {
  // Φ(x) + x φ(x); x² = inf for huge |x| gives φ = 0, which is the right limit.
  return T(0.5) * std::erfc(-x * T(kInvSqrt2)) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
}

// With 1 + tanh(u) = 2σ(2u) and 1 − tanh²(u) = 4σ(2u)σ(−2u), both the value and the derivative are products
// instead of differences: no cancellation where tanh(u) is close to −1 (x < −3 loses all fp32 digits otherwise).
template <typename T>
inline T gelu_tanh(T x) {
  const T u = T(kSqrt2OverPi) * (x + T(kTanhCoef) * x * x * x);  // ±inf saturates σ(2u) to 1 or 0
  return x * sigmoid(T(2) * u);
}

// y' = σ(2u) (1 + 2x σ(−2u) u'),  u' = √(2/π)(1 + 3·0.044715 x²)
template <typename T>
inline T gelu_tanh_grad(T x) {
  if (std::fabs(x) > T(kSaturate)) return x > 0 ? T(1) : T(0);
  const T x2 = x * x;
  const T u = T(kSqrt2OverPi) * x * (T(1) + T(kTanhCoef) * x2);
  const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kTanhCoef) * x2);
  T s, c;
  sigmoid_pair(T(2) * u, s, c);
  return s * (T(1) + T(2) * x * c * du);
}

template <typename T>
inline T quick_gelu(T x) {
  return x * sigmoid(T(kQuickGelu) * x);
}

template <typename T>
inline T quick_gelu_grad(T x) {
  if (std::fabs(x) > T(kSaturate)) return x > 0 ? T(1) : T(0);
  const T a = T(kQuickGelu) * x;
  T s, c;
  sigmoid_pair(a, s, c);
  return s * (T(1) + a * c);
}

// Serial SwiGLU over elements [i0, i1).
template <typename T>
inline void swiglu_span(const T* gate, const T* up, T* out, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) out[i] = silu(gate[i]) * up[i];
}

template <typename T>
inline void swiglu_grad_span(const T* gate, const T* up, const T* dout, T* dgate, T* dup, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const T a = gate[i], u = up[i], g = dout[i];  // read all before writing (outputs may alias inputs)
    if (dgate) dgate[i] = g * u * silu_grad(a);
    if (dup) dup[i] = g * silu(a);
  }
}

// Splits the flat range [i0, i1) of a [rows, width] matrix into per-row column spans fn(row, c0, c1).
template <typename F>
inline void for_row_spans(int64_t i0, int64_t i1, int64_t width, F fn) {
  for (int64_t i = i0; i < i1;) {
    const int64_t r = i / width, c0 = i - r * width, c1 = std::min(width, c0 + (i1 - i));
    fn(r, c0, c1);
    i += c1 - c0;
  }
}

void check_n(const char* fn, int64_t n) { VG_CHECK_ARG(n >= 0, fn, ": length must be >= 0, got ", n); }

// y[i] = f(x[i]) in parallel.
template <typename T, typename F>
void map1(const T* x, T* y, int64_t n, F f) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = f(x[i]);
  });
}

// dx[i] = dy[i] · f'(x[i]) in parallel.
template <typename T, typename F>
void map_grad(const T* x, const T* dy, T* dx, int64_t n, F fgrad) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dx[i] = dy[i] * fgrad(x[i]);
  });
}

}  // namespace

template <typename T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n) {
  check_n("swiglu_forward", n);
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) { swiglu_span(gate, up, out, i0, i1); });
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, T* dgate, T* dup, int64_t n) {
  check_n("swiglu_backward", n);
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) { swiglu_grad_span(gate, up, dout, dgate, dup, i0, i1); });
}

template <typename T>
void swiglu_fused_forward(const T* gate_up, T* out, int64_t rows, int64_t inter) {
  VG_CHECK_ARG(rows >= 0 && inter >= 1, "swiglu_fused_forward: rows must be >= 0 and inter >= 1, got rows ", rows,
               ", inter ", inter);
  // Parallel over all rows·inter outputs (not rows), so a single long row is split across threads too.
  parallel_for(0, rows * inter, kGrain, [&](int64_t i0, int64_t i1) {
    for_row_spans(i0, i1, inter, [&](int64_t r, int64_t c0, int64_t c1) {
      const T* gu = gate_up + r * 2 * inter;
      swiglu_span(gu, gu + inter, out + r * inter, c0, c1);
    });
  });
}

template <typename T>
void swiglu_fused_backward(const T* gate_up, const T* dout, T* dgate_up, int64_t rows, int64_t inter) {
  VG_CHECK_ARG(rows >= 0 && inter >= 1, "swiglu_fused_backward: rows must be >= 0 and inter >= 1, got rows ", rows,
               ", inter ", inter);
  parallel_for(0, rows * inter, kGrain, [&](int64_t i0, int64_t i1) {
    for_row_spans(i0, i1, inter, [&](int64_t r, int64_t c0, int64_t c1) {
      const T* gu = gate_up + r * 2 * inter;
      T* dgu = dgate_up + r * 2 * inter;
      swiglu_grad_span(gu, gu + inter, dout + r * inter, dgu, dgu + inter, c0, c1);
    });
  });
}

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n, GeluApprox approx) {
  check_n("gelu_forward", n);
  if (approx == GeluApprox::kTanh) map1(x, y, n, [](T v) { return gelu_tanh(v); });
  else map1(x, y, n, [](T v) { return gelu_erf(v); });
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n, GeluApprox approx) {
  check_n("gelu_backward", n);
  if (approx == GeluApprox::kTanh) map_grad(x, dy, dx, n, [](T v) { return gelu_tanh_grad(v); });
  else map_grad(x, dy, dx, n, [](T v) { return gelu_erf_grad(v); });
}

template <typename T>
void quick_gelu_forward(const T* x, T* y, int64_t n) {
  check_n("quick_gelu_forward", n);
  map1(x, y, n, [](T v) { return quick_gelu(v); });
}

template <typename T>
void quick_gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  check_n("quick_gelu_backward", n);
  map_grad(x, dy, dx, n, [](T v) { return quick_gelu_grad(v); });
}

#define VG_ACT_INSTANTIATE(T)                                                          \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t);                    \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);     \
  template void swiglu_fused_forward<T>(const T*, T*, int64_t, int64_t);               \
  template void swiglu_fused_backward<T>(const T*, const T*, T*, int64_t, int64_t);    \
  template void gelu_forward<T>(const T*, T*, int64_t, GeluApprox);                    \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t, GeluApprox);         \
  template void quick_gelu_forward<T>(const T*, T*, int64_t);                          \
  template void quick_gelu_backward<T>(const T*, const T*, T*, int64_t);
VG_ACT_INSTANTIATE(float)
VG_ACT_INSTANTIATE(double)
#undef VG_ACT_INSTANTIATE

}  // namespace vg
