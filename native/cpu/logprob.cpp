#include "cpu/logprob.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/gemm.h"

namespace vg {
namespace {

// Rows per parallel task for the elementwise work on a chunk (each row costs `chunk` exps).
constexpr int64_t kRowGrain = 8;

void check_args(const char* fn, const int32_t* targets, int64_t N, int64_t H, int64_t V, double temperature,
                int64_t chunk) {
  VG_CHECK_ARG(N >= 0, fn, ": numTokens must be >= 0, got ", N);
  VG_CHECK_ARG(H >= 1, fn, ": hiddenSize must be >= 1, got ", H);
  VG_CHECK_ARG(V >= 1, fn, ": vocabSize must be >= 1, got ", V);
  VG_CHECK_ARG(std::isfinite(temperature) && temperature > 0, fn, ": temperature must be a finite number > 0, got ",
               temperature);
  VG_CHECK_ARG(chunk >= 1, fn, ": chunkSize must be >= 1, got ", chunk);
  for (int64_t r = 0; r < N; ++r)
    VG_CHECK_ARG(targets[r] < V, fn, ": targets[", r, "] = ", targets[r], " is not a token id (vocabSize is ", V,
                 "; use a negative target for positions without one)");
}

// Online softmax statistics of one row, relative to the running max m:
//   s = sum exp(z - m),  e = sum exp(z - m) (z - m)  (for the entropy: H = log s - e / s).
struct RowStats {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0, e = 0;
  double zt = 0;  // the target's logit once its chunk has been seen

  // Folds in one chunk's statistics (mc = chunk max, sc/ec relative to mc).
  void merge(double mc, double sc, double ec) {
    if (s == 0) {
      m = mc, s = sc, e = ec;
    } else if (mc > m) {
      const double scale = std::exp(m - mc);
      e = scale * (e + (m - mc) * s) + ec;
      s = scale * s + sc;
      m = mc;
    } else {
      const double scale = std::exp(mc - m);
      e += scale * (ec + (mc - m) * sc);
      s += scale * sc;
    }
  }
};

// Statistics of one row segment z[0, c) into `st` (with_entropy: also e).
template <typename T>
void fold_segment(const T* z, int64_t c, bool with_entropy, RowStats& st) {
  T mc = z[0];
  for (int64_t j = 1; j < c; ++j) mc = std::max(mc, z[j]);
  double sc = 0, ec = 0;
  if (with_entropy) {
    for (int64_t j = 0; j < c; ++j) {
      const T d = z[j] - mc;
      const T ex = std::exp(d);
      sc += ex;
      ec += static_cast<double>(ex) * d;
    }
  } else {
    for (int64_t j = 0; j < c; ++j) sc += std::exp(z[j] - mc);
  }
  st.merge(mc, sc, ec);
}

// Gradient of the row's loss w.r.t. its logits z[0, c) (columns v0.. of the vocabulary), written over z:
//   G_j = -p_j (g + e (log p_j + H)) + g 1[j = t],  log p_j = z_j - lse.
template <typename T>
void row_grad(T* z, int64_t c, int64_t v0, int32_t target, double lse, double g, double ge, double ent) {
  if (target < 0) {
    std::fill(z, z + c, T(0));
    return;
  }
  const T lse_t = static_cast<T>(lse);
  if (ge == 0) {
    const T gt = static_cast<T>(g);
    for (int64_t j = 0; j < c; ++j) z[j] = -gt * std::exp(z[j] - lse_t);
  } else {
    const T gt = static_cast<T>(g), get = static_cast<T>(ge), ht = static_cast<T>(ent);
    for (int64_t j = 0; j < c; ++j) {
      const T lp = z[j] - lse_t;
      z[j] = -std::exp(lp) * (gt + get * (lp + ht));
    }
  }
  if (target >= v0 && target < v0 + c) z[target - v0] += static_cast<T>(g);
}

}  // namespace

template <typename T>
void logprob_forward(const T* h, const T* W, const int32_t* targets, T* logprob, T* entropy, T* lse, int64_t N,
                     int64_t H, int64_t V, double temperature, int64_t chunk) {
  check_args("logprobs", targets, N, H, V, temperature, chunk);
  if (N == 0) return;
  const int64_t C = std::min(chunk, V);
  const T alpha = static_cast<T>(1.0 / temperature);
  const bool with_entropy = entropy != nullptr;
  std::vector<T> buf(static_cast<size_t>(N * C));
  std::vector<RowStats> stats(static_cast<size_t>(N));
  for (int64_t v0 = 0; v0 < V; v0 += C) {
    const int64_t c = std::min(C, V - v0);
    gemm<T>(false, true, N, c, H, alpha, h, H, W + v0 * H, H, T(0), buf.data(), c);
    parallel_for(0, N, kRowGrain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* z = buf.data() + r * c;
        fold_segment(z, c, with_entropy, stats[r]);
        const int32_t t = targets[r];
        if (t >= v0 && t < v0 + c) stats[r].zt = z[t - v0];
      }
    });
  }
  for (int64_t r = 0; r < N; ++r) {
    const RowStats& st = stats[r];
    const double l = st.m + std::log(st.s);
    lse[r] = static_cast<T>(l);
    const bool has_target = targets[r] >= 0;
    logprob[r] = has_target ? static_cast<T>(st.zt - l) : T(0);
    if (with_entropy) entropy[r] = has_target ? static_cast<T>(std::log(st.s) - st.e / st.s) : T(0);
  }
}

template <typename T>
void logprob_backward(const T* h, const T* W, const int32_t* targets, const T* lse, const T* dlogprob,
                      const T* dentropy, const T* entropy, T* dh, T* dW, int64_t N, int64_t H, int64_t V,
                      double temperature, int64_t chunk) {
  check_args("logprobsBackward", targets, N, H, V, temperature, chunk);
  if (N == 0) return;
  std::vector<T> ent_buf;
  if (dentropy && !entropy) {
    // Recompute the entropy (one extra forward pass); lse is taken from the caller as given.
    ent_buf.resize(static_cast<size_t>(N));
    std::vector<T> lp(static_cast<size_t>(N)), l2(static_cast<size_t>(N));
    logprob_forward<T>(h, W, targets, lp.data(), ent_buf.data(), l2.data(), N, H, V, temperature, chunk);
    entropy = ent_buf.data();
  }
  const int64_t C = std::min(chunk, V);
  const T alpha = static_cast<T>(1.0 / temperature);
  std::vector<T> buf(static_cast<size_t>(N * C));
  for (int64_t v0 = 0; v0 < V; v0 += C) {
    const int64_t c = std::min(C, V - v0);
    gemm<T>(false, true, N, c, H, alpha, h, H, W + v0 * H, H, T(0), buf.data(), c);
    parallel_for(0, N, kRowGrain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        row_grad(buf.data() + r * c, c, v0, targets[r], static_cast<double>(lse[r]), static_cast<double>(dlogprob[r]),
                 dentropy ? static_cast<double>(dentropy[r]) : 0.0, dentropy ? static_cast<double>(entropy[r]) : 0.0);
    });
    // z = alpha * h W^T, so dL/dh = alpha * G W_c and dL/dW_c = alpha * G^T h.
    if (dh) gemm<T>(false, false, N, H, c, alpha, buf.data(), c, W + v0 * H, H, v0 == 0 ? T(0) : T(1), dh, H);
    if (dW) gemm<T>(true, false, c, H, N, alpha, buf.data(), c, h, H, T(1), dW + v0 * H, H);
  }
}

template <typename T>
void logprob_forward_full(const T* h, const T* W, const int32_t* targets, T* logprob, T* entropy, T* lse, int64_t N,
                          int64_t H, int64_t V, double temperature) {
  check_args("logprobs", targets, N, H, V, temperature, V);
  if (N == 0) return;
  std::vector<T> logits(static_cast<size_t>(N * V));
  gemm<T>(false, true, N, V, H, static_cast<T>(1.0 / temperature), h, H, W, H, T(0), logits.data(), V);
  parallel_for(0, N, kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* z = logits.data() + r * V;
      const double m = static_cast<double>(*std::max_element(z, z + V));
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(z[j]) - m);
      const double l = m + std::log(s);
      lse[r] = static_cast<T>(l);
      const int32_t t = targets[r];
      logprob[r] = t >= 0 ? static_cast<T>(static_cast<double>(z[t]) - l) : T(0);
      if (entropy) {
        double ent = 0;
        if (t >= 0)
          for (int64_t j = 0; j < V; ++j) {
            const double lp = static_cast<double>(z[j]) - l;
            ent -= std::exp(lp) * lp;
          }
        entropy[r] = static_cast<T>(ent);
      }
    }
  });
}

template <typename T>
void logprob_backward_full(const T* h, const T* W, const int32_t* targets, const T* lse, const T* dlogprob,
                           const T* dentropy, const T* entropy, T* dh, T* dW, int64_t N, int64_t H, int64_t V,
                           double temperature) {
  check_args("logprobsBackward", targets, N, H, V, temperature, V);
  if (N == 0) return;
  std::vector<T> ent_buf;
  if (dentropy && !entropy) {
    ent_buf.resize(static_cast<size_t>(N));
    std::vector<T> lp(static_cast<size_t>(N)), l2(static_cast<size_t>(N));
    logprob_forward_full<T>(h, W, targets, lp.data(), ent_buf.data(), l2.data(), N, H, V, temperature);
    entropy = ent_buf.data();
  }
  const T alpha = static_cast<T>(1.0 / temperature);
  std::vector<T> g(static_cast<size_t>(N * V));
  gemm<T>(false, true, N, V, H, alpha, h, H, W, H, T(0), g.data(), V);
  parallel_for(0, N, kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      row_grad(g.data() + r * V, V, 0, targets[r], static_cast<double>(lse[r]), static_cast<double>(dlogprob[r]),
               dentropy ? static_cast<double>(dentropy[r]) : 0.0, dentropy ? static_cast<double>(entropy[r]) : 0.0);
  });
  if (dh) gemm<T>(false, false, N, H, V, alpha, g.data(), V, W, H, T(0), dh, H);
  if (dW) gemm<T>(true, false, V, H, N, alpha, g.data(), V, h, H, T(1), dW, H);
}

#define VG_INSTANTIATE_LOGPROB(T)                                                                                  \
  template void logprob_forward<T>(const T*, const T*, const int32_t*, T*, T*, T*, int64_t, int64_t, int64_t,      \
                                   double, int64_t);                                                               \
  template void logprob_backward<T>(const T*, const T*, const int32_t*, const T*, const T*, const T*, const T*, T*, \
                                    T*, int64_t, int64_t, int64_t, double, int64_t);                               \
  template void logprob_forward_full<T>(const T*, const T*, const int32_t*, T*, T*, T*, int64_t, int64_t, int64_t, \
                                        double);                                                                   \
  template void logprob_backward_full<T>(const T*, const T*, const int32_t*, const T*, const T*, const T*,         \
                                         const T*, T*, T*, int64_t, int64_t, int64_t, double);
VG_INSTANTIATE_LOGPROB(float)
VG_INSTANTIATE_LOGPROB(double)
#undef VG_INSTANTIATE_LOGPROB

}  // namespace vg
