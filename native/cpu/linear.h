// Linear layer with PyTorch's weight layout: y[n, out] = x[n, in] · W[out, in]^T + b[out].
#pragma once
#include <cstdint>

namespace vg {

// bias may be null.
template <typename T>
void linear_forward(const T* x, const T* W, const T* bias, T* y, int64_t n, int64_t in, int64_t out);

// Gradients. dx is overwritten (skipped when null); dW and db are accumulated into (+=), skipped when null,
// so several micro-batches can sum into one gradient buffer.
template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t n, int64_t in, int64_t out);

}  // namespace vg
