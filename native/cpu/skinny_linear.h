// Linear layers for a handful of rows (decoding: one row per sequence), y[r, o] = x[r, :] · W[o, :] + b[o].
// A BLAS packs the whole weight matrix on every call, which for a few rows costs more than the multiply; these
// kernels stream each weight row once and reuse it for every input row (the inputs stay in L1), so a decode
// step reads each weight exactly once, at close to memory bandwidth. Used by linear_forward for
// rows <= kSkinnyMaxRows, and directly by the decode step (model/generate.cpp), which also uses the fused forms:
//   skinny_linear_multi: several linears of the same input in one pass over the threads (q, k and v), each with
//                        an optional bias and an optional residual added to its output;
//   skinny_swiglu:       act[r, o] = silu(x[r]·Wg[o]) · (x[r]·Wu[o]), the gate and up rows streamed side by side,
//                        so the MLP's first half needs neither the gate/up buffers nor a separate pass.
// Each output element is one thread's dot product in a fixed order (16 lane-wise partial sums over k, then a fixed
// tree), so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace vg {

constexpr int64_t kSkinnyMaxRows = 16;

// rows <= kSkinnyMaxRows. bias may be null. y must not alias x or W.
template <typename T>
void skinny_linear(const T* x, const T* W, const T* bias, T* y, int64_t rows, int64_t in, int64_t out);

// One linear of skinny_linear_multi: y[r * out + o] = x[r]·W[o] + bias[o] + residual[r * out + o].
template <typename T>
struct SkinnyOutput {
  const T* W = nullptr;         // [out, in]
  const T* bias = nullptr;      // [out] or null
  const T* residual = nullptr;  // [rows, out] or null; may equal y (each element is read before it is written)
  T* y = nullptr;               // [rows, out]; must not alias x or W
  int64_t out = 0;
};

// rows <= kSkinnyMaxRows; `count` linears of the same input x [rows, in], their output features split over the
// threads as one range (one pool dispatch instead of `count`).
template <typename T>
void skinny_linear_multi(const T* x, int64_t rows, int64_t in, const SkinnyOutput<T>* outputs, int64_t count);

// rows <= kSkinnyMaxRows. act[r, o] = silu(g) · u with g = x[r]·Wg[o], u = x[r]·Wu[o], silu(g) = g / (1 + e^-g)
// (swiglu_forward's formula; in float with exp_fast, within a few ulp of it). Wg, Wu: [inter, in]; act:
// [rows, inter], must not alias x.
template <typename T>
void skinny_swiglu(const T* x, const T* Wg, const T* Wu, T* act, int64_t rows, int64_t in, int64_t inter);

}  // namespace vg
