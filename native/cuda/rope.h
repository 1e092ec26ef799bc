// Rotary position embeddings on the GPU (1-D, M-RoPE sections, vision 2-D), forward and backward: the
// conventions of native/cpu/rope.h (HF rotate_half pairs (k, k + d/2)).
//
// rope_tables builds fp32 cos/sin tables [n, d/2] on the device from int32 positions on the device. The
// frequencies come from the CPU's rope_inv_freq<float> (computed on the host, passed by value) and the angle is
// the fp32 product float(pos) · inv_freq[k], as in HF, so the tables match the CPU's fp32 tables to cosf/sinf
// accuracy (a few ulps). rope_apply rotates bf16 heads in fp32 and rounds once; y may equal x (in place),
// strides let q and k be rotated inside a packed qkv row. The backward is the rotation by −θ.
// Device pointers; work queued on `stream`.
#pragma once
#include <cstdint>

#include "cpu/rope.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// Largest supported head_dim (the frequency table is a kernel argument).
constexpr int64_t kRopeMaxHeadDim = 512;

// positions: [n] (k1D), [3, n] (kMRope), [n, 2] (kVision2D); mrope_section: 3 host values (kMRope only).
// cos, sin: [n, head_dim/2] fp32 (written).
void rope_tables(RopeKind kind, const int32_t* positions, int64_t n, int64_t head_dim, double theta,
                 const int64_t* mrope_section, float* cos, float* sin, cudaStream_t stream);

// y[t, h, :] = rotate(x[t, h, :], θ[t]) (by −θ when inverse) for t < num_tokens, h < heads; token t's heads start
// at x + t·x_stride (y + t·y_stride) and are head_dim apart.
void rope_apply(const bf16* x, int64_t x_stride, bf16* y, int64_t y_stride, int64_t num_tokens, int64_t heads,
                int64_t head_dim, const float* cos, const float* sin, bool inverse, cudaStream_t stream);

// Dense [num_tokens, heads, head_dim] layout.
void rope_apply(const bf16* x, bf16* y, int64_t num_tokens, int64_t heads, int64_t head_dim, const float* cos,
                const float* sin, bool inverse, cudaStream_t stream);

// dx = rotate(dy, −θ); dx may equal dy. Dense layout.
void rope_backward(const bf16* dy, bf16* dx, int64_t num_tokens, int64_t heads, int64_t head_dim, const float* cos,
                   const float* sin, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
