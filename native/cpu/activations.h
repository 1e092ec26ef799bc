// Elementwise activations of Qwen2 / Qwen2-VL / Qwen2.5-VL, forward and backward (spec sections 3.5, 3.6, 4.4, 8).
//
//   SwiGLU (text MLP, hidden_act "silu"; Qwen2.5-VL vision MLP):  h = silu(a) ⊙ u,  silu(a) = a · σ(a)
//       da = dh ⊙ u ⊙ σ(a) (1 + a (1 − σ(a))),   du = dh ⊙ silu(a)
//     Two layouts: separate gate a[n] and up u[n] arrays, or one fused row-major [rows, 2I] array whose row r holds
//     gate in columns [0, I) then up in columns [I, 2I) (what one linear with weight cat([W_gate, W_up]) produces).
//   GELU, exact (Qwen2-VL / 2.5-VL merger, nn.GELU()):  y = 0.5 x (1 + erf(x/√2)) = x Φ(x);  y' = Φ(x) + x φ(x)
//   GELU, tanh approximation ("gelu_pytorch_tanh"; no Qwen-VL config uses it, provided for other checkpoints):
//       y = 0.5 x (1 + tanh(u)),  u = √(2/π) (x + 0.044715 x³);  y' = 0.5 (1 + tanh u) + 0.5 x (1 − tanh² u) u'
//       (evaluated as x·σ(2u) and σ(2u)(1 + 2x σ(−2u) u'), which have no cancellation for x << 0)
//   quick-GELU (Qwen2-VL vision MLP, hidden_act "quick_gelu"):  y = x σ(1.702 x)
//       y' = σ(1.702x) + 1.702 x σ(1.702x) (1 − σ(1.702x))
// Every function is finite for every finite input (large |x| saturates instead of producing inf·0 = NaN).
// Outputs may alias inputs of the same shape. Gradients w.r.t. inputs are overwritten.
#pragma once
#include <cstdint>

namespace vg {

enum class GeluApprox { kNone, kTanh };

// out[i] = silu(gate[i]) · up[i], i < n.
template <typename T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n);
// dgate[i], dup[i] from dout[i] (each skipped when null).
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, T* dgate, T* dup, int64_t n);

// Fused layout: gate_up [rows, 2·inter] (gate columns first), out [rows, inter].
template <typename T>
void swiglu_fused_forward(const T* gate_up, T* out, int64_t rows, int64_t inter);
// dgate_up [rows, 2·inter] in the same layout as gate_up.
template <typename T>
void swiglu_fused_backward(const T* gate_up, const T* dout, T* dgate_up, int64_t rows, int64_t inter);

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n, GeluApprox approx);
template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n, GeluApprox approx);

template <typename T>
void quick_gelu_forward(const T* x, T* y, int64_t n);
template <typename T>
void quick_gelu_backward(const T* x, const T* dy, T* dx, int64_t n);

}  // namespace vg
