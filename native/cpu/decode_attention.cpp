#include "cpu/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/exp_fast.h"

namespace vg {
namespace {

// 64 bytes of T (16 floats, 8 doubles): one AVX-512 register, two AVX2 registers (GCC vector extension, so the
// same code compiles for whatever -march the build uses).
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(64)));
  static constexpr int64_t lanes = 64 / sizeof(T);
};

// Query heads handled together: each key or value vector loaded feeds kGroup multiply-adds, and the kGroup
// accumulators stay in registers.
constexpr int kGroup = 4;

// s[g][j] = scale * (q[g] . K[:, j]) for j < len and g < kGroup, K = [d, cap] (transposed keys): positions in
// blocks of one vector, accumulated over the head dim in registers. Lanes past len are computed from whatever
// the cache holds there and dropped; a block that would run past the capacity is loaded partially instead.
template <typename T>
void scores(const T* const* q, const T* K, int64_t cap, int64_t d, int64_t len, T scale, T* const* s) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::lanes;
  for (int64_t j0 = 0; j0 < len; j0 += W) {
    const int64_t n = std::min(W, len - j0);
    V acc[kGroup];
    for (auto& a : acc) a = V{};
    if (j0 + W <= cap) {  // whole vectors (separate loop: a fixed-size copy compiles to one load)
      for (int64_t e = 0; e < d; ++e) {
        V k;
        std::memcpy(&k, K + e * cap + j0, sizeof k);
        for (int g = 0; g < kGroup; ++g) acc[g] += q[g][e] * k;
      }
    } else {
      for (int64_t e = 0; e < d; ++e) {
        V k{};
        std::memcpy(&k, K + e * cap + j0, n * sizeof(T));
        for (int g = 0; g < kGroup; ++g) acc[g] += q[g][e] * k;
      }
    }
    for (int g = 0; g < kGroup; ++g)
      for (int64_t i = 0; i < n; ++i) s[g][j0 + i] = acc[g][i] * scale;
  }
}

// o[g] = inv[g] * sum_j p[g][j] V[j, :] for g < kGroup, V = [cap, d]: the head dim in blocks of one vector,
// accumulated over the positions (in order) in registers; a block past d is loaded partially.
template <typename T>
void weighted_values(const T* const* p, const T* Vm, int64_t d, int64_t len, const double* inv, T* const* o) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::lanes;
  for (int64_t e0 = 0; e0 < d; e0 += W) {
    const int64_t n = std::min(W, d - e0);
    V acc[kGroup];
    for (auto& a : acc) a = V{};
    if (n == W) {  // whole vectors (separate loop: a fixed-size copy compiles to one load)
      for (int64_t j = 0; j < len; ++j) {
        V v;
        std::memcpy(&v, Vm + j * d + e0, sizeof v);
        for (int g = 0; g < kGroup; ++g) acc[g] += p[g][j] * v;
      }
    } else {
      for (int64_t j = 0; j < len; ++j) {
        V v{};
        std::memcpy(&v, Vm + j * d + e0, n * sizeof(T));
        for (int g = 0; g < kGroup; ++g) acc[g] += p[g][j] * v;
      }
    }
    for (int g = 0; g < kGroup; ++g)
      if (o[g])
        for (int64_t i = 0; i < n; ++i) o[g][e0 + i] = acc[g][i] * static_cast<T>(inv[g]);
  }
}

}  // namespace

template <typename T>
void decode_attention(const DecodeAttentionDims& dm, const T* q, const DecodeKv<T>* kv, T* out) {
  VG_CHECK_ARG(dm.batch >= 0 && dm.heads >= 1 && dm.kv_heads >= 1 && dm.head_dim >= 1 && dm.heads % dm.kv_heads == 0,
               "decode_attention: bad sizes (batch ", dm.batch, ", heads ", dm.heads, ", kv heads ", dm.kv_heads,
               ", head dim ", dm.head_dim, ")");
  for (int64_t b = 0; b < dm.batch; ++b)
    VG_CHECK_ARG(kv[b].len >= 1 && kv[b].len <= kv[b].capacity, "decode_attention: sequence ", b, " has ", kv[b].len,
                 " cached positions for a capacity of ", kv[b].capacity, " (need 1 <= len <= capacity)");
  const int64_t G = dm.heads / dm.kv_heads, d = dm.head_dim, qd = dm.heads * d;
  const T scale = static_cast<T>(dm.scale);
  // One task per (sequence, kv head): its G query heads share every key and value row read, kGroup at a time.
  parallel_for(0, dm.batch * dm.kv_heads, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> scratch;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / dm.kv_heads, kh = t % dm.kv_heads, len = kv[b].len, cap = kv[b].capacity;
      const T* K = kv[b].keys + kh * d * cap;    // [d, cap]
      const T* V = kv[b].values + kh * cap * d;  // [cap, d]
      // Scratch: kGroup score rows, then zeros standing in for the query rows and probabilities of a short group.
      const int64_t zeros = std::max(d, len);
      scratch.assign(static_cast<size_t>(kGroup * len + zeros), T(0));
      for (int64_t g0 = 0; g0 < G; g0 += kGroup) {
        const T* qg[kGroup];
        T* sg[kGroup];
        T* og[kGroup];
        for (int g = 0; g < kGroup; ++g) {
          const bool real = g0 + g < G;
          qg[g] = real ? q + b * qd + (kh * G + g0 + g) * d : scratch.data() + kGroup * len;
          sg[g] = scratch.data() + g * len;
          og[g] = real ? out + b * qd + (kh * G + g0 + g) * d : nullptr;
        }
        scores(qg, K, cap, d, len, scale, sg);
        double inv[kGroup];
        for (int g = 0; g < kGroup; ++g) {
          T* sj = sg[g];
          if (!og[g]) {  // padding head: zero probabilities, nothing written
            std::fill(sj, sj + len, T(0));
            inv[g] = 0;
            continue;
          }
          T mx = -INFINITY;
          for (int64_t j = 0; j < len; ++j) mx = std::max(mx, sj[j]);
          for (int64_t j = 0; j < len; ++j) sj[j] = exp_fast(sj[j] - mx);  // its own loop, so it vectorises
          double sum = 0;
          for (int64_t j = 0; j < len; ++j) sum += static_cast<double>(sj[j]);
          inv[g] = 1.0 / sum;
        }
        weighted_values(sg, V, d, len, inv, og);
      }
    }
  });
}

template <typename T>
void decode_kv_store(T* keys, T* values, int64_t capacity, int64_t kv_heads, int64_t head_dim, int64_t pos,
                     const T* k_row, const T* v_row) {
  VG_CHECK_ARG(pos >= 0 && pos < capacity, "decode_kv_store: position ", pos, " is outside the cache capacity ",
               capacity);
  for (int64_t h = 0; h < kv_heads; ++h)
    for (int64_t e = 0; e < head_dim; ++e) {
      keys[(h * head_dim + e) * capacity + pos] = k_row[h * head_dim + e];
      values[(h * capacity + pos) * head_dim + e] = v_row[h * head_dim + e];
    }
}

template void decode_attention<float>(const DecodeAttentionDims&, const float*, const DecodeKv<float>*, float*);
template void decode_attention<double>(const DecodeAttentionDims&, const double*, const DecodeKv<double>*, double*);
template void decode_kv_store<float>(float*, float*, int64_t, int64_t, int64_t, int64_t, const float*, const float*);
template void decode_kv_store<double>(double*, double*, int64_t, int64_t, int64_t, int64_t, const double*,
                                      const double*);

}  // namespace vg
