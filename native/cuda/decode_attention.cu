// Paged decode attention kernels: see decode_attention.h.
#include <cmath>

#include "cuda/decode_attention.h"
#include "cuda/device_common.cuh"

namespace vg {
namespace cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head_dim <= 256

struct Args {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const int32_t* table;
  const int32_t* lens;
  bf16* out;
  int heads, kv_heads, head_dim, page_size, max_pages;
  float scale;
};

// Grid (heads, batch), 128 threads. Lane l holds dims l, l + 32, ... (< head_dim).
__global__ void __launch_bounds__(kWarps * 32) paged_decode_kernel(Args a) {
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][kMaxPerLane * 32];
  const int b = blockIdx.y, h = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kh = h / (a.heads / a.kv_heads), D = a.head_dim;
  const int len = a.lens[b];
  const bf16* qh = a.q + (static_cast<int64_t>(b) * a.heads + h) * D;
  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int d = lane + 32 * e;
    qv[e] = d < D ? dev::to_f(qh[d]) : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = warp; j < len; j += kWarps) {
    const int page = a.table[static_cast<int64_t>(b) * a.max_pages + j / a.page_size];
    const int64_t row = ((static_cast<int64_t>(page) * a.page_size + j % a.page_size) * a.kv_heads + kh) * D;
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane + 32 * e;
      if (d < D) s += qv[e] * dev::to_f(a.k[row + d]);
    }
    s = dev::warp_sum(s) * a.scale;
    const float m_new = fmaxf(m, s);
    const float alpha = m == -INFINITY ? 0.f : expf(m - m_new), p = expf(s - m_new);
    l = l * alpha + p;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane + 32 * e;
      acc[e] = acc[e] * alpha + (d < D ? p * dev::to_f(a.v[row + d]) : 0.f);
    }
    m = m_new;
  }
  if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) s_acc[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  if (warp != 0) return;
  // Merge the four warps' states in warp order.
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  float L = 0.f, o[kMaxPerLane] = {};
  for (int w = 0; w < kWarps; ++w) {
    if (s_m[w] == -INFINITY) continue;  // this warp saw no position
    const float f = expf(s_m[w] - M);
    L += s_l[w] * f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) o[e] += s_acc[w][lane + 32 * e] * f;
  }
  const float inv = L > 0.f ? 1.f / L : 0.f;
  bf16* dst = a.out + (static_cast<int64_t>(b) * a.heads + h) * D;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int d = lane + 32 * e;
    if (d < D) dst[d] = __float2bfloat16_rn(o[e] * inv);
  }
}

// One thread per (sequence, kv head, dim).
__global__ void paged_store_kernel(Args a, const bf16* __restrict__ k_new, const bf16* __restrict__ v_new,
                                   const int32_t* __restrict__ positions, bf16* k_pages, bf16* v_pages,
                                   int64_t batch) {
  const int64_t per = static_cast<int64_t>(a.kv_heads) * a.head_dim;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch * per) return;
  const int64_t b = i / per, r = i % per;
  const int pos = positions[b];
  if (pos < 0) return;
  const int page = a.table[b * a.max_pages + pos / a.page_size];
  const int64_t dst = (static_cast<int64_t>(page) * a.page_size + pos % a.page_size) * per + r;
  k_pages[dst] = k_new[i];
  v_pages[dst] = v_new[i];
}

Args make_args(const char* fn, const PagedKvDims& d) {
  VG_CHECK_ARG(d.batch >= 0 && d.heads >= 1 && d.kv_heads >= 1 && d.heads % d.kv_heads == 0, fn, ": heads ", d.heads,
               " must be a positive multiple of kv_heads ", d.kv_heads, " (batch ", d.batch, ")");
  VG_CHECK_ARG(d.head_dim >= 1 && d.head_dim <= 32 * kMaxPerLane, fn, ": head_dim must be in [1, ", 32 * kMaxPerLane,
               "], got ", d.head_dim);
  VG_CHECK_ARG(d.page_size >= 1 && d.num_pages >= 1 && d.max_pages >= 1, fn, ": page_size, num_pages, max_pages must be >= 1, got ",
               d.page_size, ", ", d.num_pages, ", ", d.max_pages);
  VG_CHECK_ARG(d.num_pages * d.page_size * d.kv_heads * d.head_dim < (int64_t(1) << 40), fn, ": the page pool is too large");
  VG_CHECK_ARG(d.heads <= 65535 && d.batch <= 65535, fn, ": heads and batch must be <= 65535 (grid limit)");
  VG_CHECK_ARG(std::isfinite(d.scale) && d.scale > 0, fn, ": scale must be finite and > 0, got ", d.scale);
  Args a{};
  a.heads = static_cast<int>(d.heads);
  a.kv_heads = static_cast<int>(d.kv_heads);
  a.head_dim = static_cast<int>(d.head_dim);
  a.page_size = static_cast<int>(d.page_size);
  a.max_pages = static_cast<int>(d.max_pages);
  a.scale = static_cast<float>(d.scale);
  return a;
}

}  // namespace

void paged_decode_attention(const PagedKvDims& dims, const bf16* q, const bf16* k_pages, const bf16* v_pages,
                            const int32_t* block_table, const int32_t* seq_lens, bf16* out, cudaStream_t stream) {
  Args a = make_args("cuda::paged_decode_attention", dims);
  if (dims.batch == 0) return;
  VG_CHECK_ARG(q && k_pages && v_pages && block_table && seq_lens && out, "cuda::paged_decode_attention: null pointer");
  VG_CHECK_ARG(q != out, "cuda::paged_decode_attention: out must not alias q");
  a.q = q, a.k = k_pages, a.v = v_pages, a.table = block_table, a.lens = seq_lens, a.out = out;
  paged_decode_kernel<<<dim3(static_cast<unsigned>(dims.heads), static_cast<unsigned>(dims.batch)), kWarps * 32, 0,
                        stream>>>(a);
  VG_CUDA_CHECK_LAUNCH();
}

void paged_kv_store(const PagedKvDims& dims, const bf16* k_new, const bf16* v_new, const int32_t* block_table,
                    const int32_t* positions, bf16* k_pages, bf16* v_pages, cudaStream_t stream) {
  Args a = make_args("cuda::paged_kv_store", dims);
  if (dims.batch == 0) return;
  VG_CHECK_ARG(k_new && v_new && block_table && positions && k_pages && v_pages, "cuda::paged_kv_store: null pointer");
  a.table = block_table;
  const int64_t n = dims.batch * dims.kv_heads * dims.head_dim;
  paged_store_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(a, k_new, v_new, positions, k_pages,
                                                                                 v_pages, dims.batch);
  VG_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda
}  // namespace vg
