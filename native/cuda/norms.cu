// RMSNorm / LayerNorm kernels: see norms.h.
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/norms.h"

namespace vg {
namespace cuda {
namespace {

constexpr int kRowThreads = 256;
constexpr int kColThreads = 256;
constexpr int64_t kChunkRows = 64;

// One block per row. mean is null for RMSNorm (no centring, no bias).
__global__ void norm_forward_kernel(const bf16* x, const bf16* __restrict__ w,
                                    const bf16* __restrict__ b, bf16* y, float* __restrict__ mean_out,
                                    float* __restrict__ rstd_out, int64_t hidden, float eps, bool center) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const bf16* xr = x + row * hidden;
  bf16* yr = y + row * hidden;
  const float inv_n = 1.0f / static_cast<float>(hidden);
  float mu = 0.f;
  if (center) {
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) s += dev::to_f(xr[j]);
    mu = dev::block_sum(s, red) * inv_n;
  }
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
    const float d = dev::to_f(xr[j]) - mu;
    ss += d * d;
  }
  const float rs = 1.0f / sqrtf(dev::block_sum(ss, red) * inv_n + eps);
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
    float v = (dev::to_f(xr[j]) - mu) * rs * dev::to_f(w[j]);
    if (b) v += dev::to_f(b[j]);
    yr[j] = dev::from_f<bf16>(v);
  }
  if (threadIdx.x == 0) {
    rstd_out[row] = rs;
    if (center) mean_out[row] = mu;
  }
}

// One block per row: dx = rstd · (g − [mean(g)] − x̂ · mean(g ⊙ x̂)), g = dy ⊙ w. Each thread reads dy[j] before
// writing dx[j] for the same j, so dx may alias dy.
__global__ void norm_backward_dx_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                        const float* __restrict__ mean, const float* __restrict__ rstd,
                                        const bf16* dy, bf16* dx, int64_t hidden, bool center) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const bf16* xr = x + row * hidden;
  const bf16* dyr = dy + row * hidden;
  bf16* dxr = dx + row * hidden;
  const float rs = rstd[row], mu = center ? mean[row] : 0.f, inv_n = 1.0f / static_cast<float>(hidden);
  float sg = 0.f, sgx = 0.f;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
    const float g = dev::to_f(dyr[j]) * dev::to_f(w[j]);
    sg += g;
    sgx += g * (dev::to_f(xr[j]) - mu) * rs;
  }
  const float mg = center ? dev::block_sum(sg, red) * inv_n : 0.f;
  const float mgx = dev::block_sum(sgx, red) * inv_n;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
    const float g = dev::to_f(dyr[j]) * dev::to_f(w[j]);
    const float xh = (dev::to_f(xr[j]) - mu) * rs;
    dxr[j] = dev::from_f<bf16>(rs * (g - mg - xh * mgx));
  }
}

// Grid (column blocks, row chunks): partial_w[chunk, j] = Σ_{rows in chunk} dy ⊙ x̂, partial_b likewise Σ dy.
__global__ void norm_backward_partials_kernel(const bf16* __restrict__ x, const float* __restrict__ mean,
                                              const float* __restrict__ rstd, const bf16* __restrict__ dy,
                                              float* __restrict__ partial_w, float* __restrict__ partial_b,
                                              int64_t rows, int64_t hidden, bool center) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= hidden) return;
  const int64_t chunk = blockIdx.y, r0 = chunk * kChunkRows;
  const int64_t r1 = r0 + kChunkRows < rows ? r0 + kChunkRows : rows;
  float sw = 0.f, sb = 0.f;
  for (int64_t r = r0; r < r1; ++r) {
    const float d = dev::to_f(dy[r * hidden + j]);
    const float xh = (dev::to_f(x[r * hidden + j]) - (center ? mean[r] : 0.f)) * rstd[r];
    sw += d * xh;
    sb += d;
  }
  if (partial_w) partial_w[chunk * hidden + j] = sw;
  if (partial_b) partial_b[chunk * hidden + j] = sb;
}

// dst[j] += Σ_chunk partial[chunk, j], summed in chunk order in double.
__global__ void sum_partials_kernel(const float* __restrict__ partial, float* __restrict__ dst, int64_t chunks,
                                    int64_t hidden) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= hidden) return;
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c * hidden + j];
  dst[j] = static_cast<float>(static_cast<double>(dst[j]) + s);
}

void check_shape(const char* fn, int64_t rows, int64_t hidden, double eps) {
  VG_CHECK_ARG(rows >= 0 && hidden >= 1, fn, ": rows must be >= 0 and hidden >= 1, got rows=", rows,
               ", hidden=", hidden);
  VG_CHECK_ARG(rows <= 0x7fffffff, fn, ": rows=", rows, " exceeds the grid limit 2^31-1");
  VG_CHECK_ARG(std::isfinite(eps) && eps >= 0, fn, ": eps must be finite and >= 0, got ", eps);
}

void forward(const char* fn, const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean, float* rstd,
             int64_t rows, int64_t hidden, double eps, bool center, cudaStream_t stream) {
  check_shape(fn, rows, hidden, eps);
  VG_CHECK_ARG(x && w && y && rstd && (!center || mean), fn, ": x, w, y, rstd", center ? ", mean" : "",
               " must not be null");
  if (rows == 0) return;
  norm_forward_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(x, w, b, y, mean, rstd, hidden,
                                                                              static_cast<float>(eps), center);
  VG_CUDA_CHECK_LAUNCH();
}

void backward(const char* fn, const bf16* x, const bf16* w, const float* mean, const float* rstd, const bf16* dy,
              bf16* dx, float* dw, float* db, int64_t rows, int64_t hidden, bool center, cudaStream_t stream) {
  check_shape(fn, rows, hidden, 0.0);
  VG_CHECK_ARG(x && w && rstd && dy && (!center || mean), fn, ": x, w, rstd, dy", center ? ", mean" : "",
               " must not be null");
  if (rows == 0) return;
  // Parameter gradients first: they read dy, which dx may overwrite.
  if (dw || db) {
    const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
    VG_CHECK_ARG(chunks <= 65535, fn, ": rows=", rows, " exceeds ", 65535 * kChunkRows, " (grid limit)");
    Scratch scratch(static_cast<size_t>(chunks * hidden) * sizeof(float) * 2, stream);
    float* pw = dw ? scratch.as<float>() : nullptr;
    float* pb = db ? scratch.as<float>() + chunks * hidden : nullptr;
    const unsigned col_blocks = static_cast<unsigned>((hidden + kColThreads - 1) / kColThreads);
    norm_backward_partials_kernel<<<dim3(col_blocks, static_cast<unsigned>(chunks)), kColThreads, 0, stream>>>(
        x, mean, rstd, dy, pw, pb, rows, hidden, center);
    VG_CUDA_CHECK_LAUNCH();
    if (dw) {
      sum_partials_kernel<<<col_blocks, kColThreads, 0, stream>>>(pw, dw, chunks, hidden);
      VG_CUDA_CHECK_LAUNCH();
    }
    if (db) {
      sum_partials_kernel<<<col_blocks, kColThreads, 0, stream>>>(pb, db, chunks, hidden);
      VG_CUDA_CHECK_LAUNCH();
    }
  }
  if (dx) {
    norm_backward_dx_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(x, w, mean, rstd, dy, dx, hidden,
                                                                                    center);
    VG_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void rms_norm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int64_t rows, int64_t hidden, double eps,
                      cudaStream_t stream) {
  forward("cuda::rms_norm_forward", x, w, nullptr, y, nullptr, rstd, rows, hidden, eps, false, stream);
}

void rms_norm_backward(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, bf16* dx, float* dw,
                       int64_t rows, int64_t hidden, cudaStream_t stream) {
  backward("cuda::rms_norm_backward", x, w, nullptr, rstd, dy, dx, dw, nullptr, rows, hidden, false, stream);
}

void layer_norm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean, float* rstd, int64_t rows,
                        int64_t hidden, double eps, cudaStream_t stream) {
  forward("cuda::layer_norm_forward", x, w, b, y, mean, rstd, rows, hidden, eps, true, stream);
}

void layer_norm_backward(const bf16* x, const bf16* w, const float* mean, const float* rstd, const bf16* dy, bf16* dx,
                         float* dw, float* db, int64_t rows, int64_t hidden, cudaStream_t stream) {
  backward("cuda::layer_norm_backward", x, w, mean, rstd, dy, dx, dw, db, rows, hidden, true, stream);
}

}  // namespace cuda
}  // namespace vg
