// Sort-free sampler kernel: see sampling.h. One block of 1024 threads per row.
#include <climits>
#include <cmath>
#include <vector>

#include "cuda/device_common.cuh"
#include "cuda/philox.h"
#include "cuda/radix_select.h"
#include "cuda/sampling.h"

namespace vg {
namespace cuda {
namespace {

constexpr int kThreads = 1024;
using u64 = unsigned long long;

struct Params {
  int64_t V;
  double temperature, inv_t;
  int64_t top_k;
  double top_p;
  bool use_min_p;
  double log_min_p;
  uint64_t seed;
  int fixed_shift;  // weights as integers: round(e · 2^fixed_shift)
  bool greedy;
};

struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct MinOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};
struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// Order-preserving unsigned image of a float (larger float -> larger integer; -inf smallest of the non-NaNs).
__device__ __forceinline__ uint32_t order_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// Unique per token; larger key = earlier in the sampler's order (higher logit, then lower id).
__device__ __forceinline__ u64 key_of(float x, int64_t j) {
  return (static_cast<u64>(order_bits(x)) << 32) | static_cast<u64>(0xFFFFFFFFu - static_cast<uint32_t>(j));
}
__device__ __forceinline__ int64_t id_of(u64 key) {
  return static_cast<int64_t>(0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFull));
}
__device__ __forceinline__ bool is_banned(const uint32_t* bits, int64_t j) {
  return bits && ((bits[j >> 5] >> (j & 31)) & 1u);
}

struct Shared {
  unsigned int hcount[256];
  u64 hmass[256];
  double partial[kThreads];
  double red_d[32];
  u64 red_u[32];
  int red_i[32];
  float red_f[32];
  u64 prefix, before;
  long long krem;
  int token;
};

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits, Params P,
                                                          const uint32_t* __restrict__ banned,
                                                          const uint32_t* __restrict__ seq_ids,
                                                          const uint32_t* __restrict__ positions,
                                                          int32_t* __restrict__ tokens, float* __restrict__ logprobs,
                                                          float* __restrict__ flp, int32_t* __restrict__ status) {
  __shared__ Shared sh;
  const int64_t row = blockIdx.x, V = P.V;
  const int tid = threadIdx.x, nt = blockDim.x;
  const float* x = logits + row * V;

  // Pass 1: validity, maxima over all and over allowed tokens, the best allowed key (greedy's argmax).
  int bad = INT_MAX;
  float mall = -INFINITY, mok = -INFINITY;
  u64 best = 0;
  for (int64_t j = tid; j < V; j += nt) {
    const float v = x[j];
    if (isnan(v) || v == INFINITY) {
      bad = min(bad, static_cast<int>(j));
      continue;
    }
    mall = fmaxf(mall, v);
    if (!is_banned(banned, j)) {
      mok = fmaxf(mok, v);
      best = max(best, key_of(v, j));
    }
  }
  bad = dev::block_reduce(bad, MinOp(), sh.red_i, INT_MAX);
  mall = dev::block_reduce(mall, MaxOp(), sh.red_f, -INFINITY);
  mok = dev::block_reduce(mok, MaxOp(), sh.red_f, -INFINITY);
  best = dev::block_reduce(best, MaxOp(), sh.red_u, 0ull);
  if (bad != INT_MAX || mok == -INFINITY) {
    if (tid == 0) {
      status[row] = bad != INT_MAX ? 1 + bad : -1;
      tokens[row] = -1;
      logprobs[row] = NAN;
      flp[row] = NAN;
    }
    return;
  }
  const double dmall = mall, dmok = mok;

  if (P.greedy) {
    double s = 0;
    for (int64_t j = tid; j < V; j += nt) s += exp(static_cast<double>(x[j]) - dmall);
    s = dev::block_sum(s, sh.red_d);
    if (tid == 0) {
      const int64_t tok = id_of(best);
      tokens[row] = static_cast<int32_t>(tok);
      logprobs[row] = static_cast<float>(static_cast<double>(x[tok]) - dmall - log(s));
      flp[row] = 0.f;
      status[row] = 0;
    }
    return;
  }

  const double inv_t = P.inv_t;
  const double fixed_scale = ldexp(1.0, P.fixed_shift);
  // Weight of token j in the kept distribution, exp((x − max_ok)/T); candidates are allowed with weight > 0.
  auto weight = [&](int64_t j, float v) -> double {
    return is_banned(banned, j) ? 0.0 : exp((static_cast<double>(v) - dmok) * inv_t);
  };

  // Pass 2: the full-vocabulary normaliser (nothing banned) and the candidate count.
  double sall = 0;
  int ncand = 0;
  for (int64_t j = tid; j < V; j += nt) {
    const float v = x[j];
    sall += exp((static_cast<double>(v) - dmall) * inv_t);
    ncand += weight(j, v) > 0 ? 1 : 0;
  }
  sall = dev::block_sum(sall, sh.red_d);
  ncand = dev::block_reduce(ncand, SumOp(), sh.red_i, 0);

  // top-k: the k-th largest candidate key, by radix select (8 bits per level, most significant first).
  u64 kk = 0;
  if (P.top_k > 0 && P.top_k < ncand) {
    u64 prefix = 0, pmask = 0;
    long long krem = P.top_k;
    for (int level = 0; level < 8; ++level) {
      const int shift = 56 - 8 * level;
      for (int i = tid; i < 256; i += nt) sh.hcount[i] = 0;
      __syncthreads();
      for (int64_t j = tid; j < V; j += nt) {
        const float v = x[j];
        if (weight(j, v) <= 0) continue;
        const u64 key = key_of(v, j);
        if ((key & pmask) == prefix) atomicAdd(&sh.hcount[(key >> shift) & 255], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        long long above = 0;
        const int chosen = topk_choose_bin(sh.hcount, krem, &above);
        sh.prefix = prefix | (static_cast<u64>(chosen) << shift);
        sh.krem = krem - above;
      }
      __syncthreads();
      prefix = sh.prefix;
      krem = sh.krem;
      pmask |= 0xFFull << shift;
    }
    kk = prefix;
  }

  // top-k mass (fixed point) and the min-p logit threshold.
  const double thr = P.use_min_p ? dmok + P.temperature * P.log_min_p : -INFINITY;
  u64 mass_k = 0;
  int n_s = 0;
  for (int64_t j = tid; j < V; j += nt) {
    const float v = x[j];
    const double e = weight(j, v);
    if (e <= 0 || key_of(v, j) < kk) continue;
    mass_k += static_cast<u64>(e * fixed_scale + 0.5);
    if (static_cast<double>(v) >= thr) ++n_s;
  }
  mass_k = dev::block_reduce(mass_k, SumOp(), sh.red_u, 0ull);
  n_s = dev::block_reduce(n_s, SumOp(), sh.red_i, 0);

  // top-p: the smallest key whose mass strictly before it (among top-k ∩ min-p) is < p · mass_k.
  u64 kp = 0;
  if (P.top_p < 1 && n_s > 1) {
    const u64 target = static_cast<u64>(ceil(P.top_p * static_cast<double>(mass_k)));
    u64 prefix = 0, pmask = 0, before = 0;
    for (int level = 0; level < 8; ++level) {
      const int shift = 56 - 8 * level;
      for (int i = tid; i < 256; i += nt) sh.hcount[i] = 0, sh.hmass[i] = 0;
      __syncthreads();
      for (int64_t j = tid; j < V; j += nt) {
        const float v = x[j];
        const double e = weight(j, v);
        const u64 key = key_of(v, j);
        if (e <= 0 || key < kk || static_cast<double>(v) < thr || (key & pmask) != prefix) continue;
        const int bin = static_cast<int>((key >> shift) & 255);
        atomicAdd(&sh.hcount[bin], 1u);
        atomicAdd(&sh.hmass[bin], static_cast<u64>(e * fixed_scale + 0.5));
      }
      __syncthreads();
      if (tid == 0) {
        u64 chosen_before = before;
        const int chosen = topp_choose_bin(sh.hcount, sh.hmass, before, target, &chosen_before);
        sh.prefix = prefix | (static_cast<u64>(chosen) << shift);
        sh.before = chosen_before;
      }
      __syncthreads();
      prefix = sh.prefix;
      before = sh.before;
      pmask |= 0xFFull << shift;
    }
    kp = prefix;
  }
  const u64 kfinal = kk > kp ? kk : kp;

  // Draw: inverse CDF over the kept tokens in ascending id. Thread t owns ids [t·per, (t+1)·per).
  const int64_t per = (V + nt - 1) / nt, j0 = tid * per, j1 = j0 + per < V ? j0 + per : V;
  auto kept = [&](int64_t j, float v, double& e) {
    e = weight(j, v);
    return e > 0 && key_of(v, j) >= kfinal && static_cast<double>(v) >= thr;
  };
  double part = 0;
  int last = -1;
  for (int64_t j = j0; j < j1; ++j) {
    double e;
    if (kept(j, x[j], e)) part += e, last = static_cast<int>(j);
  }
  sh.partial[tid] = part;
  last = dev::block_reduce(last, MaxOp(), sh.red_i, -1);  // (its barriers also publish sh.partial)
  if (tid == 0) {
    double run = 0;
    for (int t = 0; t < nt; ++t) {
      const double p = sh.partial[t];
      sh.partial[t] = run;
      run += p;
    }
    sh.red_d[0] = run;
    sh.token = -1;
  }
  __syncthreads();
  const double mass_kept = sh.red_d[0];
  const double u = sampling_uniform(P.seed, seq_ids[row], positions[row]);
  const double target = u * mass_kept;
  const double my_begin = sh.partial[tid], my_end = tid + 1 < nt ? sh.partial[tid + 1] : mass_kept;
  if (my_begin <= target && my_end > target) {
    double cum = my_begin;
    int tok = -1;
    for (int64_t j = j0; j < j1; ++j) {
      double e;
      if (!kept(j, x[j], e)) continue;
      cum += e;
      tok = static_cast<int>(j);
      if (cum > target) break;
    }
    sh.token = tok;
  }
  __syncthreads();
  if (tid == 0) {
    const int tok = sh.token >= 0 ? sh.token : last;  // rounding can leave cum <= target: take the last kept
    const double lx = static_cast<double>(x[tok]);
    tokens[row] = tok;
    logprobs[row] = static_cast<float>((lx - dmall) * inv_t - log(sall));
    flp[row] = static_cast<float>((lx - dmok) * inv_t - log(mass_kept));
    status[row] = 0;
  }
}

}  // namespace

void sample_tokens(const float* logits, int64_t B, int64_t V, const uint32_t* sequence_ids, const uint32_t* positions,
                   const SamplingOptions& o, int32_t* tokens, float* logprobs, float* filtered_logprobs,
                   cudaStream_t stream) {
  VG_CHECK_ARG(B >= 0 && B <= 0x7fffffff, "sample: numRows must be in [0, 2^31), got ", B);
  VG_CHECK_ARG(V >= 1 && V <= (int64_t(1) << 24), "sample: vocabSize must be in [1, 16777216] on the GPU, got ", V);
  VG_CHECK_ARG(std::isfinite(o.temperature) && o.temperature >= 0,
               "sample: temperature must be a finite number >= 0 (0 = greedy), got ", o.temperature);
  VG_CHECK_ARG(o.top_k >= 0, "sample: topK must be >= 0 (0 = off), got ", o.top_k);
  VG_CHECK_ARG(o.top_p > 0 && o.top_p <= 1, "sample: topP must be in (0, 1] (1 = off), got ", o.top_p);
  VG_CHECK_ARG(o.min_p >= 0 && o.min_p <= 1, "sample: minP must be in [0, 1] (0 = off), got ", o.min_p);
  VG_CHECK_ARG(o.num_banned >= 0 && (o.num_banned == 0 || o.banned), "sample: bad banned-token list");
  std::vector<uint32_t> bits;
  if (o.num_banned > 0) {
    bits.assign(static_cast<size_t>((V + 31) / 32), 0u);
    for (int64_t i = 0; i < o.num_banned; ++i) {
      const int32_t id = o.banned[i];
      VG_CHECK_ARG(id >= 0 && id < V, "sample: bannedTokens[", i, "] = ", id, " is not a token id (vocabSize is ", V,
                   ")");
      bits[static_cast<size_t>(id) >> 5] |= 1u << (id & 31);
    }
  }
  if (B == 0) return;
  VG_CHECK_ARG(logits && sequence_ids && positions && tokens && logprobs && filtered_logprobs,
               "sample: null device pointer");
  Params p;
  p.V = V;
  p.temperature = o.temperature;
  p.greedy = o.temperature == 0;
  p.inv_t = p.greedy ? 1.0 : 1.0 / o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.use_min_p = o.min_p > 0;
  p.log_min_p = o.min_p > 0 ? std::log(o.min_p) : 0.0;
  p.seed = o.seed;
  int vbits = 0;
  while ((int64_t(1) << vbits) < V + 1) ++vbits;
  p.fixed_shift = 62 - vbits;  // V weights <= 1 each sum below 2^62

  Scratch scratch(bits.size() * sizeof(uint32_t) + static_cast<size_t>(B) * sizeof(int32_t), stream);
  int32_t* status = scratch.as<int32_t>();
  uint32_t* dbits = bits.empty() ? nullptr : reinterpret_cast<uint32_t*>(status + B);
  if (dbits)
    VG_CUDA_CHECK(cudaMemcpyAsync(dbits, bits.data(), bits.size() * sizeof(uint32_t), cudaMemcpyHostToDevice, stream));
  sample_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream>>>(logits, p, dbits, sequence_ids, positions, tokens,
                                                                   logprobs, filtered_logprobs, status);
  VG_CUDA_CHECK_LAUNCH();
  std::vector<int32_t> st(static_cast<size_t>(B));
  VG_CUDA_CHECK(cudaMemcpyAsync(st.data(), status, st.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  VG_CUDA_CHECK(cudaStreamSynchronize(stream));  // also keeps `bits` alive until the copy has been consumed
  for (int64_t b = 0; b < B; ++b) {
    if (st[b] > 0) {
      const int64_t col = st[b] - 1;
      float v = 0;
      VG_CUDA_CHECK(cudaMemcpy(&v, logits + b * V + col, sizeof(float), cudaMemcpyDeviceToHost));
      VG_CHECK_ARG(false, "sample: logits[", b, ", ", col, "] = ", v, " (logits must be finite or -inf)");
    }
    VG_CHECK_ARG(st[b] == 0, "sample: row ", b, " has no token left to sample (every token is banned or has logit -inf)");
  }
}

}  // namespace cuda
}  // namespace vg
