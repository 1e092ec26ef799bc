// Next-token sampling for decoding: one token per row of logits [B, V], reproducible by construction.
//
// Per row b (all arithmetic in double, except the exps of the greedy log-prob's normaliser: exp_fast in T, ~2 ulp):
//   1. Banned token ids get logit -inf (never sampled; e.g. the vision special tokens).
//   2. temperature T: z = logits / T. T = 0 means greedy: the largest logit, the lower id on ties.
//   3. Filters, in the vLLM / Hugging Face order, each on the renormalised output of the previous one:
//        top-k (k > 0): keep the k largest;
//        top-p (p < 1): keep the smallest prefix, by descending probability, whose mass reaches p, i.e.
//                       token i (in that order) is kept iff the mass strictly before it is < p;
//        min-p (m > 0): keep tokens with prob >= m * max prob (on the temperature-scaled distribution).
//      "Descending probability" is descending logit with ties broken by the lower token id, so every filter
//      keeps a prefix of one fixed order and at least one token always survives.
//   4. u = Philox4x32-10 uniform in [0, 1) keyed by `seed`, counter (position, sequence id, 0, 0)
//      (core/rng.h): one draw per (sequence, position), so the token does not depend on the batch the row
//      sits in, the row order or the thread count.
//   5. Inverse CDF over the kept tokens in ascending token id: the first token whose cumulative kept
//      probability exceeds u (any fixed order gives the same distribution; id order needs no sort).
// Outputs per row: the token, logprob = log_softmax(logits / T)[token] over the whole vocabulary with nothing
// banned or filtered (T = 1 when greedy) -- the behaviour-policy log-prob the trainer recomputes -- and
// filtered_logprob = log of the token's probability under the banned + filtered, renormalised distribution it
// was drawn from (0 when greedy: a point mass).
//
// Cost: O(V) per row (one exp pass in double, a heap for top-k, logit buckets for top-p), plus sorting the
// top-k set and the few candidates in top-p's boundary bucket. Rows run in parallel.
#pragma once
#include <cstdint>

namespace vg {

struct SamplingOptions {
  uint64_t seed = 0;
  double temperature = 1.0;  // >= 0; 0 = greedy
  int64_t top_k = 0;         // >= 0; 0 = off
  double top_p = 1.0;        // in (0, 1]; 1 = off
  double min_p = 0.0;        // in [0, 1]; 0 = off
  const int32_t* banned = nullptr;  // token ids in [0, V), may repeat
  int64_t num_banned = 0;
};

// logits [B, V]; sequence_ids [B], positions [B]; outputs tokens [B], logprobs [B], filtered_logprobs [B].
// Throws vg::ArgumentError for bad options, a banned id outside [0, V), a NaN or +inf logit, or a row with
// no token left to sample (every token banned or -inf).
template <typename T>
void sample_tokens(const T* logits, int64_t B, int64_t V, const uint32_t* sequence_ids, const uint32_t* positions,
                   const SamplingOptions& options, int32_t* tokens, T* logprobs, T* filtered_logprobs);

}  // namespace vg
