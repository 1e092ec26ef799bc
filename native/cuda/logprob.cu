// Chunked log-prob gather kernels: see logprob.h.
#include <climits>
#include <cmath>

#include "cuda/cublas_loader.h"
#include "cuda/device_common.cuh"
#include "cuda/logprob.h"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Running per-row statistics: max m, s = Σ exp(z − m), t = Σ exp(z − m)·(z − m), and the target's logit.
// Keeping t relative to the max makes entropy = log s − t / s a difference of two O(entropy) numbers instead of
// lse − Σ p z, two O(|logit|) numbers that cancel in fp32.
struct RowStats {
  float* m;
  float* s;
  float* t;
  float* zt;
};

__global__ void init_stats_kernel(RowStats st, int64_t N) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= N) return;
  st.m[i] = -INFINITY;
  st.s[i] = 0.f;
  st.t[i] = 0.f;
  st.zt[i] = 0.f;
}

// One block per row: merge the chunk [v0, v0 + C) of logits (row-major [N, C]) into the row's statistics.
__global__ void online_lse_kernel(const float* __restrict__ logits, int64_t C, int64_t v0,
                                  const int32_t* __restrict__ targets, RowStats st) {
  __shared__ float redf[32];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * C;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) mx = fmaxf(mx, z[j]);
  mx = dev::block_max(mx, redf, -INFINITY);
  float s = 0.f, t = 0.f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const float d = z[j] - mx;
    const float e = expf(d);
    s += e;
    t += e * d;
  }
  s = dev::block_sum(s, redf);
  t = dev::block_sum(t, redf);
  if (threadIdx.x == 0) {
    // Re-base both partial sums on the new max M: Σ e^(z−M)(z−M) = e^(m−M)·(t + s·(m − M)).
    const float m0 = st.m[row], M = fmaxf(m0, mx);
    const float s0 = st.s[row], t0 = st.t[row];
    const float b = expf(mx - M);
    float s_new = s * b, t_new = (t + s * (mx - M)) * b;
    if (m0 != -INFINITY) {  // the first chunk has nothing to carry (and 0·(−inf) would be NaN)
      const float a = expf(m0 - M);
      s_new += s0 * a;
      t_new += (t0 + s0 * (m0 - M)) * a;
    }
    st.s[row] = s_new;
    st.t[row] = t_new;
    st.m[row] = M;
    const int32_t tg = targets[row];
    if (tg >= v0 && tg < v0 + C) st.zt[row] = z[tg - v0];
  }
}

__global__ void finish_kernel(RowStats st, const int32_t* __restrict__ targets, int64_t N, float* __restrict__ logprob,
                              float* __restrict__ entropy, float* __restrict__ lse) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= N) return;
  const float l = st.m[i] + logf(st.s[i]);
  lse[i] = l;
  const bool has = targets[i] >= 0;
  logprob[i] = has ? st.zt[i] - l : 0.f;
  if (entropy) entropy[i] = has ? logf(st.s[i]) - st.t[i] / st.s[i] : 0.f;
}

// *bad = the first row whose target is >= V; stays INT_MAX when every target is valid.
__global__ void check_targets_kernel(const int32_t* __restrict__ targets, int64_t N, int64_t V, int* bad) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= N) return;
  if (targets[i] >= V) atomicMin(bad, static_cast<int>(i));
}

__global__ void grad_logits_kernel(const float* __restrict__ logits, int64_t C, int64_t v0,
                                   const int32_t* __restrict__ targets, const float* __restrict__ lse,
                                   const float* __restrict__ dlogprob, const float* __restrict__ dentropy,
                                   const float* __restrict__ entropy, bf16* __restrict__ G) {
  const int64_t row = blockIdx.y;
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= C) return;
  const int32_t tg = targets[row];
  float v = 0.f;
  if (tg >= 0) {
    const float logp = logits[row * C + j] - lse[row], p = expf(logp);
    v = dlogprob[row] * ((tg == v0 + j ? 1.f : 0.f) - p);
    if (dentropy) v -= dentropy[row] * p * (logp + entropy[row]);
  }
  G[row * C + j] = __float2bfloat16_rn(v);
}

void check_args(const char* fn, int64_t N, int64_t H, int64_t V, double temperature, int64_t chunk) {
  VG_CHECK_ARG(N >= 0 && H >= 1 && V >= 1, fn, ": need N >= 0, H >= 1, V >= 1, got N=", N, " H=", H, " V=", V);
  VG_CHECK_ARG(N <= 65535, fn, ": N=", N, " rows per call exceeds 65535 (split the batch)");
  VG_CHECK_ARG(V <= INT_MAX, fn, ": V=", V, " is too large");
  VG_CHECK_ARG(std::isfinite(temperature) && temperature > 0, fn, ": temperature must be finite and > 0, got ",
               temperature);
  VG_CHECK_ARG(chunk >= 1, fn, ": chunk must be >= 1, got ", chunk);
}

// Runs the chunked forward into `st` (no target check, no outputs).
void forward_stats(const bf16* h, const bf16* W, const int32_t* targets, RowStats st, int64_t N, int64_t H, int64_t V,
                   double temperature, int64_t chunk, float* logits, cudaStream_t stream) {
  init_stats_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(st, N);
  VG_CUDA_CHECK_LAUNCH();
  const float alpha = static_cast<float>(1.0 / temperature);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t C = v0 + chunk < V ? chunk : V - v0;
    gemm_bf16(false, true, N, C, H, alpha, h, H, W + v0 * H, H, 0.f, logits, CUDA_R_32F, C, stream);
    online_lse_kernel<<<static_cast<unsigned>(N), kThreads, 0, stream>>>(logits, C, v0, targets, st);
    VG_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void logprob_forward(const bf16* h, const bf16* W, const int32_t* targets, float* logprob, float* entropy, float* lse,
                     int64_t N, int64_t H, int64_t V, double temperature, int64_t chunk, cudaStream_t stream) {
  check_args("cuda::logprob_forward", N, H, V, temperature, chunk);
  if (N == 0) return;
  VG_CHECK_ARG(h && W && targets && logprob && lse, "cuda::logprob_forward: null pointer");
  chunk = chunk < V ? chunk : V;
  Scratch scratch(static_cast<size_t>(N * chunk + 4 * N) * sizeof(float) + sizeof(int), stream);
  float* logits = scratch.as<float>();
  RowStats st{logits + N * chunk, logits + N * chunk + N, logits + N * chunk + 2 * N, logits + N * chunk + 3 * N};
  int* bad = reinterpret_cast<int*>(logits + N * chunk + 4 * N);
  const int init_bad = INT_MAX;
  VG_CUDA_CHECK(cudaMemcpyAsync(bad, &init_bad, sizeof(int), cudaMemcpyHostToDevice, stream));
  check_targets_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(targets, N, V, bad);
  VG_CUDA_CHECK_LAUNCH();
  forward_stats(h, W, targets, st, N, H, V, temperature, chunk, logits, stream);
  finish_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(st, targets, N, logprob, entropy, lse);
  VG_CUDA_CHECK_LAUNCH();
  int bad_row = INT_MAX;
  VG_CUDA_CHECK(cudaMemcpyAsync(&bad_row, bad, sizeof(int), cudaMemcpyDeviceToHost, stream));
  VG_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad_row != INT_MAX) {
    int32_t value = 0;
    VG_CUDA_CHECK(cudaMemcpy(&value, targets + bad_row, sizeof(int32_t), cudaMemcpyDeviceToHost));
    VG_CHECK_ARG(false, "cuda::logprob_forward: targets[", bad_row, "] = ", value, " is outside the vocabulary [0, ",
                 V, ")");
  }
}

void logprob_backward(const bf16* h, const bf16* W, const int32_t* targets, const float* lse, const float* dlogprob,
                      const float* dentropy, const float* entropy, float* dh, float* dW, int64_t N, int64_t H,
                      int64_t V, double temperature, int64_t chunk, cudaStream_t stream) {
  check_args("cuda::logprob_backward", N, H, V, temperature, chunk);
  if (N == 0) return;
  VG_CHECK_ARG(h && W && targets && lse && dlogprob, "cuda::logprob_backward: null pointer");
  if (!dh && !dW) return;
  chunk = chunk < V ? chunk : V;
  Scratch scratch(static_cast<size_t>(N * chunk) * (sizeof(float) + sizeof(bf16)) + static_cast<size_t>(7 * N + 1) * sizeof(float),
                  stream);
  float* logits = scratch.as<float>();
  bf16* G = reinterpret_cast<bf16*>(logits + N * chunk);
  float* extra = reinterpret_cast<float*>(G + N * chunk + (N * chunk) % 2);  // keep 4-byte alignment
  if (dentropy && !entropy) {
    // Recompute the entropy with one extra forward pass.
    RowStats st{extra, extra + N, extra + 2 * N, extra + 3 * N};
    float* ent = extra + 4 * N;
    float* lp_tmp = extra + 5 * N;
    float* lse_tmp = extra + 6 * N;
    forward_stats(h, W, targets, st, N, H, V, temperature, chunk, logits, stream);
    finish_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(st, targets, N, lp_tmp, ent, lse_tmp);
    VG_CUDA_CHECK_LAUNCH();
    entropy = ent;
  }
  const float alpha = static_cast<float>(1.0 / temperature);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t C = v0 + chunk < V ? chunk : V - v0;
    const bf16* Wc = W + v0 * H;
    gemm_bf16(false, true, N, C, H, alpha, h, H, Wc, H, 0.f, logits, CUDA_R_32F, C, stream);
    dim3 grid(static_cast<unsigned>((C + kThreads - 1) / kThreads), static_cast<unsigned>(N));
    grad_logits_kernel<<<grid, kThreads, 0, stream>>>(logits, C, v0, targets, lse, dlogprob, dentropy, entropy, G);
    VG_CUDA_CHECK_LAUNCH();
    if (dh) gemm_bf16(false, false, N, H, C, alpha, G, C, Wc, H, v0 == 0 ? 0.f : 1.f, dh, CUDA_R_32F, H, stream);
    if (dW) gemm_bf16(true, false, C, H, N, alpha, G, C, h, H, 1.f, dW + v0 * H, CUDA_R_32F, H, stream);
  }
}

}  // namespace cuda
}  // namespace vg
