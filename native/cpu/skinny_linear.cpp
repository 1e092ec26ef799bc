#include "cpu/skinny_linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/exp_fast.h"

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

// Lane i of the result = the sum of a[i]'s 16 lanes, for all 16 vectors at once: four rounds that each add two
// halves of every vector (lanes j and j+8, then j and j+4, j+2, j+1 of what is left), packing two vectors' halves
// into one register per round. 15 adds and 30 shuffles for 16 sums, where one horizontal sum per vector would take
// 16 x 8; the order of the additions is the same for every lane, so a sum does not depend on which slot it sits in.
inline v16f reduce16(const v16f* a) {
  v16f t[8], u[4], w[2];
  for (int i = 0; i < 8; ++i)
    t[i] = __builtin_shufflevector(a[2 * i], a[2 * i + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(a[2 * i], a[2 * i + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int i = 0; i < 4; ++i)
    u[i] = __builtin_shufflevector(t[2 * i], t[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(t[2 * i], t[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int i = 0; i < 2; ++i)
    w[i] = __builtin_shufflevector(u[2 * i], u[2 * i + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           __builtin_shufflevector(u[2 * i], u[2 * i + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return __builtin_shufflevector(w[0], w[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         __builtin_shufflevector(w[0], w[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

// Software prefetch distance along each weight stream, in floats (8 KB). The hardware prefetchers stop at 4 KB
// page boundaries, and a weight row pair is about one page, so without this every page starts with a full
// memory latency; measured on the decode step's weights (107 MB, cold), 8 KB ahead streamed them about 25%
// faster than no prefetch, 2 KB / 4 KB / 16 KB ahead in between. Prefetches past the end of a matrix are
// harmless (they never fault).
constexpr int64_t kPrefetch = 2048;

// Dot products of R (<= 8) input rows x[r] (row stride `in`) with two weight rows: lane r of the result is
// x[r]·w0, lane 8 + r is x[r]·w1 (the other lanes are 0). Each weight vector load feeds 2R FMAs; the 16
// accumulators stay in registers.
template <int R>
v16f dot2(const float* x, int64_t in, const float* w0, const float* w1) {
  const int64_t kv = in / 16 * 16;
  v16f a[16];
  for (int i = 0; i < 16; ++i) a[i] = v16f{};
  for (int64_t k = 0; k < kv; k += 16) {
    __builtin_prefetch(w0 + k + kPrefetch);
    __builtin_prefetch(w1 + k + kPrefetch);
    const v16f u = load16(w0 + k), v = load16(w1 + k);
    for (int r = 0; r < R; ++r) {
      const v16f xv = load16(x + r * in + k);
      a[r] += u * xv;
      a[8 + r] += v * xv;
    }
  }
  v16f s = reduce16(a);
  for (int64_t k = kv; k < in; ++k)  // tail of a width that is not a multiple of 16, after the tree
    for (int r = 0; r < R; ++r) {
      s[r] += w0[k] * x[r * in + k];
      s[8 + r] += w1[k] * x[r * in + k];
    }
  return s;
}

using DotFn = v16f (*)(const float*, int64_t, const float*, const float*);
constexpr DotFn kDot[] = {dot2<1>, dot2<2>, dot2<3>, dot2<4>, dot2<5>, dot2<6>, dot2<7>, dot2<8>};

// Output features [o0, o1) of one linear, for every input row: weight rows two at a time (an odd last one is
// paired with itself), each pair used for all row blocks of 8 while it is in L1.
void linear_range(const float* x, int64_t rows, int64_t in, const SkinnyOutput<float>& s, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; o += 2) {
    const bool two = o + 1 < o1;
    const float* w0 = s.W + o * in;
    const float* w1 = two ? w0 + in : w0;
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
      const int64_t R = rows - r0 < 8 ? rows - r0 : 8;
      const v16f d = kDot[R - 1](x + r0 * in, in, w0, w1);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t i = (r0 + r) * s.out + o;
        float v0 = d[r];
        if (s.bias) v0 += s.bias[o];
        if (s.residual) v0 += s.residual[i];
        s.y[i] = v0;
        if (two) {
          float v1 = d[8 + r];
          if (s.bias) v1 += s.bias[o + 1];
          if (s.residual) v1 += s.residual[i + 1];
          s.y[i + 1] = v1;
        }
      }
    }
  }
}

void check_rows(const char* what, int64_t rows) {
  VG_CHECK_ARG(rows >= 0 && rows <= kSkinnyMaxRows, what, ": rows=", rows, " must be in [0, ", kSkinnyMaxRows, "]");
}

// Grain of the double kernels' output split.
constexpr int64_t kGrain = 64;

// Output features per work block: about 64 KB of weight rows (an even count, so pairs stay whole).
int64_t block_features(int64_t row_bytes) {
  return std::max<int64_t>(2, (65536 / std::max<int64_t>(row_bytes, 1)) & ~int64_t(1));
}

// fn(begin, end) over [0, n) in blocks of `block`, handed to the threads one at a time as they free up. (A plain
// parallel_for cuts the range into about 4 pieces per thread; when one thread takes the last piece the other
// waits for up to a tenth of the kernel. Blocks of ~64 KB keep that wait near a microsecond.) Which thread runs a
// block does not change its results.
template <typename F>
void stream_blocks(int64_t n, int64_t block, const F& fn) {
  const int64_t blocks = (n + block - 1) / block;
  std::atomic<int64_t> next{0};
  parallel_for(0, std::min<int64_t>(num_threads(), blocks), 1, [&](int64_t, int64_t) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < blocks;)
      fn(i * block, std::min(n, (i + 1) * block));
  });
}

}  // namespace

template <>
void skinny_linear_multi<float>(const float* x, int64_t rows, int64_t in, const SkinnyOutput<float>* outs,
                                int64_t count) {
  check_rows("skinny_linear", rows);
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += outs[i].out;
  if (rows == 0 || total == 0) return;
  // The concatenated output features of all linears as one range; a block may span several of them.
  stream_blocks(total, block_features(in * 4), [&](int64_t t0, int64_t t1) {
    int64_t base = 0;
    for (int64_t i = 0; i < count && base < t1; base += outs[i].out, ++i) {
      const int64_t b = t0 > base ? t0 - base : 0, e = t1 - base < outs[i].out ? t1 - base : outs[i].out;
      if (b < e) linear_range(x, rows, in, outs[i], b, e);
    }
  });
}

template <>
void skinny_linear<float>(const float* x, const float* W, const float* bias, float* y, int64_t rows, int64_t in,
                          int64_t out) {
  SkinnyOutput<float> s;
  s.W = W;
  s.bias = bias;
  s.y = y;
  s.out = out;
  skinny_linear_multi<float>(x, rows, in, &s, 1);
}

template <>
void skinny_swiglu<float>(const float* x, const float* Wg, const float* Wu, float* act, int64_t rows, int64_t in,
                          int64_t inter) {
  check_rows("skinny_swiglu", rows);
  if (rows == 0 || inter == 0) return;
  stream_blocks(inter, block_features(in * 8), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t R = rows - r0 < 8 ? rows - r0 : 8;
        const v16f d = kDot[R - 1](x + r0 * in, in, Wg + o * in, Wu + o * in);
        float a[8];
        for (int r = 0; r < 8; ++r) a[r] = d[r] * (1.f / (1.f + exp_fast(-d[r]))) * d[8 + r];  // vectorises
        for (int64_t r = 0; r < R; ++r) act[(r0 + r) * inter + o] = a[r];
      }
    }
  });
}

// Double: plain loops (gradient-check builds and tests; decoding runs in float).
template <>
void skinny_linear_multi<double>(const double* x, int64_t rows, int64_t in, const SkinnyOutput<double>* outs,
                                 int64_t count) {
  check_rows("skinny_linear", rows);
  for (int64_t i = 0; i < count; ++i) {
    const SkinnyOutput<double>& s = outs[i];
    parallel_for(0, s.out, kGrain, [&](int64_t o0, int64_t o1) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = o0; o < o1; ++o) {
          double v = 0;
          for (int64_t k = 0; k < in; ++k) v += x[r * in + k] * s.W[o * in + k];
          if (s.bias) v += s.bias[o];
          if (s.residual) v += s.residual[r * s.out + o];
          s.y[r * s.out + o] = v;
        }
    });
  }
}

template <>
void skinny_linear<double>(const double* x, const double* W, const double* bias, double* y, int64_t rows, int64_t in,
                           int64_t out) {
  SkinnyOutput<double> s;
  s.W = W;
  s.bias = bias;
  s.y = y;
  s.out = out;
  skinny_linear_multi<double>(x, rows, in, &s, 1);
}

template <>
void skinny_swiglu<double>(const double* x, const double* Wg, const double* Wu, double* act, int64_t rows, int64_t in,
                           int64_t inter) {
  check_rows("skinny_swiglu", rows);
  parallel_for(0, inter, kGrain, [&](int64_t o0, int64_t o1) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = o0; o < o1; ++o) {
        double g = 0, u = 0;
        for (int64_t k = 0; k < in; ++k) {
          g += x[r * in + k] * Wg[o * in + k];
          u += x[r * in + k] * Wu[o * in + k];
        }
        act[r * inter + o] = g * (1.0 / (1.0 + std::exp(-g))) * u;
      }
  });
}

}  // namespace vg
