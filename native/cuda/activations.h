// Elementwise activations on the GPU, forward and backward: the formulas of native/cpu/activations.h (SwiGLU
// separate and fused [rows, 2·inter] layouts, GELU exact / tanh, quick-GELU) on bf16 tensors with fp32
// arithmetic, each output rounded to bf16 once. The same cancellation-free forms as the CPU kernels (x·Φ(x) via
// erfc, 1 + tanh u = 2σ(2u), σ and 1 − σ from one exp of −|a|), so every finite input gives a finite output.
// Outputs may alias inputs of the same shape (each element is read before it is written, by one thread).
// Gradients w.r.t. inputs are overwritten. Device pointers; work queued on `stream`.
#pragma once
#include <cstdint>

#include "cpu/activations.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

void swiglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream);
// dgate / dup each skipped when null.
void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup, int64_t n,
                     cudaStream_t stream);
// gate_up [rows, 2·inter] (gate columns first), out [rows, inter]; dgate_up in gate_up's layout.
void swiglu_fused_forward(const bf16* gate_up, bf16* out, int64_t rows, int64_t inter, cudaStream_t stream);
void swiglu_fused_backward(const bf16* gate_up, const bf16* dout, bf16* dgate_up, int64_t rows, int64_t inter,
                           cudaStream_t stream);

void gelu_forward(const bf16* x, bf16* y, int64_t n, GeluApprox approx, cudaStream_t stream);
void gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t n, GeluApprox approx, cudaStream_t stream);
void quick_gelu_forward(const bf16* x, bf16* y, int64_t n, cudaStream_t stream);
void quick_gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t n, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
