#include "cpu/norms.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace vg {
namespace {

// Sum of f(j) over j < n with 8 independent accumulators: vectorisable, and the order depends only on n.
template <typename T, typename F>
inline T lane_sum(int64_t n, F f) {
  T acc[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += f(j + l);
  for (int l = 0; j < n; ++j, ++l) acc[l] += f(j);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void check_shape(const char* fn, int64_t rows, int64_t hidden, double eps) {
  VG_CHECK_ARG(rows >= 0, fn, ": rows must be >= 0, got ", rows);
  VG_CHECK_ARG(hidden >= 1, fn, ": hidden must be >= 1, got ", hidden);
  VG_CHECK_ARG(std::isfinite(eps) && eps >= 0, fn, ": eps must be finite and >= 0, got ", eps);
}

int64_t row_grain(int64_t hidden) { return std::max<int64_t>(1, 16384 / hidden); }

// Fixed partition of the rows for the parameter-gradient reductions: depends on `rows` only (never on the
// thread count), at most 64 blocks of at least 32 rows, so the partial buffer stays small.
struct RowBlocks {
  int64_t size, count;
  explicit RowBlocks(int64_t rows) {
    size = std::max<int64_t>(32, (rows + 63) / 64);
    count = (rows + size - 1) / size;
  }
};

// out[j] += Σ_b partial[b, j] in block order, parallel over columns.
template <typename T>
void reduce_partials(const std::vector<T>& partial, int64_t blocks, int64_t hidden, T* out) {
  parallel_for(0, hidden, 1024, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      T s = T(0);
      for (int64_t b = 0; b < blocks; ++b) s += partial[b * hidden + j];
      out[j] += s;
    }
  });
}

}  // namespace

template <typename T>
void rms_norm_forward(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t hidden, double eps) {
  check_shape("rms_norm_forward", rows, hidden, eps);
  const T e = static_cast<T>(eps), inv_n = T(1) / static_cast<T>(hidden);
  parallel_for(0, rows, row_grain(hidden), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * hidden;
      T* yr = y + r * hidden;
      const T ms = lane_sum<T>(hidden, [&](int64_t j) { return xr[j] * xr[j]; }) * inv_n;
      const T rs = T(1) / std::sqrt(ms + e);
      rstd[r] = rs;
      // HF order: normalise first, then multiply by the weight.
      for (int64_t j = 0; j < hidden; ++j) yr[j] = w[j] * (xr[j] * rs);
    }
  });
}

template <typename T>
void rms_norm_backward(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows,
                       int64_t hidden) {
  check_shape("rms_norm_backward", rows, hidden, 0.0);
  if (rows == 0 || (!dx && !dw)) return;
  const T inv_n = T(1) / static_cast<T>(hidden);
  const RowBlocks blk(rows);
  std::vector<T> partial(dw ? static_cast<size_t>(blk.count * hidden) : 0, T(0));
  parallel_for(0, blk.count, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* pw = dw ? partial.data() + b * hidden : nullptr;
      const int64_t r_end = std::min(rows, (b + 1) * blk.size);
      for (int64_t r = b * blk.size; r < r_end; ++r) {
        const T* xr = x + r * hidden;
        const T* gr = dy + r * hidden;
        const T rs = rstd[r];
        // c = mean(g ⊙ x̂) with g = dy ⊙ w, x̂ = x · rstd
        const T c = lane_sum<T>(hidden, [&](int64_t j) { return gr[j] * w[j] * xr[j]; }) * rs * inv_n;
        T* dxr = dx ? dx + r * hidden : nullptr;
        for (int64_t j = 0; j < hidden; ++j) {
          const T xh = xr[j] * rs, g = gr[j];  // read dy before dx overwrites it (they may alias)
          if (pw) pw[j] += g * xh;
          if (dxr) dxr[j] = rs * (g * w[j] - xh * c);
        }
      }
    }
  });
  if (dw) reduce_partials(partial, blk.count, hidden, dw);
}

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t hidden,
                        double eps) {
  check_shape("layer_norm_forward", rows, hidden, eps);
  const T e = static_cast<T>(eps), inv_n = T(1) / static_cast<T>(hidden);
  parallel_for(0, rows, row_grain(hidden), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * hidden;
      T* yr = y + r * hidden;
      // Two passes (mean, then centred squares): no cancellation for rows with a large mean.
      const T mu = lane_sum<T>(hidden, [&](int64_t j) { return xr[j]; }) * inv_n;
      const T var = lane_sum<T>(hidden, [&](int64_t j) { const T d = xr[j] - mu; return d * d; }) * inv_n;
      const T rs = T(1) / std::sqrt(var + e);
      mean[r] = mu;
      rstd[r] = rs;
      if (b) {
        for (int64_t j = 0; j < hidden; ++j) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
      } else {
        for (int64_t j = 0; j < hidden; ++j) yr[j] = (xr[j] - mu) * rs * w[j];
      }
    }
  });
}

template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db,
                         int64_t rows, int64_t hidden) {
  check_shape("layer_norm_backward", rows, hidden, 0.0);
  if (rows == 0 || (!dx && !dw && !db)) return;
  const T inv_n = T(1) / static_cast<T>(hidden);
  const RowBlocks blk(rows);
  std::vector<T> pw_all(dw ? static_cast<size_t>(blk.count * hidden) : 0, T(0));
  std::vector<T> pb_all(db ? static_cast<size_t>(blk.count * hidden) : 0, T(0));
  parallel_for(0, blk.count, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      T* pw = dw ? pw_all.data() + bi * hidden : nullptr;
      T* pb = db ? pb_all.data() + bi * hidden : nullptr;
      const int64_t r_end = std::min(rows, (bi + 1) * blk.size);
      for (int64_t r = bi * blk.size; r < r_end; ++r) {
        const T* xr = x + r * hidden;
        const T* gr = dy + r * hidden;
        const T mu = mean[r], rs = rstd[r];
        T* dxr = dx ? dx + r * hidden : nullptr;
        T mg = T(0), mgx = T(0);
        if (dxr) {
          mg = lane_sum<T>(hidden, [&](int64_t j) { return gr[j] * w[j]; }) * inv_n;
          mgx = lane_sum<T>(hidden, [&](int64_t j) { return gr[j] * w[j] * (xr[j] - mu); }) * rs * inv_n;
        }
        for (int64_t j = 0; j < hidden; ++j) {
          const T xh = (xr[j] - mu) * rs, g = gr[j];  // read dy before dx overwrites it (they may alias)
          if (pw) pw[j] += g * xh;
          if (pb) pb[j] += g;
          if (dxr) dxr[j] = rs * (g * w[j] - mg - xh * mgx);
        }
      }
    }
  });
  if (dw) reduce_partials(pw_all, blk.count, hidden, dw);
  if (db) reduce_partials(pb_all, blk.count, hidden, db);
}

template void rms_norm_forward<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rms_norm_forward<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rms_norm_backward<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                       int64_t);
template void rms_norm_backward<double>(const double*, const double*, const double*, const double*, double*, double*,
                                        int64_t, int64_t);
template void layer_norm_forward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                        int64_t, double);
template void layer_norm_forward<double>(const double*, const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t, double);
template void layer_norm_backward<float>(const float*, const float*, const float*, const float*, const float*, float*,
                                         float*, float*, int64_t, int64_t);
template void layer_norm_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                          double*, double*, double*, int64_t, int64_t);

}  // namespace vg
