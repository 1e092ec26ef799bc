// Flash attention kernels (mma.sync m16n8k16 bf16 -> fp32): see attention.h.
//
// Fragment layouts of mma.sync.m16n8k16.row.col (PTX ISA), with g = lane / 4 and t = lane % 4:
//   A (16 x 16, row-major):  a0 = A[g][2t, 2t+1]  a1 = A[g+8][2t, 2t+1]  a2 = A[g][2t+8, 2t+9]  a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n):       b0 = B[2t, 2t+1][g]  b1 = B[2t+8, 2t+9][g]
//   C (16 x 8, fp32):        c0, c1 = C[g][2t, 2t+1]   c2, c3 = C[g+8][2t, 2t+1]
// Two adjacent C tiles (columns 0-7 and 8-15) hold exactly an A fragment's elements, which is how P = softmax(S)
// feeds the next product without going through shared memory. Each 32-bit register packs two bf16, the lower
// k (or column) index in the low half.
#include <cmath>

#include "cuda/attention.h"
#include "cuda/device_common.cuh"

namespace vg {
namespace cuda {
namespace {

constexpr int kTile = 64;     // queries per block (forward, dQ) and keys per block (dK/dV); also the inner tile
constexpr int kThreads = 128;  // 4 warps x 16 rows

struct Params {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const bf16* out;
  const float* lse_in;
  const bf16* dout;
  const float* dsum;  // D_i = dO_i · o_i, [Hq, total_q]
  const int32_t* cu_q;
  const int32_t* cu_k;
  bf16* o;
  float* lse;
  bf16* dq;
  bf16* dk;
  bf16* dv;
  int64_t total_q;
  int hq, hkv;
  bool causal;
  float scale;
};

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t pack_raw(bf16 lo, bf16 hi) {
  __nv_bfloat162 v;
  v.x = lo;
  v.y = hi;
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t ld32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// A fragment of the 16 x 16 block of a row-major shared tile at (row0, col0), leading dimension ld.
__device__ __forceinline__ void load_a(uint32_t a[4], const bf16* s, int ld, int row0, int col0, int g, int t) {
  const bf16* p = s + (row0 + g) * ld + col0 + 2 * t;
  a[0] = ld32(p);
  a[1] = ld32(p + 8 * ld);
  a[2] = ld32(p + 8);
  a[3] = ld32(p + 8 * ld + 8);
}
// B fragment with B[k][n] = M[n0 + n][k0 + k] (M row-major: "n-major", e.g. Kᵀ for S = Q Kᵀ).
__device__ __forceinline__ void load_b_nmajor(uint32_t b[2], const bf16* s, int ld, int n0, int k0, int g, int t) {
  const bf16* p = s + (n0 + g) * ld + k0 + 2 * t;
  b[0] = ld32(p);
  b[1] = ld32(p + 8);
}
// B fragment with B[k][n] = M[k0 + k][n0 + n] (M row-major: "k-major", e.g. V for O = P V).
__device__ __forceinline__ void load_b_kmajor(uint32_t b[2], const bf16* s, int ld, int k0, int n0, int g, int t) {
  const bf16* p = s + (k0 + 2 * t) * ld + n0 + g;
  b[0] = pack_raw(p[0], p[ld]);
  b[1] = pack_raw(p[8 * ld], p[9 * ld]);
}
// The A fragment of columns [16kk, 16kk + 16) of a 16 x 64 fp32 accumulator held as 8 C tiles.
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c[8][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// Copies rows [r0, r0 + 64) of head `head` of a [rows, heads, D] tensor into a 64 x LD shared tile; rows at or
// beyond `rows` are zero (so a masked key's V row contributes 0, never a stale NaN).
template <int D, int LD>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* g, int64_t base_row, int r0, int rows, int heads,
                                          int head) {
  constexpr int kVec = D / 8;  // 16-byte vectors per row
  for (int idx = threadIdx.x; idx < kTile * kVec; idx += blockDim.x) {
    const int r = idx / kVec, c = idx % kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r0 + r < rows)
      val = *reinterpret_cast<const uint4*>(g + ((base_row + r0 + r) * heads + head) * static_cast<int64_t>(D) + c * 8);
    *reinterpret_cast<uint4*>(s + r * LD + c * 8) = val;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Forward: grid (query tiles, Hq, B).
template <int D>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(Params p) {
  constexpr int LD = D + 8;  // padded rows: consecutive rows start in different banks
  extern __shared__ uint4 smem_u4[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_u4);
  bf16* sK = sQ + kTile * LD;
  bf16* sV = sK + kTile * LD;
  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * kTile;
  const int q_base = p.cu_q[b], Lq = p.cu_q[b + 1] - q_base;
  const int k_base = p.cu_k[b], Lk = p.cu_k[b + 1] - k_base;
  if (i0 >= Lq) return;
  const int hk = h / (p.hq / p.hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int off = Lk - Lq;  // causal: key j visible from query i iff j <= i + off
  load_tile<D, LD>(sQ, p.q, q_base, i0, Lq, p.hq, h);

  float o[D / 8][4];
#pragma unroll
  for (int d = 0; d < D / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  int kend = Lk;
  if (p.causal) kend = min(Lk, max(0, i0 + kTile - 1 + off + 1));

  for (int j0 = 0; j0 < kend; j0 += kTile) {
    __syncthreads();  // the previous tile's reads are done (and sQ is written, on the first pass)
    load_tile<D, LD>(sK, p.k, k_base, j0, Lk, p.hkv, hk);
    load_tile<D, LD>(sV, p.v, k_base, j0, Lk, p.hkv, hk);
    __syncthreads();
    float s[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      load_a(a, sQ, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        uint32_t bb[2];
        load_b_nmajor(bb, sK, LD, nt * 8, kk * 16, g, t);
        mma16816(s[nt], a, bb);
      }
    }
    // Scale and mask, then the online softmax per row (each row's 64 scores are spread over a quad of lanes).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int j = j0 + nt * 8 + 2 * t + c;
          float x = s[nt][2 * r + c] * p.scale;
          if (j >= Lk || (p.causal && j > row[r] + off)) x = -INFINITY;
          s[nt][2 * r + c] = x;
          mx = fmaxf(mx, x);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float base = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet stays at 0
      const float alpha = m[r] == -INFINITY ? 0.f : __expf(m[r] - base);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const float e = expf(s[nt][2 * r + c] - base);  // exp(-inf) = 0 for masked scores
          s[nt][2 * r + c] = e;
          sum += e;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
#pragma unroll
      for (int d = 0; d < D / 8; ++d) o[d][2 * r] *= alpha, o[d][2 * r + 1] *= alpha;
    }
    // O += P V.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      acc_to_a(a, s, kk);
#pragma unroll
      for (int d = 0; d < D / 8; ++d) {
        uint32_t bb[2];
        load_b_kmajor(bb, sV, LD, kk * 16, d * 8, g, t);
        mma16816(o[d], a, bb);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= Lq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    bf16* dst = p.o + (static_cast<int64_t>(q_base + row[r]) * p.hq + h) * D;
#pragma unroll
    for (int d = 0; d < D / 8; ++d)
      *reinterpret_cast<__nv_bfloat162*>(dst + d * 8 + 2 * t) =
          __floats2bfloat162_rn(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
    if (t == 0) p.lse[static_cast<int64_t>(h) * p.total_q + q_base + row[r]] = l[r] > 0.f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// ---------------------------------------------------------------------------------------------------------
// D_i = dO_i · o_i for every (row, head): one warp per (row, head).
__global__ void attn_dsum_kernel(const bf16* __restrict__ out, const bf16* __restrict__ dout, float* __restrict__ dsum,
                                 int64_t total_q, int hq, int d) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= total_q * hq) return;
  const int64_t row = w / hq;
  const int h = static_cast<int>(w % hq);
  const bf16* o = out + w * d;
  const bf16* g = dout + w * d;
  float s = 0.f;
  for (int j = lane; j < d; j += 32) s += dev::to_f(o[j]) * dev::to_f(g[j]);
  s = dev::warp_sum(s);
  if (lane == 0) dsum[static_cast<int64_t>(h) * total_q + row] = s;
}

// dK, dV: grid (key tiles, Hkv, B). Warp w owns keys j0 + 16w .. j0 + 16w + 15 and accumulates over every query
// tile of every query head in the GQA group.
template <int D>
__global__ void __launch_bounds__(kThreads) attn_bwd_dkdv_kernel(Params p) {
  constexpr int LD = D + 8;
  extern __shared__ uint4 smem_u4[];
  bf16* sK = reinterpret_cast<bf16*>(smem_u4);
  bf16* sV = sK + kTile * LD;
  bf16* sQ = sV + kTile * LD;
  bf16* sdO = sQ + kTile * LD;
  float* sL = reinterpret_cast<float*>(sdO + kTile * LD);
  float* sDs = sL + kTile;
  const int b = blockIdx.z, hk = blockIdx.y, j0 = blockIdx.x * kTile;
  const int q_base = p.cu_q[b], Lq = p.cu_q[b + 1] - q_base;
  const int k_base = p.cu_k[b], Lk = p.cu_k[b + 1] - k_base;
  if (j0 >= Lk) return;
  const int group = p.hq / p.hkv;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int off = Lk - Lq;
  load_tile<D, LD>(sK, p.k, k_base, j0, Lk, p.hkv, hk);
  load_tile<D, LD>(sV, p.v, k_base, j0, Lk, p.hkv, hk);
  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int d = 0; d < D / 8; ++d)
#pragma unroll
    for (int c = 0; c < 4; ++c) dk[d][c] = dv[d][c] = 0.f;
  const int key[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
  // Causal: query i sees key j iff j <= i + off, so queries below j0 - off see none of this tile.
  int qstart = 0;
  if (p.causal) qstart = max(0, j0 - off) / kTile * kTile;

  for (int hh = hk * group; hh < (hk + 1) * group; ++hh) {
    for (int i0 = qstart; i0 < Lq; i0 += kTile) {
      __syncthreads();
      load_tile<D, LD>(sQ, p.q, q_base, i0, Lq, p.hq, hh);
      load_tile<D, LD>(sdO, p.dout, q_base, i0, Lq, p.hq, hh);
      for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
        const bool in = i0 + r < Lq;
        const int64_t idx = static_cast<int64_t>(hh) * p.total_q + q_base + i0 + r;
        sL[r] = in ? p.lse_in[idx] : INFINITY;  // exp(s - inf) = 0 for rows past the sequence
        sDs[r] = in ? p.dsum[idx] : 0.f;
      }
      __syncthreads();
      // Sᵀ (16 keys x 64 queries) = K Qᵀ.
      float st[8][4], dp[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) st[nt][c] = dp[nt][c] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t ak[4], av[4];
        load_a(ak, sK, LD, warp * 16, kk * 16, g, t);
        load_a(av, sV, LD, warp * 16, kk * 16, g, t);
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          uint32_t bq[2], bo[2];
          load_b_nmajor(bq, sQ, LD, nt * 8, kk * 16, g, t);
          load_b_nmajor(bo, sdO, LD, nt * 8, kk * 16, g, t);
          mma16816(st[nt], ak, bq);  // Sᵀ = K Qᵀ
          mma16816(dp[nt], av, bo);  // dPᵀ = V dOᵀ
        }
      }
      // Pᵀ = exp(scale·Sᵀ − lse[query]) where visible; dSᵀ = Pᵀ ⊙ (dPᵀ − D[query]).
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int qi = nt * 8 + 2 * t + (c & 1);
          const int i = i0 + qi, j = key[c >> 1];
          const bool vis = i < Lq && j < Lk && (!p.causal || j <= i + off);
          const float pr = vis ? expf(st[nt][c] * p.scale - sL[qi]) : 0.f;
          st[nt][c] = pr;
          dp[nt][c] = pr * (dp[nt][c] - sDs[qi]);
        }
      // dV += Pᵀ dO;  dK += dSᵀ Q  (the query index is the reduction dimension).
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t ap[4], ads[4];
        acc_to_a(ap, st, kk);
        acc_to_a(ads, dp, kk);
#pragma unroll
        for (int d = 0; d < D / 8; ++d) {
          uint32_t bo[2], bq[2];
          load_b_kmajor(bo, sdO, LD, kk * 16, d * 8, g, t);
          load_b_kmajor(bq, sQ, LD, kk * 16, d * 8, g, t);
          mma16816(dv[d], ap, bo);
          mma16816(dk[d], ads, bq);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= Lk) continue;
    const int64_t base = (static_cast<int64_t>(k_base + key[r]) * p.hkv + hk) * D;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      *reinterpret_cast<__nv_bfloat162*>(p.dk + base + d * 8 + 2 * t) =
          __floats2bfloat162_rn(dk[d][2 * r] * p.scale, dk[d][2 * r + 1] * p.scale);
      *reinterpret_cast<__nv_bfloat162*>(p.dv + base + d * 8 + 2 * t) =
          __floats2bfloat162_rn(dv[d][2 * r], dv[d][2 * r + 1]);
    }
  }
}

// dQ: grid (query tiles, Hq, B). Warp w owns queries i0 + 16w .. + 15 and accumulates over the key tiles.
template <int D>
__global__ void __launch_bounds__(kThreads) attn_bwd_dq_kernel(Params p) {
  constexpr int LD = D + 8;
  extern __shared__ uint4 smem_u4[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_u4);
  bf16* sdO = sQ + kTile * LD;
  bf16* sK = sdO + kTile * LD;
  bf16* sV = sK + kTile * LD;
  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * kTile;
  const int q_base = p.cu_q[b], Lq = p.cu_q[b + 1] - q_base;
  const int k_base = p.cu_k[b], Lk = p.cu_k[b + 1] - k_base;
  if (i0 >= Lq) return;
  const int hk = h / (p.hq / p.hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int off = Lk - Lq;
  load_tile<D, LD>(sQ, p.q, q_base, i0, Lq, p.hq, h);
  load_tile<D, LD>(sdO, p.dout, q_base, i0, Lq, p.hq, h);
  const int row[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  float lse_r[2], ds_r[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool in = row[r] < Lq;
    const int64_t idx = static_cast<int64_t>(h) * p.total_q + q_base + row[r];
    lse_r[r] = in ? p.lse_in[idx] : INFINITY;
    ds_r[r] = in ? p.dsum[idx] : 0.f;
  }
  float dq[D / 8][4];
#pragma unroll
  for (int d = 0; d < D / 8; ++d) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;
  int kend = Lk;
  if (p.causal) kend = min(Lk, max(0, i0 + kTile - 1 + off + 1));
  for (int j0 = 0; j0 < kend; j0 += kTile) {
    __syncthreads();
    load_tile<D, LD>(sK, p.k, k_base, j0, Lk, p.hkv, hk);
    load_tile<D, LD>(sV, p.v, k_base, j0, Lk, p.hkv, hk);
    __syncthreads();
    float s[8][4], dp[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) s[nt][c] = dp[nt][c] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t aq[4], ao[4];
      load_a(aq, sQ, LD, warp * 16, kk * 16, g, t);
      load_a(ao, sdO, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        uint32_t bk[2], bv[2];
        load_b_nmajor(bk, sK, LD, nt * 8, kk * 16, g, t);
        load_b_nmajor(bv, sV, LD, nt * 8, kk * 16, g, t);
        mma16816(s[nt], aq, bk);   // S = Q Kᵀ
        mma16816(dp[nt], ao, bv);  // dP = dO Vᵀ
      }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int r = c >> 1, j = j0 + nt * 8 + 2 * t + (c & 1);
        const bool vis = row[r] < Lq && j < Lk && (!p.causal || j <= row[r] + off);
        const float pr = vis ? expf(s[nt][c] * p.scale - lse_r[r]) : 0.f;
        s[nt][c] = pr * (dp[nt][c] - ds_r[r]);  // dS
      }
    // dQ += dS K (the key index is the reduction dimension).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      acc_to_a(a, s, kk);
#pragma unroll
      for (int d = 0; d < D / 8; ++d) {
        uint32_t bb[2];
        load_b_kmajor(bb, sK, LD, kk * 16, d * 8, g, t);
        mma16816(dq[d], a, bb);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= Lq) continue;
    bf16* dst = p.dq + (static_cast<int64_t>(q_base + row[r]) * p.hq + h) * D;
#pragma unroll
    for (int d = 0; d < D / 8; ++d)
      *reinterpret_cast<__nv_bfloat162*>(dst + d * 8 + 2 * t) =
          __floats2bfloat162_rn(dq[d][2 * r] * p.scale, dq[d][2 * r + 1] * p.scale);
  }
}

// ---------------------------------------------------------------------------------------------------------
void check_dims(const char* fn, const AttentionDims& d, int64_t max_q, int64_t max_k) {
  VG_CHECK_ARG(d.batch >= 0 && d.total_q >= 0 && d.total_k >= 0, fn, ": batch, total_q, total_k must be >= 0, got ",
               d.batch, ", ", d.total_q, ", ", d.total_k);
  VG_CHECK_ARG(d.head_dim == 64 || d.head_dim == 80 || d.head_dim == 128, fn,
               ": the GPU kernels support head_dim 64, 80 and 128, got ", d.head_dim);
  VG_CHECK_ARG(d.num_heads >= 1 && d.num_kv_heads >= 1 && d.num_heads % d.num_kv_heads == 0, fn, ": num_heads ",
               d.num_heads, " must be a positive multiple of num_kv_heads ", d.num_kv_heads);
  VG_CHECK_ARG(d.num_heads <= 65535 && d.batch <= 65535, fn, ": num_heads and batch must be <= 65535 (grid limit)");
  VG_CHECK_ARG(max_q >= 0 && max_k >= 0 && max_q <= d.total_q && max_k <= d.total_k, fn, ": max_seqlen_q ", max_q,
               " / max_seqlen_k ", max_k, " must be in [0, total]");
  VG_CHECK_ARG(d.total_q < (int64_t(1) << 31) && d.total_k < (int64_t(1) << 31), fn, ": total rows must be < 2^31");
  VG_CHECK_ARG(std::isfinite(d.scale) && d.scale > 0, fn, ": scale must be finite and > 0, got ", d.scale);
}

Params make_params(const AttentionDims& d, const int32_t* cu_q, const int32_t* cu_k) {
  Params p{};
  p.cu_q = cu_q;
  p.cu_k = cu_k;
  p.total_q = d.total_q;
  p.hq = static_cast<int>(d.num_heads);
  p.hkv = static_cast<int>(d.num_kv_heads);
  p.causal = d.causal;
  p.scale = static_cast<float>(d.scale);
  return p;
}

template <typename Kernel>
void launch(Kernel kernel, dim3 grid, size_t smem, const Params& p, cudaStream_t stream) {
  if (smem > 48 * 1024) VG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  VG_CUDA_CHECK_LAUNCH();
}

template <int D>
void forward_d(const Params& p, int64_t batch, int64_t max_q, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((max_q + kTile - 1) / kTile), static_cast<unsigned>(p.hq), static_cast<unsigned>(batch));
  launch(attn_fwd_kernel<D>, grid, 3 * kTile * (D + 8) * sizeof(bf16), p, stream);
}

template <int D>
void backward_d(const Params& p, int64_t batch, int64_t max_q, int64_t max_k, cudaStream_t stream) {
  const dim3 grid_kv(static_cast<unsigned>((max_k + kTile - 1) / kTile), static_cast<unsigned>(p.hkv),
                     static_cast<unsigned>(batch));
  launch(attn_bwd_dkdv_kernel<D>, grid_kv, 4 * kTile * (D + 8) * sizeof(bf16) + 2 * kTile * sizeof(float), p, stream);
  const dim3 grid_q(static_cast<unsigned>((max_q + kTile - 1) / kTile), static_cast<unsigned>(p.hq), static_cast<unsigned>(batch));
  launch(attn_bwd_dq_kernel<D>, grid_q, 4 * kTile * (D + 8) * sizeof(bf16), p, stream);
}

}  // namespace

void attention_forward(const AttentionDims& dims, int64_t max_seqlen_q, int64_t max_seqlen_k, const bf16* q,
                       const bf16* k, const bf16* v, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k,
                       bf16* out, float* lse, cudaStream_t stream) {
  check_dims("cuda::attention_forward", dims, max_seqlen_q, max_seqlen_k);
  if (dims.batch == 0 || dims.total_q == 0 || max_seqlen_q == 0) return;
  VG_CHECK_ARG(q && k && v && cu_seqlens_q && cu_seqlens_k && out && lse, "cuda::attention_forward: null pointer");
  Params p = make_params(dims, cu_seqlens_q, cu_seqlens_k);
  p.q = q, p.k = k, p.v = v, p.o = out, p.lse = lse;
  switch (dims.head_dim) {
    case 64: forward_d<64>(p, dims.batch, max_seqlen_q, stream); break;
    case 80: forward_d<80>(p, dims.batch, max_seqlen_q, stream); break;
    default: forward_d<128>(p, dims.batch, max_seqlen_q, stream); break;
  }
}

void attention_backward(const AttentionDims& dims, int64_t max_seqlen_q, int64_t max_seqlen_k, const bf16* q,
                        const bf16* k, const bf16* v, const bf16* out, const float* lse, const bf16* dout,
                        const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, bf16* dq, bf16* dk, bf16* dv,
                        cudaStream_t stream) {
  check_dims("cuda::attention_backward", dims, max_seqlen_q, max_seqlen_k);
  if (dims.batch == 0) return;
  VG_CHECK_ARG(q && k && v && out && lse && dout && cu_seqlens_q && cu_seqlens_k && dq && dk && dv,
               "cuda::attention_backward: null pointer");
  // Keys no query reaches (e.g. a sequence with Lq = 0) still need dk = dv = 0.
  if (dims.total_k > 0) {
    const size_t kv_bytes = static_cast<size_t>(dims.total_k * dims.num_kv_heads * dims.head_dim) * sizeof(bf16);
    VG_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_bytes, stream));
    VG_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_bytes, stream));
  }
  if (dims.total_q == 0) return;
  Scratch dsum(static_cast<size_t>(dims.total_q * dims.num_heads) * sizeof(float), stream);
  const int64_t warps = dims.total_q * dims.num_heads;
  attn_dsum_kernel<<<grid_for(warps * 32, 256, int64_t(1) << 30), 256, 0, stream>>>(
      out, dout, dsum.as<float>(), dims.total_q, static_cast<int>(dims.num_heads), static_cast<int>(dims.head_dim));
  VG_CUDA_CHECK_LAUNCH();
  Params p = make_params(dims, cu_seqlens_q, cu_seqlens_k);
  p.q = q, p.k = k, p.v = v, p.out = out, p.lse_in = lse, p.dout = dout, p.dsum = dsum.as<float>();
  p.dq = dq, p.dk = dk, p.dv = dv;
  switch (dims.head_dim) {
    case 64: backward_d<64>(p, dims.batch, max_seqlen_q, max_seqlen_k, stream); break;
    case 80: backward_d<80>(p, dims.batch, max_seqlen_q, max_seqlen_k, stream); break;
    default: backward_d<128>(p, dims.batch, max_seqlen_q, max_seqlen_k, stream); break;
  }
}

}  // namespace cuda
}  // namespace vg
