#include "cpu/linear.h"

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/skinny_linear.h"

namespace vg {

template <typename T>
void linear_forward(const T* x, const T* W, const T* bias, T* y, int64_t n, int64_t in, int64_t out) {
  if (n <= kSkinnyMaxRows) {  // decoding: stream the weights once instead of letting the BLAS pack them
    skinny_linear<T>(x, W, bias, y, n, in, out);
    return;
  }
  if (bias) {
    parallel_for(0, n, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t o = 0; o < out; ++o) y[r * out + o] = bias[o];
    });
  }
  gemm<T>(false, true, n, out, in, T(1), x, in, W, in, bias ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t n, int64_t in, int64_t out) {
  if (dx) gemm<T>(false, false, n, in, out, T(1), dy, out, W, in, T(0), dx, in);
  if (dW) gemm<T>(true, false, out, in, n, T(1), dy, out, x, in, T(1), dW, in);
  if (db) {
    parallel_for(0, out, 256, [&](int64_t o0, int64_t o1) {
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = o0; o < o1; ++o) db[o] += dy[r * out + o];
    });
  }
}

template void linear_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                     int64_t, int64_t);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      int64_t, int64_t, int64_t);

}  // namespace vg
