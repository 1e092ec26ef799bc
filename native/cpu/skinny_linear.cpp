#include "cpu/skinny_linear.h"

#include <cstring>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {
namespace {

// 16 floats: one AVX-512 register, two AVX2 registers, four SSE registers (GCC vector extension, so the same
// code compiles for whatever -march the build uses).
typedef float v16f __attribute__((vector_size(64)));

inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

// Tree reduction of the 16 lanes (a sequential lane loop would cost as much as the multiply itself).
inline float hsum(v16f v) {
  const v8f a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v4f b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// R input rows against weight rows [o0, o1), two weight rows at a time so each input load feeds two FMAs.
template <int R>
void block_rows(const float* x, const float* W, const float* bias, float* y, int64_t in, int64_t out, int64_t o0,
                int64_t o1) {
  const int64_t kv = in / 16 * 16;
  int64_t o = o0;
  for (; o + 2 <= o1; o += 2) {
    const float* w0 = W + o * in;
    const float* w1 = w0 + in;
    v16f a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = v16f{};
    for (int64_t k = 0; k < kv; k += 16) {
      const v16f u = load16(w0 + k), v = load16(w1 + k);
      for (int r = 0; r < R; ++r) {
        const v16f xv = load16(x + r * in + k);
        a0[r] += u * xv;
        a1[r] += v * xv;
      }
    }
    for (int r = 0; r < R; ++r) {
      float s0 = hsum(a0[r]), s1 = hsum(a1[r]);
      for (int64_t k = kv; k < in; ++k) {
        s0 += w0[k] * x[r * in + k];
        s1 += w1[k] * x[r * in + k];
      }
      y[r * out + o] = s0 + (bias ? bias[o] : 0.f);
      y[r * out + o + 1] = s1 + (bias ? bias[o + 1] : 0.f);
    }
  }
  for (; o < o1; ++o) {
    const float* w0 = W + o * in;
    v16f a0[R];
    for (int r = 0; r < R; ++r) a0[r] = v16f{};
    for (int64_t k = 0; k < kv; k += 16) {
      const v16f u = load16(w0 + k);
      for (int r = 0; r < R; ++r) a0[r] += u * load16(x + r * in + k);
    }
    for (int r = 0; r < R; ++r) {
      float s0 = hsum(a0[r]);
      for (int64_t k = kv; k < in; ++k) s0 += w0[k] * x[r * in + k];
      y[r * out + o] = s0 + (bias ? bias[o] : 0.f);
    }
  }
}

using BlockFn = void (*)(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t);

constexpr BlockFn kBlocks[] = {block_rows<1>, block_rows<2>, block_rows<3>, block_rows<4>, block_rows<5>, block_rows<6>,
                               block_rows<7>, block_rows<8>};

}  // namespace

template <>
void skinny_linear<float>(const float* x, const float* W, const float* bias, float* y, int64_t rows, int64_t in,
                          int64_t out) {
  VG_CHECK_ARG(rows >= 0 && rows <= kSkinnyMaxRows, "skinny_linear: rows=", rows, " must be <= ", kSkinnyMaxRows);
  if (rows == 0 || out == 0) return;
  // Output columns split over the threads; each thread streams its weight rows once for all input rows (in blocks
  // of up to 8 rows, so the accumulators stay in registers).
  parallel_for(0, out, 64, [&](int64_t o0, int64_t o1) {
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
      const int64_t R = rows - r0 < 8 ? rows - r0 : 8;
      kBlocks[R - 1](x + r0 * in, W, bias, y + r0 * out, in, out, o0, o1);
    }
  });
}

template <>
void skinny_linear<double>(const double* x, const double* W, const double* bias, double* y, int64_t rows, int64_t in,
                           int64_t out) {
  VG_CHECK_ARG(rows >= 0 && rows <= kSkinnyMaxRows, "skinny_linear: rows=", rows, " must be <= ", kSkinnyMaxRows);
  parallel_for(0, out, 64, [&](int64_t o0, int64_t o1) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = o0; o < o1; ++o) {
        double s = bias ? bias[o] : 0.0;
        for (int64_t k = 0; k < in; ++k) s += x[r * in + k] * W[o * in + k];
        y[r * out + o] = s;
      }
  });
}

}  // namespace vg
