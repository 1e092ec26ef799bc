#include "cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "cpu/exp_fast.h"

namespace vg {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fixed token order every filter and the inverse CDF use: higher logit first, lower id on ties.
template <typename T>
struct Better {
  const T* x;
  bool operator()(int32_t a, int32_t b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};

// top-p buckets (at most; no more than the candidates): candidates are binned by logit below the top one, so
// the nucleus boundary is found with one pass and only the members of the boundary bucket are sorted (O(V)
// per row rather than O(V log V)).
constexpr size_t kTopPBuckets = 4096;

struct RowResult {
  int32_t token;
  double logprob, filtered_logprob;
};

// Scratch reused across the rows one task handles.
struct Scratch {
  std::vector<double> e;      // unnormalised kept-distribution weights exp(z - z_max_allowed)
  std::vector<int32_t> cand;  // candidate token ids
  std::vector<int32_t> edge;  // top-k's heap, then the members of top-p's boundary bucket
  std::vector<double> bucket_mass;
};

template <typename T>
RowResult sample_row(const T* x, int64_t V, int64_t row, const std::vector<uint8_t>& banned, const SamplingOptions& o,
                     uint32_t seq, uint32_t pos, Scratch& sc) {
  // Maxima over the whole row and over the allowed (not banned) tokens; reject NaN / +inf.
  double max_all = -kInf, max_ok = -kInf;
  for (int64_t j = 0; j < V; ++j) {
    const double v = static_cast<double>(x[j]);
    VG_CHECK_ARG(!std::isnan(v) && v != kInf, "sample: logits[", row, ", ", j, "] = ", v,
                 " (logits must be finite or -inf)");
    max_all = std::max(max_all, v);
    if (!banned[j]) max_ok = std::max(max_ok, v);
  }
  VG_CHECK_ARG(max_ok > -kInf, "sample: row ", row,
               " has no token left to sample (every token is banned or has logit -inf)");

  const bool greedy = o.temperature == 0;
  const double inv_t = greedy ? 1.0 : 1.0 / o.temperature;

  if (greedy) {
    // The normaliser is all a greedy step needs the exps for: computed in T through exp_fast in blocks (a loop that
    // vectorises; one libm call per token cost more than the decode step's attention), summed in double in order.
    double sum_all = 0;
    const T mx = static_cast<T>(max_all);
    T buf[256];
    for (int64_t j0 = 0; j0 < V; j0 += 256) {
      const int64_t n = std::min<int64_t>(256, V - j0);
      for (int64_t i = 0; i < n; ++i) buf[i] = exp_fast(x[j0 + i] - mx);
      for (int64_t i = 0; i < n; ++i) sum_all += static_cast<double>(buf[i]);
    }
    int32_t best = -1;
    for (int64_t j = 0; j < V; ++j)
      if (!banned[j] && (best < 0 || x[j] > x[best])) best = static_cast<int32_t>(j);
    return {best, static_cast<double>(x[best]) - max_all - std::log(sum_all), 0.0};
  }

  // One exp pass gives both the full-vocabulary normaliser of logits / T (nothing banned: the behaviour-policy
  // log-prob) and the weights e_j = exp((x_j - max_ok) / T) of the allowed tokens. Only when a banned token
  // holds the top logit (max_ok < max_all) are the weights recomputed against their own max, so they cannot
  // all underflow. Tokens whose weight underflows to 0 can never be drawn and are left out of the candidates.
  auto& e = sc.e;
  auto& cand = sc.cand;
  e.resize(static_cast<size_t>(V));
  cand.clear();
  double sum_all = 0, total = 0;
  for (int64_t j = 0; j < V; ++j) {
    const double a = std::exp((static_cast<double>(x[j]) - max_all) * inv_t);
    sum_all += a;
    e[j] = banned[j] ? 0.0 : a;
  }
  const double log_sum_all = std::log(sum_all);  // log_softmax(x / T)_j = (x_j - max_all) / T - log_sum_all
  if (max_ok < max_all)
    for (int64_t j = 0; j < V; ++j)
      if (!banned[j]) e[j] = std::exp((static_cast<double>(x[j]) - max_ok) * inv_t);
  for (int64_t j = 0; j < V; ++j)
    if (e[j] > 0) {
      cand.push_back(static_cast<int32_t>(j));
      total += e[j];
    }
  const Better<T> better{x};

  // top-k: keep the k best; top-p's reference mass is what top-k kept. A heap of the k best so far, whose
  // front is the worst of them: most tokens are rejected by one comparison with it.
  double mass_k = total;
  if (o.top_k > 0 && o.top_k < static_cast<int64_t>(cand.size())) {
    auto& heap = sc.edge;
    heap.assign(cand.begin(), cand.begin() + o.top_k);
    std::make_heap(heap.begin(), heap.end(), better);
    for (size_t i = static_cast<size_t>(o.top_k); i < cand.size(); ++i) {
      const int32_t j = cand[i];
      if (better(j, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), better);
        heap.back() = j;
        std::push_heap(heap.begin(), heap.end(), better);
      }
    }
    cand.assign(heap.begin(), heap.end());
    std::sort(cand.begin(), cand.end());  // back to id order: sums below run in a canonical order
    mass_k = 0;
    for (int32_t j : cand) mass_k += e[j];
  }
  // min-p: a threshold on the logit, so it also keeps a prefix of the order; applying it before top-p's walk
  // gives the same intersection and shortens the walk. The top token (x = max_ok, log(min_p) <= 0) always
  // passes, so at least one candidate survives.
  if (o.min_p > 0) {
    const double thr = max_ok + o.temperature * std::log(o.min_p);  // p_j >= min_p * p_max  <=>  x_j >= thr
    cand.erase(std::remove_if(cand.begin(), cand.end(), [&](int32_t j) { return static_cast<double>(x[j]) < thr; }),
               cand.end());
  }

  // top-p: token i (in descending order) is kept iff the mass strictly before it is < p * mass_k. Bin the
  // candidates by logit, x_top - x_j in [0, range], into equal-width buckets: whole buckets are ordered, so
  // the first bucket b* whose cumulative mass reaches the target holds the boundary; tokens in earlier
  // buckets are all kept, later ones all dropped, and only bucket b* is sorted and walked.
  if (o.top_p < 1 && cand.size() > 1) {
    const double target = o.top_p * mass_k;
    double x_low = max_ok;
    for (int32_t j : cand) x_low = std::min(x_low, static_cast<double>(x[j]));
    const double range = max_ok - x_low;
    const int nb = static_cast<int>(std::min<size_t>(kTopPBuckets, cand.size()));
    const double inv_width = range > 0 ? nb / range : 0.0;
    auto bucket_of = [&](int32_t j) {
      return std::min(nb - 1, static_cast<int>((max_ok - static_cast<double>(x[j])) * inv_width));
    };
    auto& mass = sc.bucket_mass;
    mass.assign(static_cast<size_t>(nb), 0.0);
    for (int32_t j : cand) mass[bucket_of(j)] += e[j];
    int b_edge = 0;
    double before = 0;  // mass of the buckets before b_edge
    while (b_edge < nb - 1 && before + mass[b_edge] < target) before += mass[b_edge++];
    auto& edge = sc.edge;
    edge.clear();
    for (int32_t j : cand)
      if (bucket_of(j) == b_edge) edge.push_back(j);
    std::sort(edge.begin(), edge.end(), better);
    // Walk the boundary bucket. `before` < target here, so its best member is always kept and at least one
    // token survives. (The edge is empty only when min-p already cut below the nucleus: all is kept then.)
    size_t keep = 0;
    while (keep < edge.size() && before < target) before += e[edge[keep++]];
    const int32_t last = keep > 0 ? edge[keep - 1] : -1;
    cand.erase(std::remove_if(cand.begin(), cand.end(),
                              [&](int32_t j) {
                                const int b = bucket_of(j);
                                return b > b_edge || (b == b_edge && (last < 0 || better(last, j)));
                              }),
               cand.end());
  }
  // Inverse CDF over the kept tokens in ascending token id (cand is in id order: every filter kept it so).
  double mass_kept = 0;
  for (int32_t j : cand) mass_kept += e[j];

  const double u = sampling_uniform(o.seed, seq, pos);
  const double target = u * mass_kept;
  double cum = 0;
  int32_t tok = -1;
  for (int32_t j : cand) {
    cum += e[j];
    tok = j;
    if (cum > target) break;  // rounding can leave cum <= target at the end: the last kept token is taken
  }
  const double lx = static_cast<double>(x[tok]);
  return {tok, (lx - max_all) * inv_t - log_sum_all, (lx - max_ok) * inv_t - std::log(mass_kept)};
}

}  // namespace

template <typename T>
void sample_tokens(const T* logits, int64_t B, int64_t V, const uint32_t* sequence_ids, const uint32_t* positions,
                   const SamplingOptions& o, int32_t* tokens, T* logprobs, T* filtered_logprobs) {
  VG_CHECK_ARG(B >= 0, "sample: numRows must be >= 0, got ", B);
  VG_CHECK_ARG(V >= 1 && V <= INT32_MAX, "sample: vocabSize must be in [1, 2147483647], got ", V);
  VG_CHECK_ARG(std::isfinite(o.temperature) && o.temperature >= 0,
               "sample: temperature must be a finite number >= 0 (0 = greedy), got ", o.temperature);
  VG_CHECK_ARG(o.top_k >= 0, "sample: topK must be >= 0 (0 = off), got ", o.top_k);
  VG_CHECK_ARG(o.top_p > 0 && o.top_p <= 1, "sample: topP must be in (0, 1] (1 = off), got ", o.top_p);
  VG_CHECK_ARG(o.min_p >= 0 && o.min_p <= 1, "sample: minP must be in [0, 1] (0 = off), got ", o.min_p);
  VG_CHECK_ARG(o.num_banned >= 0 && (o.num_banned == 0 || o.banned), "sample: bad banned-token list");
  std::vector<uint8_t> banned(static_cast<size_t>(V), 0);
  for (int64_t i = 0; i < o.num_banned; ++i) {
    const int32_t id = o.banned[i];
    VG_CHECK_ARG(id >= 0 && id < V, "sample: bannedTokens[", i, "] = ", id, " is not a token id (vocabSize is ", V,
                 ")");
    banned[id] = 1;
  }
  parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    Scratch sc;
    for (int64_t b = b0; b < b1; ++b) {
      const RowResult r = sample_row(logits + b * V, V, b, banned, o, sequence_ids[b], positions[b], sc);
      tokens[b] = r.token;
      logprobs[b] = static_cast<T>(r.logprob);
      filtered_logprobs[b] = static_cast<T>(r.filtered_logprob);
    }
  });
}

template void sample_tokens<float>(const float*, int64_t, int64_t, const uint32_t*, const uint32_t*,
                                   const SamplingOptions&, int32_t*, float*, float*);
template void sample_tokens<double>(const double*, int64_t, int64_t, const uint32_t*, const uint32_t*,
                                    const SamplingOptions&, int32_t*, double*, double*);

}  // namespace vg
