// Rotary position embeddings of Qwen2-VL / Qwen2.5-VL (spec sections 1.4, 3.2, 4.3, 8), forward and backward.
//
// Convention (HF rotate_half): a head vector x of even length d is rotated in the pairs (k, k + d/2), k < d/2:
//   x'_k       = x_k       · cos θ_k − x_{k+d/2} · sin θ_k
//   x'_{k+d/2} = x_{k+d/2} · cos θ_k + x_k       · sin θ_k
// which is q·cos(emb) + rotate_half(q)·sin(emb) with emb = concat(θ, θ) and rotate_half([a, b]) = [−b, a].
// The backward is the same rotation by −θ applied to the gradient (the rotation is orthogonal).
//
// Angle sources θ[n, k] (k < d/2), all with explicit integer position ids:
//   k1D:      positions [N];          θ_k = pos[n] · inv_freq[k],  inv_freq[k] = 1 / theta^(2k/d)
//   kMRope:   positions [3, N] (t, h, w rows) and mrope_section [s0, s1, s2] with s0 + s1 + s2 = d/2:
//             θ_k = pos[c(k), n] · inv_freq[k], c(k) = t for k < s0, h for k < s0 + s1, w otherwise
//             (contiguous sections as in Qwen2-VL / 2.5-VL, not Qwen3-VL's interleaved layout)
//   kVision2D: positions [N, 2] (hpos, wpos), head dim dv (d % 4 == 0), q = d/4:
//             inv_freq_v[j] = 1 / theta^(2j/(d/2)), j < q;  θ = [hpos · inv_freq_v[0..q), wpos · inv_freq_v[0..q)]
//             (HF uses theta = 10000 for the vision tower)
// For T = float, inv_freq, the angles (float(pos) · inv_freq) and cos/sin are computed in fp32, as HF does; for
// T = double everything is double.
//
// Use: build the cos/sin tables [N, d/2] once per sequence with rope_tables (the model can share them across
// layers, and between q and k, which have different head counts), then rope_apply to each tensor.
#pragma once
#include <cstdint>

namespace vg {

enum class RopeKind { k1D, kMRope, kVision2D };

// The frequencies the angles use: `count` = d/2 values (1-D, M-RoPE) or d/4 values (vision).
//   inv_freq[k] = 1 / theta^(float(2k) / float(denom)),  denom = d (1-D, M-RoPE) or d/2 (vision).
template <typename T>
void rope_inv_freq(RopeKind kind, int64_t head_dim, double theta, T* inv_freq);

// cos/sin tables [n, head_dim/2]. positions: [n] (k1D), [3, n] (kMRope), [n, 2] (kVision2D).
// mrope_section: 3 values summing to head_dim/2 (kMRope only; ignored otherwise, may be null).
template <typename T>
void rope_tables(RopeKind kind, const int32_t* positions, int64_t n, int64_t head_dim, double theta,
                 const int64_t* mrope_section, T* cos, T* sin);

// y[n, h, :] = rotate(x[n, h, :], θ[n]) for every token n < num_tokens and head h < heads; by −θ when inverse.
// Token n's heads start at x + n·x_stride (and y + n·y_stride), heads are head_dim apart, so q and k can be
// rotated in place inside a packed qkv row. y may equal x (in place); otherwise they must not overlap.
template <typename T>
void rope_apply(const T* x, int64_t x_stride, T* y, int64_t y_stride, int64_t num_tokens, int64_t heads,
                int64_t head_dim, const T* cos, const T* sin, bool inverse);

// Dense layout [num_tokens, heads, head_dim] for x and y.
template <typename T>
void rope_apply(const T* x, T* y, int64_t num_tokens, int64_t heads, int64_t head_dim, const T* cos, const T* sin,
                bool inverse);

// Gradient of rope_apply: dx = rotate(dy, −θ) (dx may equal dy). Dense layout.
template <typename T>
void rope_backward(const T* dy, T* dx, int64_t num_tokens, int64_t heads, int64_t head_dim, const T* cos,
                   const T* sin);

}  // namespace vg
