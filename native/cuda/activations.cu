// Activation kernels: see activations.h. Grid-stride loops over flat indices; fp32 math.
#include "cuda/activations.h"
#include "cuda/device_common.cuh"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kSaturate = 1e4f;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kTanhCoef = 0.044715f;
constexpr float kQuickGelu = 1.702f;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
// σ(a) and 1 − σ(a) = σ(−a), both to full relative precision, from one exp of a non-positive argument.
__device__ __forceinline__ void sigmoid_pair(float a, float& s, float& c) {
  const float e = expf(-fabsf(a)), r = 1.0f / (1.0f + e);
  if (a >= 0) s = r, c = e * r;
  else s = e * r, c = r;
}
__device__ __forceinline__ float silu(float a) { return a * sigmoid(a); }
__device__ __forceinline__ float silu_grad(float a) {
  float s, c;
  sigmoid_pair(a, s, c);
  return s * (1.0f + a * c);
}
__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * erfcf(-x * kInvSqrt2); }
__device__ __forceinline__ float gelu_erf_grad(float x) {
  return 0.5f * erfcf(-x * kInvSqrt2) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
}
__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + kTanhCoef * x * x * x);
  return x * sigmoid(2.0f * u);
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
  if (fabsf(x) > kSaturate) return x > 0 ? 1.0f : 0.0f;
  const float x2 = x * x;
  const float u = kSqrt2OverPi * x * (1.0f + kTanhCoef * x2);
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kTanhCoef * x2);
  float s, c;
  sigmoid_pair(2.0f * u, s, c);
  return s * (1.0f + 2.0f * x * c * du);
}
__device__ __forceinline__ float quick_gelu(float x) { return x * sigmoid(kQuickGelu * x); }
__device__ __forceinline__ float quick_gelu_grad(float x) {
  if (fabsf(x) > kSaturate) return x > 0 ? 1.0f : 0.0f;
  const float a = kQuickGelu * x;
  float s, c;
  sigmoid_pair(a, s, c);
  return s * (1.0f + a * c);
}

enum class Act { GeluErf, GeluTanh, QuickGelu };

template <Act A>
__device__ __forceinline__ float act(float x) {
  if (A == Act::GeluErf) return gelu_erf(x);
  if (A == Act::GeluTanh) return gelu_tanh(x);
  return quick_gelu(x);
}
template <Act A>
__device__ __forceinline__ float act_grad(float x) {
  if (A == Act::GeluErf) return gelu_erf_grad(x);
  if (A == Act::GeluTanh) return gelu_tanh_grad(x);
  return quick_gelu_grad(x);
}

template <Act A>
__global__ void act_forward_kernel(const bf16* x, bf16* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = dev::from_f<bf16>(act<A>(dev::to_f(x[i])));
}

template <Act A>
__global__ void act_backward_kernel(const bf16* x, const bf16* dy, bf16* dx, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = dev::from_f<bf16>(dev::to_f(dy[i]) * act_grad<A>(dev::to_f(x[i])));
}

// SwiGLU over `rows` rows of `inter` columns; gate/up/out/dgate/dup rows are `in_stride` / `out_stride` apart
// (in_stride = inter, out_stride = inter for separate arrays; 2·inter and inter for the fused layout).
__global__ void swiglu_forward_kernel(const bf16* gate, const bf16* up, bf16* out, int64_t rows, int64_t inter,
                                      int64_t in_stride) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, c = i - r * inter, src = r * in_stride + c;
    out[i] = dev::from_f<bf16>(silu(dev::to_f(gate[src])) * dev::to_f(up[src]));
  }
}

__global__ void swiglu_backward_kernel(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup,
                                       int64_t rows, int64_t inter, int64_t in_stride) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, c = i - r * inter, src = r * in_stride + c;
    const float a = dev::to_f(gate[src]), u = dev::to_f(up[src]), g = dev::to_f(dout[i]);  // read before writing
    if (dgate) dgate[src] = dev::from_f<bf16>(g * u * silu_grad(a));
    if (dup) dup[src] = dev::from_f<bf16>(g * silu(a));
  }
}

void check_n(const char* fn, int64_t n) { VG_CHECK_ARG(n >= 0, fn, ": length must be >= 0, got ", n); }
void check_rows(const char* fn, int64_t rows, int64_t inter) {
  VG_CHECK_ARG(rows >= 0 && inter >= 1, fn, ": rows must be >= 0 and inter >= 1, got rows ", rows, ", inter ",
               inter);
}

template <Act A>
void launch_forward(const bf16* x, bf16* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  act_forward_kernel<A><<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  VG_CUDA_CHECK_LAUNCH();
}
template <Act A>
void launch_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  act_backward_kernel<A><<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, dy, dx, n);
  VG_CUDA_CHECK_LAUNCH();
}

}  // namespace

void swiglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream) {
  check_n("cuda::swiglu_forward", n);
  if (n == 0) return;
  swiglu_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(gate, up, out, 1, n, n);
  VG_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup, int64_t n,
                     cudaStream_t stream) {
  check_n("cuda::swiglu_backward", n);
  if (n == 0 || (!dgate && !dup)) return;
  swiglu_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, 1, n, n);
  VG_CUDA_CHECK_LAUNCH();
}

void swiglu_fused_forward(const bf16* gate_up, bf16* out, int64_t rows, int64_t inter, cudaStream_t stream) {
  check_rows("cuda::swiglu_fused_forward", rows, inter);
  if (rows == 0) return;
  swiglu_forward_kernel<<<grid_for(rows * inter, kThreads), kThreads, 0, stream>>>(gate_up, gate_up + inter, out,
                                                                                  rows, inter, 2 * inter);
  VG_CUDA_CHECK_LAUNCH();
}

void swiglu_fused_backward(const bf16* gate_up, const bf16* dout, bf16* dgate_up, int64_t rows, int64_t inter,
                           cudaStream_t stream) {
  check_rows("cuda::swiglu_fused_backward", rows, inter);
  if (rows == 0) return;
  swiglu_backward_kernel<<<grid_for(rows * inter, kThreads), kThreads, 0, stream>>>(
      gate_up, gate_up + inter, dout, dgate_up, dgate_up + inter, rows, inter, 2 * inter);
  VG_CUDA_CHECK_LAUNCH();
}

void gelu_forward(const bf16* x, bf16* y, int64_t n, GeluApprox approx, cudaStream_t stream) {
  check_n("cuda::gelu_forward", n);
  if (approx == GeluApprox::kTanh) launch_forward<Act::GeluTanh>(x, y, n, stream);
  else launch_forward<Act::GeluErf>(x, y, n, stream);
}

void gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t n, GeluApprox approx, cudaStream_t stream) {
  check_n("cuda::gelu_backward", n);
  if (approx == GeluApprox::kTanh) launch_backward<Act::GeluTanh>(x, dy, dx, n, stream);
  else launch_backward<Act::GeluErf>(x, dy, dx, n, stream);
}

void quick_gelu_forward(const bf16* x, bf16* y, int64_t n, cudaStream_t stream) {
  check_n("cuda::quick_gelu_forward", n);
  launch_forward<Act::QuickGelu>(x, y, n, stream);
}

void quick_gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t n, cudaStream_t stream) {
  check_n("cuda::quick_gelu_backward", n);
  launch_backward<Act::QuickGelu>(x, dy, dx, n, stream);
}

}  // namespace cuda
}  // namespace vg
