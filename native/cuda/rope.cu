// Rotary embedding kernels: see rope.h.
#include "cuda/device_common.cuh"
#include "cuda/rope.h"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Per rotation pair k < d/2: its frequency and which position component (t/h/w or h/w) it reads.
struct RopePairs {
  float freq[kRopeMaxHeadDim / 2];
  int8_t comp[kRopeMaxHeadDim / 2];
};

__global__ void rope_tables_kernel(RopeKind kind, const int32_t* __restrict__ positions, int64_t n, int64_t half,
                                   const RopePairs pairs, float* __restrict__ cos_out, float* __restrict__ sin_out) {
  const int64_t total = n * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / half, k = i - t * half;
    const int c = pairs.comp[k];
    int32_t pos;
    if (kind == RopeKind::k1D) pos = positions[t];
    else if (kind == RopeKind::kMRope) pos = positions[c * n + t];
    else pos = positions[2 * t + c];
    const float angle = static_cast<float>(pos) * pairs.freq[k];
    cos_out[i] = cosf(angle);
    sin_out[i] = sinf(angle);
  }
}

// One thread per (token, head, pair): reads both halves before writing either, so y may equal x.
__global__ void rope_apply_kernel(const bf16* x, int64_t x_stride, bf16* y, int64_t y_stride, int64_t num_tokens,
                                  int64_t heads, int64_t head_dim, const float* __restrict__ cos_t,
                                  const float* __restrict__ sin_t, float sign) {
  const int64_t half = head_dim / 2, total = num_tokens * heads * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = i % half, th = i / half, h = th % heads, t = th / heads;
    const float c = cos_t[t * half + k], s = sign * sin_t[t * half + k];
    const bf16* xa = x + t * x_stride + h * head_dim;
    bf16* ya = y + t * y_stride + h * head_dim;
    const float a = dev::to_f(xa[k]), b = dev::to_f(xa[k + half]);
    ya[k] = dev::from_f<bf16>(a * c - b * s);
    ya[k + half] = dev::from_f<bf16>(b * c + a * s);
  }
}

}  // namespace

void rope_tables(RopeKind kind, const int32_t* positions, int64_t n, int64_t head_dim, double theta,
                 const int64_t* mrope_section, float* cos, float* sin, cudaStream_t stream) {
  VG_CHECK_ARG(head_dim >= 2 && head_dim % 2 == 0 && head_dim <= kRopeMaxHeadDim,
               "cuda::rope_tables: head_dim must be even, >= 2 and <= ", kRopeMaxHeadDim, ", got ", head_dim);
  VG_CHECK_ARG(n >= 0, "cuda::rope_tables: num_tokens must be >= 0, got ", n);
  const int64_t half = head_dim / 2;
  RopePairs pairs{};
  // Frequencies exactly as the CPU computes them (fp32, host), so both paths share one definition.
  if (kind == RopeKind::kVision2D) {
    VG_CHECK_ARG(head_dim % 4 == 0, "cuda::rope_tables: vision2d rotary needs head_dim divisible by 4, got ", head_dim);
    const int64_t q = head_dim / 4;
    vg::rope_inv_freq<float>(kind, head_dim, theta, pairs.freq);
    for (int64_t j = 0; j < q; ++j) pairs.freq[q + j] = pairs.freq[j], pairs.comp[j] = 0, pairs.comp[q + j] = 1;
  } else {
    vg::rope_inv_freq<float>(kind, head_dim, theta, pairs.freq);
    if (kind == RopeKind::kMRope) {
      VG_CHECK_ARG(mrope_section != nullptr, "cuda::rope_tables: mrope needs mrope_section");
      const int64_t s0 = mrope_section[0], s1 = mrope_section[1], s2 = mrope_section[2];
      VG_CHECK_ARG(s0 >= 0 && s1 >= 0 && s2 >= 0 && s0 + s1 + s2 == half, "cuda::rope_tables: mrope_section [", s0,
                   ", ", s1, ", ", s2, "] must be >= 0 and sum to head_dim/2 = ", half);
      for (int64_t k = 0; k < half; ++k) pairs.comp[k] = static_cast<int8_t>(k < s0 ? 0 : (k < s0 + s1 ? 1 : 2));
    }
  }
  if (n == 0) return;
  VG_CHECK_ARG(positions && cos && sin, "cuda::rope_tables: positions, cos and sin must not be null");
  rope_tables_kernel<<<grid_for(n * half, kThreads), kThreads, 0, stream>>>(kind, positions, n, half, pairs, cos, sin);
  VG_CUDA_CHECK_LAUNCH();
}

void rope_apply(const bf16* x, int64_t x_stride, bf16* y, int64_t y_stride, int64_t num_tokens, int64_t heads,
                int64_t head_dim, const float* cos, const float* sin, bool inverse, cudaStream_t stream) {
  VG_CHECK_ARG(head_dim >= 2 && head_dim % 2 == 0, "cuda::rope_apply: head_dim must be even and >= 2, got ", head_dim);
  VG_CHECK_ARG(num_tokens >= 0, "cuda::rope_apply: num_tokens must be >= 0, got ", num_tokens);
  VG_CHECK_ARG(heads >= 1, "cuda::rope_apply: heads must be >= 1, got ", heads);
  VG_CHECK_ARG(x_stride >= heads * head_dim && y_stride >= heads * head_dim, "cuda::rope_apply: token strides (x ",
               x_stride, ", y ", y_stride, ") must be >= heads*head_dim = ", heads * head_dim);
  if (num_tokens == 0) return;
  rope_apply_kernel<<<grid_for(num_tokens * heads * (head_dim / 2), kThreads), kThreads, 0, stream>>>(
      x, x_stride, y, y_stride, num_tokens, heads, head_dim, cos, sin, inverse ? -1.0f : 1.0f);
  VG_CUDA_CHECK_LAUNCH();
}

void rope_apply(const bf16* x, bf16* y, int64_t num_tokens, int64_t heads, int64_t head_dim, const float* cos,
                const float* sin, bool inverse, cudaStream_t stream) {
  rope_apply(x, heads * head_dim, y, heads * head_dim, num_tokens, heads, head_dim, cos, sin, inverse, stream);
}

void rope_backward(const bf16* dy, bf16* dx, int64_t num_tokens, int64_t heads, int64_t head_dim, const float* cos,
                   const float* sin, cudaStream_t stream) {
  rope_apply(dy, dx, num_tokens, heads, head_dim, cos, sin, /*inverse=*/true, stream);
}

}  // namespace cuda
}  // namespace vg
