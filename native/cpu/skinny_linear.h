// Linear layer for a handful of rows (decoding: one row per sequence), y[r, o] = x[r, :] · W[o, :] + b[o].
// A BLAS packs the whole weight matrix on every call, which for a few rows costs more than the multiply; this
// kernel streams each weight row once and reuses it for every input row (the inputs stay in L1), so a decode
// step reads each weight exactly once. Used by linear_forward for rows <= kSkinnyMaxRows.
#pragma once
#include <cstdint>

namespace vg {

constexpr int64_t kSkinnyMaxRows = 16;

// rows <= kSkinnyMaxRows. bias may be null. y must not alias x or W.
template <typename T>
void skinny_linear(const T* x, const T* W, const T* bias, T* y, int64_t rows, int64_t in, int64_t out);

}  // namespace vg
