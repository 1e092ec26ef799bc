// Flash-style varlen attention (forward, backward) and the materialising baseline. Math and layout: attention.h.
//
// Tiles are kTile x kTile (queries x keys). Every tile product is one of two register-blocked loops whose
// innermost loop runs over a compile-time kTile-wide row of a packed panel, so it vectorises at -O2 without
// -ffast-math; the other operand is read in place from q/k/v/dout rows (contiguous in D). Which side of the
// tile is the vector side is chosen so that nothing needs transposing inside the key loop:
//   forward and the dq pass work on S^T [key][query] (vector over queries: the running max, the sum and
//   the rescale are elementwise over a vector of rows), the dk/dv pass on S [query][key] (vector over keys).
#include "cpu/attention.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/exp_fast.h"
#include "cpu/gemm.h"

namespace vg {
namespace {

constexpr int64_t kTile = 64;  // queries per tile = keys per tile = width of every packed panel


// Rows per register block: RB rows of kTile accumulators stay in vector registers (16 for float, 16 for
// double with 512-bit vectors).
template <typename T>
constexpr int row_block() {
  return sizeof(T) == 4 ? 4 : 2;
}

// C[n][w] = sum_d A[n*lda + d] * P[d*kTile + w] for n < N, w < kTile. A: N rows read in place; P: a packed
// [D][kTile] panel.
template <typename T>
void rows_times_panel(const T* A, int64_t lda, int64_t N, const T* P, int64_t D, T* C) {
  constexpr int RB = row_block<T>();
  int64_t n = 0;
  for (; n + RB <= N; n += RB) {
    T acc[RB][kTile] = {};
    for (int64_t d = 0; d < D; ++d) {
      const T* p = P + d * kTile;
      for (int r = 0; r < RB; ++r) {
        const T a = A[(n + r) * lda + d];
        for (int64_t w = 0; w < kTile; ++w) acc[r][w] += a * p[w];
      }
    }
    std::memcpy(C + n * kTile, acc, sizeof acc);
  }
  for (; n < N; ++n) {
    T acc[kTile] = {};
    for (int64_t d = 0; d < D; ++d) {
      const T a = A[n * lda + d];
      const T* p = P + d * kTile;
      for (int64_t w = 0; w < kTile; ++w) acc[w] += a * p[w];
    }
    std::memcpy(C + n * kTile, acc, sizeof acc);
  }
}

// C[d][w] += sum_n A[n*lda + d] * M[n*kTile + w] for d < D, w < kTile, n < N. A: N rows read in place;
// M: [N][kTile]; C: a [D][kTile] accumulator panel.
template <typename T>
void panel_update(const T* A, int64_t lda, int64_t N, const T* M, int64_t D, T* C) {
  constexpr int RB = row_block<T>();
  int64_t d = 0;
  for (; d + RB <= D; d += RB) {
    T acc[RB][kTile];
    std::memcpy(acc, C + d * kTile, sizeof acc);
    for (int64_t n = 0; n < N; ++n) {
      const T* m = M + n * kTile;
      for (int r = 0; r < RB; ++r) {
        const T a = A[n * lda + d + r];
        for (int64_t w = 0; w < kTile; ++w) acc[r][w] += a * m[w];
      }
    }
    std::memcpy(C + d * kTile, acc, sizeof acc);
  }
  for (; d < D; ++d) {
    T* c = C + d * kTile;
    for (int64_t n = 0; n < N; ++n) {
      const T a = A[n * lda + d];
      const T* m = M + n * kTile;
      for (int64_t w = 0; w < kTile; ++w) c[w] += a * m[w];
    }
  }
}

// Packs rows [0, n) of A (row stride lda, D columns) times `mul` into a [D][kTile] panel; columns >= n are 0.
template <typename T>
void pack_transposed(const T* A, int64_t lda, int64_t n, int64_t D, T mul, T* P) {
  std::fill(P, P + D * kTile, T(0));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t d = 0; d < D; ++d) P[d * kTile + r] = A[r * lda + d] * mul;
}

// The query tiles of every sequence: (sequence, first row within it).
struct Tile {
  int64_t b, i0;
};
std::vector<Tile> make_tiles(const int32_t* cu, int64_t batch) {
  std::vector<Tile> tiles;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i0 = 0; i0 < cu[b + 1] - cu[b]; i0 += kTile) tiles.push_back({b, i0});
  return tiles;
}

void check_cu_seqlens(const int32_t* cu, int64_t batch, int64_t total, const char* name, const char* total_name) {
  VG_CHECK_ARG(cu != nullptr, "attention: ", name, " is null");
  VG_CHECK_ARG(cu[0] == 0, "attention: ", name, "[0] must be 0, got ", cu[0]);
  for (int64_t b = 0; b < batch; ++b)
    VG_CHECK_ARG(cu[b + 1] >= cu[b], "attention: ", name, " must be non-decreasing, but ", name, "[", b + 1,
                 "]=", cu[b + 1], " < ", name, "[", b, "]=", cu[b]);
  VG_CHECK_ARG(cu[batch] == total, "attention: ", name, " ends at ", cu[batch], " but ", total_name, "=", total,
               " (", name, " has ", batch + 1, " entries)");
}

}  // namespace

void attention_check(const AttentionDims& p, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k) {
  VG_CHECK_ARG(p.batch >= 0, "attention: batch=", p.batch, " must be >= 0");
  VG_CHECK_ARG(p.num_heads >= 1 && p.num_kv_heads >= 1, "attention: num_heads=", p.num_heads,
               " and num_kv_heads=", p.num_kv_heads, " must be >= 1");
  VG_CHECK_ARG(p.num_heads % p.num_kv_heads == 0, "attention: num_heads=", p.num_heads,
               " is not a multiple of num_kv_heads=", p.num_kv_heads);
  VG_CHECK_ARG(p.head_dim >= 1, "attention: head_dim=", p.head_dim, " must be >= 1");
  VG_CHECK_ARG(p.total_q >= 0 && p.total_k >= 0, "attention: total_q=", p.total_q, " and total_k=", p.total_k,
               " must be >= 0");
  VG_CHECK_ARG(std::isfinite(p.scale), "attention: scale=", p.scale, " must be finite");
  check_cu_seqlens(cu_seqlens_q, p.batch, p.total_q, "cu_seqlens_q", "total_q");
  check_cu_seqlens(cu_seqlens_k, p.batch, p.total_k, "cu_seqlens_k", "total_k");
}

template <typename T>
void attention_forward(const AttentionDims& p, const T* q, const T* k, const T* v, const int32_t* cu_q,
                       const int32_t* cu_k, T* out, T* lse) {
  attention_check(p, cu_q, cu_k);
  const int64_t Hq = p.num_heads, D = p.head_dim, group = p.num_heads / p.num_kv_heads;
  const int64_t ldq = Hq * D, ldk = p.num_kv_heads * D;
  const T scale = static_cast<T>(p.scale), neg_inf = -std::numeric_limits<T>::infinity();
  const std::vector<Tile> tiles = make_tiles(cu_q, p.batch);
  const int64_t tasks = static_cast<int64_t>(tiles.size()) * Hq;

  parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    // Per-thread tiles: Q^T (scaled), O^T accumulator, S^T / P^T, and per-row statistics.
    std::vector<T> Qt(D * kTile), Ot(D * kTile), St(kTile * kTile);
    T m[kTile], l[kTile], msub[kTile], alpha[kTile];
    for (int64_t t = t0; t < t1; ++t) {
      const Tile tile = tiles[t / Hq];
      const int64_t h = t % Hq, g = h / group, b = tile.b, i0 = tile.i0;
      const int64_t Lq = cu_q[b + 1] - cu_q[b], Lk = cu_k[b + 1] - cu_k[b], off = Lk - Lq;
      const int64_t br = std::min(kTile, Lq - i0);
      const T* qrows = q + (cu_q[b] + i0) * ldq + h * D;
      const T* kseq = k + cu_k[b] * ldk + g * D;
      const T* vseq = v + cu_k[b] * ldk + g * D;

      pack_transposed(qrows, ldq, br, D, scale, Qt.data());
      std::fill(Ot.begin(), Ot.end(), T(0));
      std::fill(m, m + kTile, neg_inf);
      std::fill(l, l + kTile, T(0));
      // Keys past the last row's causal limit are invisible to the whole tile.
      const int64_t kend = p.causal ? std::clamp<int64_t>(i0 + br + off, 0, Lk) : Lk;
      for (int64_t j0 = 0; j0 < kend; j0 += kTile) {
        const int64_t bc = std::min(kTile, kend - j0);
        T* S = St.data();
        rows_times_panel(kseq + j0 * ldk, ldk, bc, Qt.data(), D, S);  // S[c][r] = scale * k_c . q_r
        if (p.causal && j0 + bc - 1 > i0 + off) {
          // Key j0+c is visible to row i0+r when j0+c <= i0+r+off, i.e. r >= j0+c-i0-off.
          for (int64_t c = 0; c < bc; ++c) {
            const int64_t first = j0 + c - i0 - off;
            T* s = S + c * kTile;
            for (int64_t r = 0; r < kTile; ++r) s[r] = r >= first ? s[r] : neg_inf;
          }
        }
        // Online softmax: new running max, rescale factor for what was accumulated so far.
        T mt[kTile];
        std::copy(m, m + kTile, mt);
        for (int64_t c = 0; c < bc; ++c) {
          const T* s = S + c * kTile;
          for (int64_t r = 0; r < kTile; ++r) mt[r] = s[r] > mt[r] ? s[r] : mt[r];
        }
        for (int64_t r = 0; r < kTile; ++r) {
          msub[r] = mt[r] == neg_inf ? T(0) : mt[r];  // a row with no visible key yet keeps p = 0, no NaN
          alpha[r] = exp_fast(m[r] - msub[r]);
          m[r] = mt[r];
          l[r] *= alpha[r];
        }
        for (int64_t c = 0; c < bc; ++c) {
          T* s = S + c * kTile;
          for (int64_t r = 0; r < kTile; ++r) {
            s[r] = exp_fast(s[r] - msub[r]);
            l[r] += s[r];
          }
        }
        for (int64_t d = 0; d < D; ++d) {
          T* o = Ot.data() + d * kTile;
          for (int64_t r = 0; r < kTile; ++r) o[r] *= alpha[r];
        }
        panel_update(vseq + j0 * ldk, ldk, bc, S, D, Ot.data());  // O^T[d][r] += sum_c v_c[d] P^T[c][r]
      }
      for (int64_t r = 0; r < br; ++r) {
        const int64_t row = cu_q[b] + i0 + r;
        T* o = out + row * ldq + h * D;
        if (l[r] > T(0)) {
          const T inv = T(1) / l[r];
          for (int64_t d = 0; d < D; ++d) o[d] = Ot[d * kTile + r] * inv;
          lse[h * p.total_q + row] = m[r] + std::log(l[r]);
        } else {
          std::fill(o, o + D, T(0));
          lse[h * p.total_q + row] = neg_inf;
        }
      }
    }
  });
}

namespace {

// D_i = dO_i . O_i for every (head, row), accumulated in double.
template <typename T>
std::vector<T> row_dots(const AttentionDims& p, const T* out, const T* dout) {
  const int64_t Hq = p.num_heads, D = p.head_dim;
  std::vector<T> Dv(Hq * p.total_q);
  parallel_for(0, p.total_q, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t h = 0; h < Hq; ++h) {
        const T* o = out + (i * Hq + h) * D;
        const T* g = dout + (i * Hq + h) * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(o[d]) * static_cast<double>(g[d]);
        Dv[h * p.total_q + i] = static_cast<T>(s);
      }
  });
  return Dv;
}

}  // namespace

template <typename T>
void attention_backward(const AttentionDims& p, const T* q, const T* k, const T* v, const T* out, const T* lse,
                        const T* dout, const int32_t* cu_q, const int32_t* cu_k, T* dq, T* dk, T* dv) {
  attention_check(p, cu_q, cu_k);
  const int64_t Hq = p.num_heads, Hkv = p.num_kv_heads, D = p.head_dim, group = Hq / Hkv;
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const T scale = static_cast<T>(p.scale), inf = std::numeric_limits<T>::infinity();
  const std::vector<T> Dv = row_dots(p, out, dout);
  // Rows that saw no key (lse = -inf) get p = exp(s - (+inf)) = 0 everywhere.
  auto lse_or_inf = [&](int64_t h, int64_t row) {
    const T x = lse[h * p.total_q + row];
    return x == -inf ? inf : x;
  };

  // Pass 1: dk, dv, one task per (key tile, kv head); the task loops over every query that sees its keys.
  const std::vector<Tile> ktiles = make_tiles(cu_k, p.batch);
  parallel_for(0, static_cast<int64_t>(ktiles.size()) * Hkv, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> Kt(D * kTile), Vt(D * kTile), dKt(D * kTile), dVt(D * kTile), P(kTile * kTile),
        dS(kTile * kTile);
    for (int64_t t = t0; t < t1; ++t) {
      const Tile tile = ktiles[t / Hkv];
      const int64_t g = t % Hkv, b = tile.b, j0 = tile.i0;
      const int64_t Lq = cu_q[b + 1] - cu_q[b], Lk = cu_k[b + 1] - cu_k[b], off = Lk - Lq;
      const int64_t bc = std::min(kTile, Lk - j0);
      const T* krows = k + (cu_k[b] + j0) * ldk + g * D;
      const T* vrows = v + (cu_k[b] + j0) * ldk + g * D;
      pack_transposed(krows, ldk, bc, D, scale, Kt.data());
      pack_transposed(vrows, ldk, bc, D, T(1), Vt.data());
      std::fill(dKt.begin(), dKt.end(), T(0));
      std::fill(dVt.begin(), dVt.end(), T(0));
      // The first query that sees key j0 (causal: i + off >= j0).
      const int64_t qstart = p.causal ? std::max<int64_t>(0, j0 - off) : 0;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i0 = qstart; i0 < Lq; i0 += kTile) {
          const int64_t br = std::min(kTile, Lq - i0), row0 = cu_q[b] + i0;
          const T* qrows = q + row0 * ldq + h * D;
          const T* grows = dout + row0 * ldq + h * D;
          rows_times_panel(qrows, ldq, br, Kt.data(), D, P.data());  // S[r][c] = scale * q_r . k_c
          rows_times_panel(grows, ldq, br, Vt.data(), D, dS.data());  // dP[r][c] = dO_r . v_c
          for (int64_t r = 0; r < br; ++r) {
            // Keys c < lim are visible to row i0+r (and exist). Masked entries go through exp(-inf) = 0
            // as a select on a computed value (the limits constant, not the captured `inf`), which GCC
            // vectorises; a conditional exp call would not be.
            const int64_t lim = p.causal ? std::clamp<int64_t>(i0 + r + off - j0 + 1, 0, bc) : bc;
            const T ls = lse_or_inf(h, row0 + r), di = Dv[h * p.total_q + row0 + r];
            T* __restrict pr = P.data() + r * kTile;
            T* __restrict ds = dS.data() + r * kTile;
            for (int64_t c = 0; c < kTile; ++c) {
              const T x = pr[c] - ls;
              const T pv = exp_fast(c < lim ? x : -std::numeric_limits<T>::infinity());
              pr[c] = pv;
              ds[c] = pv * (ds[c] - di);
            }
          }
          panel_update(grows, ldq, br, P.data(), D, dVt.data());   // dV^T[d][c] += sum_r dO_r[d] P[r][c]
          panel_update(qrows, ldq, br, dS.data(), D, dKt.data());  // dK^T[d][c] += sum_r q_r[d] dS[r][c]
        }
      }
      for (int64_t c = 0; c < bc; ++c) {
        T* dkr = dk + (cu_k[b] + j0 + c) * ldk + g * D;
        T* dvr = dv + (cu_k[b] + j0 + c) * ldk + g * D;
        for (int64_t d = 0; d < D; ++d) {
          dkr[d] = scale * dKt[d * kTile + c];
          dvr[d] = dVt[d * kTile + c];
        }
      }
    }
  });

  // Pass 2: dq, one task per (query tile, head), like the forward.
  const std::vector<Tile> qtiles = make_tiles(cu_q, p.batch);
  parallel_for(0, static_cast<int64_t>(qtiles.size()) * Hq, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> Qt(D * kTile), Gt(D * kTile), dQt(D * kTile), Pt(kTile * kTile), dSt(kTile * kTile);
    T ls[kTile], di[kTile];
    for (int64_t t = t0; t < t1; ++t) {
      const Tile tile = qtiles[t / Hq];
      const int64_t h = t % Hq, g = h / group, b = tile.b, i0 = tile.i0;
      const int64_t Lq = cu_q[b + 1] - cu_q[b], Lk = cu_k[b + 1] - cu_k[b], off = Lk - Lq;
      const int64_t br = std::min(kTile, Lq - i0), row0 = cu_q[b] + i0;
      const T* kseq = k + cu_k[b] * ldk + g * D;
      const T* vseq = v + cu_k[b] * ldk + g * D;
      pack_transposed(q + row0 * ldq + h * D, ldq, br, D, scale, Qt.data());
      pack_transposed(dout + row0 * ldq + h * D, ldq, br, D, T(1), Gt.data());
      std::fill(dQt.begin(), dQt.end(), T(0));
      for (int64_t r = 0; r < kTile; ++r) {
        ls[r] = r < br ? lse_or_inf(h, row0 + r) : inf;  // padding rows: p = 0
        di[r] = r < br ? Dv[h * p.total_q + row0 + r] : T(0);
      }
      const int64_t kend = p.causal ? std::clamp<int64_t>(i0 + br + off, 0, Lk) : Lk;
      for (int64_t j0 = 0; j0 < kend; j0 += kTile) {
        const int64_t bc = std::min(kTile, kend - j0);
        rows_times_panel(kseq + j0 * ldk, ldk, bc, Qt.data(), D, Pt.data());  // S^T[c][r]
        rows_times_panel(vseq + j0 * ldk, ldk, bc, Gt.data(), D, dSt.data());  // dP^T[c][r] = v_c . dO_r
        const bool masked = p.causal && j0 + bc - 1 > i0 + off;
        for (int64_t c = 0; c < bc; ++c) {
          const int64_t first = masked ? j0 + c - i0 - off : 0;
          const T* __restrict pc = Pt.data() + c * kTile;
          T* __restrict dsc = dSt.data() + c * kTile;
          for (int64_t r = 0; r < kTile; ++r) {
            const T x = pc[r] - ls[r];
            const T pv = exp_fast(r >= first ? x : -std::numeric_limits<T>::infinity());  // exp(-inf) = 0
            dsc[r] = pv * (dsc[r] - di[r]);
          }
        }
        panel_update(kseq + j0 * ldk, ldk, bc, dSt.data(), D, dQt.data());  // dQ^T[d][r] += k_c[d] dS^T[c][r]
      }
      for (int64_t r = 0; r < br; ++r) {
        T* dqr = dq + (row0 + r) * ldq + h * D;
        for (int64_t d = 0; d < D; ++d) dqr[d] = scale * dQt[d * kTile + r];
      }
    }
  });
}

// ---- the materialising baseline

template <typename T>
void attention_forward_materialized(const AttentionDims& p, const T* q, const T* k, const T* v, const int32_t* cu_q,
                                    const int32_t* cu_k, T* out, T* lse) {
  attention_check(p, cu_q, cu_k);
  const int64_t Hq = p.num_heads, D = p.head_dim, group = Hq / p.num_kv_heads;
  const int64_t ldq = Hq * D, ldk = p.num_kv_heads * D;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t Lq = cu_q[b + 1] - cu_q[b], Lk = cu_k[b + 1] - cu_k[b], off = Lk - Lq;
    if (Lq == 0) continue;
    if (Lk == 0) {
      std::fill(out + cu_q[b] * ldq, out + cu_q[b + 1] * ldq, T(0));
      for (int64_t h = 0; h < Hq; ++h) std::fill(lse + h * p.total_q + cu_q[b], lse + h * p.total_q + cu_q[b + 1], neg_inf);
      continue;
    }
    std::vector<T> S(Hq * Lq * Lk);  // the full score matrix of this sequence
    for (int64_t h = 0; h < Hq; ++h)
      gemm<T>(false, true, Lq, Lk, D, static_cast<T>(p.scale), q + cu_q[b] * ldq + h * D, ldq,
              k + cu_k[b] * ldk + (h / group) * D, ldk, T(0), S.data() + h * Lq * Lk, Lk);
    parallel_for(0, Hq * Lq, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t hr = r0; hr < r1; ++hr) {
        const int64_t h = hr / Lq, i = hr % Lq;
        T* s = S.data() + hr * Lk;
        const int64_t lim = p.causal ? std::clamp<int64_t>(i + off + 1, 0, Lk) : Lk;
        T& ls = lse[h * p.total_q + cu_q[b] + i];
        if (lim == 0) {
          std::fill(s, s + Lk, T(0));
          ls = neg_inf;
          continue;
        }
        const T mx = *std::max_element(s, s + lim);
        T sum = 0;
        for (int64_t j = 0; j < lim; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = 0; j < lim; ++j) s[j] /= sum;
        std::fill(s + lim, s + Lk, T(0));
        ls = mx + std::log(sum);
      }
    });
    for (int64_t h = 0; h < Hq; ++h)
      gemm<T>(false, false, Lq, D, Lk, T(1), S.data() + h * Lq * Lk, Lk, v + cu_k[b] * ldk + (h / group) * D, ldk,
              T(0), out + cu_q[b] * ldq + h * D, ldq);
  }
}

template <typename T>
void attention_backward_materialized(const AttentionDims& p, const T* q, const T* k, const T* v, const T* out,
                                     const T* lse, const T* dout, const int32_t* cu_q, const int32_t* cu_k, T* dq,
                                     T* dk, T* dv) {
  attention_check(p, cu_q, cu_k);
  const int64_t Hq = p.num_heads, D = p.head_dim, group = Hq / p.num_kv_heads;
  const int64_t ldq = Hq * D, ldk = p.num_kv_heads * D;
  const T scale = static_cast<T>(p.scale), neg_inf = -std::numeric_limits<T>::infinity();
  const std::vector<T> Dv = row_dots(p, out, dout);
  std::fill(dq, dq + p.total_q * ldq, T(0));
  std::fill(dk, dk + p.total_k * ldk, T(0));
  std::fill(dv, dv + p.total_k * ldk, T(0));
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t Lq = cu_q[b + 1] - cu_q[b], Lk = cu_k[b + 1] - cu_k[b], off = Lk - Lq;
    if (Lq == 0 || Lk == 0) continue;
    std::vector<T> P(Hq * Lq * Lk), dS(Hq * Lq * Lk);
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / group;
      gemm<T>(false, true, Lq, Lk, D, scale, q + cu_q[b] * ldq + h * D, ldq, k + cu_k[b] * ldk + g * D, ldk, T(0),
              P.data() + h * Lq * Lk, Lk);
      gemm<T>(false, true, Lq, Lk, D, T(1), dout + cu_q[b] * ldq + h * D, ldq, v + cu_k[b] * ldk + g * D, ldk, T(0),
              dS.data() + h * Lq * Lk, Lk);
    }
    parallel_for(0, Hq * Lq, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t hr = r0; hr < r1; ++hr) {
        const int64_t h = hr / Lq, i = hr % Lq;
        const int64_t lim = p.causal ? std::clamp<int64_t>(i + off + 1, 0, Lk) : Lk;
        const T ls = lse[h * p.total_q + cu_q[b] + i], di = Dv[h * p.total_q + cu_q[b] + i];
        T* pr = P.data() + hr * Lk;
        T* ds = dS.data() + hr * Lk;
        for (int64_t j = 0; j < Lk; ++j) {
          const T pv = (j < lim && ls != neg_inf) ? std::exp(pr[j] - ls) : T(0);
          pr[j] = pv;
          ds[j] = pv * (ds[j] - di);
        }
      }
    });
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / group;
      const T* Ph = P.data() + h * Lq * Lk;
      const T* dSh = dS.data() + h * Lq * Lk;
      gemm<T>(true, false, Lk, D, Lq, T(1), Ph, Lk, dout + cu_q[b] * ldq + h * D, ldq, T(1),
              dv + cu_k[b] * ldk + g * D, ldk);
      gemm<T>(true, false, Lk, D, Lq, scale, dSh, Lk, q + cu_q[b] * ldq + h * D, ldq, T(1),
              dk + cu_k[b] * ldk + g * D, ldk);
      gemm<T>(false, false, Lq, D, Lk, scale, dSh, Lk, k + cu_k[b] * ldk + g * D, ldk, T(0),
              dq + cu_q[b] * ldq + h * D, ldq);
    }
  }
}

#define VG_INSTANTIATE_ATTENTION(T)                                                                               \
  template void attention_forward<T>(const AttentionDims&, const T*, const T*, const T*, const int32_t*,          \
                                     const int32_t*, T*, T*);                                                     \
  template void attention_backward<T>(const AttentionDims&, const T*, const T*, const T*, const T*, const T*,     \
                                      const T*, const int32_t*, const int32_t*, T*, T*, T*);                      \
  template void attention_forward_materialized<T>(const AttentionDims&, const T*, const T*, const T*,             \
                                                  const int32_t*, const int32_t*, T*, T*);                        \
  template void attention_backward_materialized<T>(const AttentionDims&, const T*, const T*, const T*, const T*,  \
                                                   const T*, const T*, const int32_t*, const int32_t*, T*, T*, T*);
VG_INSTANTIATE_ATTENTION(float)
VG_INSTANTIATE_ATTENTION(double)

}  // namespace vg
