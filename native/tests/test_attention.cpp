// Flash-style varlen attention (native/cpu/attention.h) against a naive double-precision reference that
// builds the full softmax(q k^T * scale + mask) v per sequence and head; the backward against central finite
// differences of L = sum(dO * o) in double, the float backward against the double one, the materialising
// baseline against the same reference, thread-count invariance and argument errors.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "cpu/attention.h"
#include "test_framework.h"

using namespace vg;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

// One test problem: packed varlen inputs in double (float copies are made by the caller when needed).
struct Case {
  AttentionDims dims;
  std::vector<int32_t> cu_q, cu_k;
  std::vector<double> q, k, v, dout;
};

Case make_case(std::mt19937_64& g, const std::vector<int>& lens_q, const std::vector<int>& lens_k, int64_t hq,
               int64_t hkv, int64_t d, bool causal) {
  Case c;
  c.cu_q = {0};
  c.cu_k = {0};
  for (size_t b = 0; b < lens_q.size(); ++b) {
    c.cu_q.push_back(c.cu_q.back() + lens_q[b]);
    c.cu_k.push_back(c.cu_k.back() + lens_k[b]);
  }
  c.dims.batch = static_cast<int64_t>(lens_q.size());
  c.dims.total_q = c.cu_q.back();
  c.dims.total_k = c.cu_k.back();
  c.dims.num_heads = hq;
  c.dims.num_kv_heads = hkv;
  c.dims.head_dim = d;
  c.dims.causal = causal;
  c.dims.scale = AttentionDims::default_scale(d);
  // Scores of order 1-3 so the softmax is neither flat nor one-hot.
  c.q = vgtest::randn<double>(c.dims.total_q * hq * d, g, 1.5);
  c.k = vgtest::randn<double>(c.dims.total_k * hkv * d, g, 1.5);
  c.v = vgtest::randn<double>(c.dims.total_k * hkv * d, g);
  c.dout = vgtest::randn<double>(c.dims.total_q * hq * d, g);
  return c;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

// Naive reference, in double: the full probability row for every (sequence, head, query).
struct Ref {
  std::vector<double> out, lse, dq, dk, dv;
};

Ref reference(const Case& c, bool with_backward) {
  const AttentionDims& p = c.dims;
  const int64_t Hq = p.num_heads, Hkv = p.num_kv_heads, D = p.head_dim, G = Hq / Hkv;
  Ref r;
  r.out.assign(p.total_q * Hq * D, 0.0);
  r.lse.assign(Hq * p.total_q, -kInf);
  r.dq.assign(p.total_q * Hq * D, 0.0);
  r.dk.assign(p.total_k * Hkv * D, 0.0);
  r.dv.assign(p.total_k * Hkv * D, 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t q0 = c.cu_q[b], k0 = c.cu_k[b], Lq = c.cu_q[b + 1] - q0, Lk = c.cu_k[b + 1] - k0;
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / G;
      for (int64_t i = 0; i < Lq; ++i) {
        const double* qi = &c.q[((q0 + i) * Hq + h) * D];
        std::vector<double> s(Lk, -kInf);
        double mx = -kInf;
        for (int64_t j = 0; j < Lk; ++j) {
          if (p.causal && j > i + (Lk - Lq)) continue;  // mask
          const double* kj = &c.k[((k0 + j) * Hkv + g) * D];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qi[d] * kj[d];
          s[j] = p.scale * dot;
          mx = std::max(mx, s[j]);
        }
        if (mx == -kInf) continue;  // no visible key: zeros, lse = -inf
        double sum = 0;
        for (int64_t j = 0; j < Lk; ++j) sum += std::exp(s[j] - mx);
        std::vector<double> pr(Lk);
        for (int64_t j = 0; j < Lk; ++j) pr[j] = std::exp(s[j] - mx) / sum;
        r.lse[h * p.total_q + q0 + i] = mx + std::log(sum);
        double* oi = &r.out[((q0 + i) * Hq + h) * D];
        for (int64_t j = 0; j < Lk; ++j)
          for (int64_t d = 0; d < D; ++d) oi[d] += pr[j] * c.v[((k0 + j) * Hkv + g) * D + d];
        if (!with_backward) continue;
        const double* go = &c.dout[((q0 + i) * Hq + h) * D];
        double Di = 0;
        for (int64_t d = 0; d < D; ++d) Di += go[d] * oi[d];
        for (int64_t j = 0; j < Lk; ++j) {
          if (pr[j] == 0) continue;
          const double* kj = &c.k[((k0 + j) * Hkv + g) * D];
          const double* vj = &c.v[((k0 + j) * Hkv + g) * D];
          double dP = 0;
          for (int64_t d = 0; d < D; ++d) dP += go[d] * vj[d];
          const double dS = pr[j] * (dP - Di);
          for (int64_t d = 0; d < D; ++d) {
            r.dq[((q0 + i) * Hq + h) * D + d] += p.scale * dS * kj[d];
            r.dk[((k0 + j) * Hkv + g) * D + d] += p.scale * dS * qi[d];
            r.dv[((k0 + j) * Hkv + g) * D + d] += pr[j] * go[d];
          }
        }
      }
    }
  }
  return r;
}

template <typename T>
struct Result {
  std::vector<T> out, lse, dq, dk, dv;
};

// Runs our forward (and backward) in precision T on the case's inputs cast to T.
template <typename T>
Result<T> run(const Case& c, bool with_backward, bool materialized = false) {
  const AttentionDims& p = c.dims;
  auto q = cast<T>(c.q), k = cast<T>(c.k), v = cast<T>(c.v), dout = cast<T>(c.dout);
  Result<T> r;
  // Outputs start as NaN so any element the kernels forget to write shows up.
  const T nan = std::numeric_limits<T>::quiet_NaN();
  r.out.assign(q.size(), nan);
  r.lse.assign(p.num_heads * p.total_q, nan);
  (materialized ? attention_forward_materialized<T> : attention_forward<T>)(
      p, q.data(), k.data(), v.data(), c.cu_q.data(), c.cu_k.data(), r.out.data(), r.lse.data());
  if (with_backward) {
    r.dq.assign(q.size(), nan);
    r.dk.assign(k.size(), nan);
    r.dv.assign(v.size(), nan);
    (materialized ? attention_backward_materialized<T> : attention_backward<T>)(
        p, q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), dout.data(), c.cu_q.data(), c.cu_k.data(),
        r.dq.data(), r.dk.data(), r.dv.data());
  }
  return r;
}

// lse arrays hold -inf for rows without keys: compare those positions exactly, the rest with tolerances.
template <typename T>
void expect_lse_close(const std::vector<T>& got, const std::vector<double>& want, double atol, double rtol) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == -kInf) {
      VG_EXPECT(static_cast<double>(got[i]) == -kInf, "lse[", i, "] = ", static_cast<double>(got[i]),
                ", expected -inf");
    } else {
      const double e = std::fabs(static_cast<double>(got[i]) - want[i]);
      VG_EXPECT(e <= atol + rtol * std::fabs(want[i]), "lse[", i, "] = ", static_cast<double>(got[i]), " vs ",
                want[i]);
    }
  }
}

// The sequence mixes used by the forward tests: self-attention with lengths around the 64-row tile
// (1, 37, 64, 70, 130), and cross lengths with Lq < Lk (KV-cache style) plus an empty sequence.
struct SeqSet {
  std::vector<int> q, k;
};
const SeqSet kSelf{{1, 37, 70, 130, 64}, {1, 37, 70, 130, 64}};
const SeqSet kCross{{1, 5, 65, 0, 3}, {17, 5, 140, 3, 64}};

void check_forward(int64_t D, uint64_t salt) {
  auto g = vgtest::rng(salt);
  const int64_t heads[][2] = {{4, 4}, {6, 2}, {3, 1}};  // MHA, GQA, MQA
  for (bool causal : {false, true})
    for (auto& hh : heads)
      for (const SeqSet* s : {&kSelf, &kCross}) {
        Case c = make_case(g, s->q, s->k, hh[0], hh[1], D, causal);
        Ref ref = reference(c, false);
        auto f = run<float>(c, false);
        VG_EXPECT_ALLCLOSE(f.out.data(), ref.out.data(), ref.out.size(), 2e-5, 2e-4);
        expect_lse_close(f.lse, ref.lse, 2e-5, 2e-5);
        auto d = run<double>(c, false);
        VG_EXPECT_ALLCLOSE(d.out.data(), ref.out.data(), ref.out.size(), 1e-12, 1e-12);
        expect_lse_close(d.lse, ref.lse, 1e-12, 1e-12);
      }
}

// Central differences of L = sum(dO * o) with respect to `param`[i], in double.
double finite_difference(Case& c, std::vector<double>& param, size_t i) {
  auto loss = [&]() {
    auto r = run<double>(c, false);
    double s = 0;
    for (size_t n = 0; n < r.out.size(); ++n) s += c.dout[n] * r.out[n];
    return s;
  };
  const double h = 1e-5, keep = param[i];
  param[i] = keep + h;
  const double lp = loss();
  param[i] = keep - h;
  const double lm = loss();
  param[i] = keep;
  return (lp - lm) / (2 * h);
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Calls fn and checks it throws vg::ArgumentError (not just any error) whose message holds every needle.
template <typename F>
void expect_argument_error(F&& fn, std::initializer_list<const char*> needles) {
  bool threw = false;
  try {
    fn();
  } catch (const ArgumentError& e) {
    threw = true;
    for (const char* n : needles)
      VG_EXPECT(std::string(e.what()).find(n) != std::string::npos, "message '", e.what(), "' lacks '", n, "'");
  }
  VG_EXPECT(threw, "expected vg::ArgumentError");
}

}  // namespace

VG_TEST(attention_forward_matches_reference_d16) { check_forward(16, 1); }
VG_TEST(attention_forward_matches_reference_d64) { check_forward(64, 2); }
VG_TEST(attention_forward_matches_reference_d80) { check_forward(80, 3); }
VG_TEST(attention_forward_matches_reference_d128) { check_forward(128, 4); }

VG_TEST(attention_custom_scale_and_rows_without_keys) {
  auto g = vgtest::rng(5);
  // Causal with Lq > Lk: query i sees keys j <= i - 5, so rows 0..4 of the first sequence see nothing;
  // the second sequence has no keys at all; the third is ordinary.
  Case c = make_case(g, {9, 3, 20}, {4, 0, 20}, 4, 2, 24, true);
  c.dims.scale = 0.37;
  Ref ref = reference(c, true);
  auto f = run<float>(c, true);
  auto d = run<double>(c, true);
  VG_EXPECT_ALLCLOSE(f.out.data(), ref.out.data(), ref.out.size(), 2e-5, 2e-4);
  VG_EXPECT_ALLCLOSE(d.out.data(), ref.out.data(), ref.out.size(), 1e-12, 1e-12);
  expect_lse_close(f.lse, ref.lse, 2e-5, 2e-5);
  expect_lse_close(d.lse, ref.lse, 1e-12, 1e-12);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i : {0, 4, 9, 10, 11}) {  // rows without keys
      VG_EXPECT(f.lse[h * c.dims.total_q + i] == -std::numeric_limits<float>::infinity(), "row ", i);
      for (int64_t e = 0; e < 24; ++e) VG_EXPECT(f.out[(i * 4 + h) * 24 + e] == 0.0f, "row ", i);
    }
  // Gradients are finite (no NaN from the empty rows) and match the reference, 0 for rows without keys.
  VG_EXPECT_ALLCLOSE(d.dq.data(), ref.dq.data(), ref.dq.size(), 1e-11, 1e-9);
  VG_EXPECT_ALLCLOSE(d.dk.data(), ref.dk.data(), ref.dk.size(), 1e-11, 1e-9);
  VG_EXPECT_ALLCLOSE(d.dv.data(), ref.dv.data(), ref.dv.size(), 1e-11, 1e-9);
  VG_EXPECT_ALLCLOSE(f.dq.data(), ref.dq.data(), ref.dq.size(), 1e-4, 1e-3);
  VG_EXPECT_ALLCLOSE(f.dk.data(), ref.dk.data(), ref.dk.size(), 1e-4, 1e-3);
  VG_EXPECT_ALLCLOSE(f.dv.data(), ref.dv.data(), ref.dv.size(), 1e-4, 1e-3);
}

VG_TEST(attention_materialized_baseline_matches_reference) {
  auto g = vgtest::rng(6);
  for (bool causal : {false, true})
    for (const SeqSet* s : {&kSelf, &kCross}) {
      Case c = make_case(g, s->q, s->k, 6, 2, 40, causal);
      Ref ref = reference(c, true);
      auto d = run<double>(c, true, true);
      VG_EXPECT_ALLCLOSE(d.out.data(), ref.out.data(), ref.out.size(), 1e-12, 1e-12);
      expect_lse_close(d.lse, ref.lse, 1e-12, 1e-12);
      VG_EXPECT_ALLCLOSE(d.dq.data(), ref.dq.data(), ref.dq.size(), 1e-11, 1e-9);
      VG_EXPECT_ALLCLOSE(d.dk.data(), ref.dk.data(), ref.dk.size(), 1e-11, 1e-9);
      VG_EXPECT_ALLCLOSE(d.dv.data(), ref.dv.data(), ref.dv.size(), 1e-11, 1e-9);
      auto f = run<float>(c, true, true);
      VG_EXPECT_ALLCLOSE(f.out.data(), ref.out.data(), ref.out.size(), 2e-5, 2e-4);
      VG_EXPECT_ALLCLOSE(f.dq.data(), ref.dq.data(), ref.dq.size(), 1e-4, 1e-3);
    }
}

// Double backward against central finite differences of L = sum(dO * o) at sampled entries of q, k, v,
// and against the reference's analytic gradients everywhere. Sequences longer than one 64-row tile make
// the online softmax and the multi-tile loops of both backward passes take part.
VG_TEST(attention_backward_double_finite_differences) {
  auto g = vgtest::rng(7);
  for (bool causal : {false, true}) {
    Case c = make_case(g, {3, 70, 1}, {5, 130, 1}, 4, 2, 16, causal);
    Ref ref = reference(c, true);
    auto r = run<double>(c, true);
    VG_EXPECT_ALLCLOSE(r.dq.data(), ref.dq.data(), ref.dq.size(), 1e-11, 1e-9);
    VG_EXPECT_ALLCLOSE(r.dk.data(), ref.dk.data(), ref.dk.size(), 1e-11, 1e-9);
    VG_EXPECT_ALLCLOSE(r.dv.data(), ref.dv.data(), ref.dv.size(), 1e-11, 1e-9);
    // h = 1e-5: truncation error ~ h^2 * |L'''| ~ 1e-9, rounding ~ 1e-16 * |L| / h ~ 1e-9.
    const double atol = 1e-7, rtol = 1e-6;
    std::uniform_int_distribution<size_t> pick_q(0, c.q.size() - 1), pick_k(0, c.k.size() - 1);
    for (int s = 0; s < 20; ++s) {
      const size_t iq = pick_q(g), ik = pick_k(g), iv = pick_k(g);
      const double fq = finite_difference(c, c.q, iq), fk = finite_difference(c, c.k, ik),
                   fv = finite_difference(c, c.v, iv);
      VG_EXPECT(std::fabs(fq - r.dq[iq]) <= atol + rtol * std::fabs(fq), "dq[", iq, "] ", r.dq[iq], " vs fd ", fq);
      VG_EXPECT(std::fabs(fk - r.dk[ik]) <= atol + rtol * std::fabs(fk), "dk[", ik, "] ", r.dk[ik], " vs fd ", fk);
      VG_EXPECT(std::fabs(fv - r.dv[iv]) <= atol + rtol * std::fabs(fv), "dv[", iv, "] ", r.dv[iv], " vs fd ", fv);
    }
  }
}

// Float backward against the double backward on the same (float-representable) inputs, over head dims,
// causal/bidirectional, MHA/GQA/MQA and varlen with Lq < Lk.
VG_TEST(attention_backward_float_matches_double) {
  auto g = vgtest::rng(8);
  const int64_t heads[][2] = {{4, 4}, {6, 2}, {3, 1}};
  int n = 0;
  for (int64_t D : {16, 64, 80, 128})
    for (bool causal : {false, true}) {
      auto& hh = heads[n++ % 3];
      Case c = make_case(g, {1, 37, 70, 40}, causal ? std::vector<int>{1, 37, 90, 140} : std::vector<int>{1, 37, 70, 40},
                         hh[0], hh[1], D, causal);
      // Round the inputs to float so both precisions differentiate the same function.
      for (auto* x : {&c.q, &c.k, &c.v, &c.dout})
        for (auto& e : *x) e = static_cast<float>(e);
      auto d = run<double>(c, true);
      auto f = run<float>(c, true);
      VG_EXPECT_ALLCLOSE(f.dq.data(), d.dq.data(), d.dq.size(), 1e-4, 1e-3);
      VG_EXPECT_ALLCLOSE(f.dk.data(), d.dk.data(), d.dk.size(), 1e-4, 1e-3);
      VG_EXPECT_ALLCLOSE(f.dv.data(), d.dv.data(), d.dv.size(), 1e-4, 1e-3);
    }
}

// Long causal sequence (many 64-wide tiles, D = 128): flash kernels against the materialising baseline.
VG_TEST(attention_long_sequence_matches_materialized) {
  auto g = vgtest::rng(9);
  Case c = make_case(g, {700, 300}, {700, 300}, 4, 2, 128, true);
  auto flash = run<float>(c, true);
  auto base = run<float>(c, true, true);
  VG_EXPECT_ALLCLOSE(flash.out.data(), base.out.data(), base.out.size(), 2e-5, 2e-4);
  VG_EXPECT_ALLCLOSE(flash.lse.data(), base.lse.data(), base.lse.size(), 2e-5, 2e-5);
  VG_EXPECT_ALLCLOSE(flash.dq.data(), base.dq.data(), base.dq.size(), 1e-4, 1e-3);
  VG_EXPECT_ALLCLOSE(flash.dk.data(), base.dk.data(), base.dk.size(), 1e-4, 1e-3);
  VG_EXPECT_ALLCLOSE(flash.dv.data(), base.dv.data(), base.dv.size(), 1e-4, 1e-3);
}

VG_TEST(attention_thread_count_invariance) {
  auto g = vgtest::rng(10);
  const int before = num_threads();
  for (bool causal : {false, true}) {
    Case c = make_case(g, {200, 3, 130}, {250, 3, 130}, 4, 2, 64, causal);
    set_num_threads(1);
    auto one = run<float>(c, true);
    set_num_threads(2);
    auto two = run<float>(c, true);
    set_num_threads(3);
    auto three = run<float>(c, true);
    set_num_threads(before);
    for (auto* r : {&two, &three}) {
      VG_EXPECT(bitwise_equal(one.out, r->out), "out differs between thread counts");
      VG_EXPECT(bitwise_equal(one.lse, r->lse), "lse differs between thread counts");
      VG_EXPECT(bitwise_equal(one.dq, r->dq), "dq differs between thread counts");
      VG_EXPECT(bitwise_equal(one.dk, r->dk), "dk differs between thread counts");
      VG_EXPECT(bitwise_equal(one.dv, r->dv), "dv differs between thread counts");
    }
  }
}

VG_TEST(attention_rejects_bad_arguments) {
  auto g = vgtest::rng(11);
  Case c = make_case(g, {4, 5}, {4, 5}, 4, 2, 8, true);
  std::vector<float> q = cast<float>(c.q), k = cast<float>(c.k), v = cast<float>(c.v);
  std::vector<float> out(q.size()), lse(4 * 9), dq(q.size()), dk(k.size()), dv(v.size());
  auto fwd = [&](AttentionDims p, std::vector<int32_t> cq, std::vector<int32_t> ck) {
    return [=, &q, &k, &v, &out, &lse] {
      attention_forward<float>(p, q.data(), k.data(), v.data(), cq.data(), ck.data(), out.data(), lse.data());
    };
  };
  AttentionDims p = c.dims;
  p.num_heads = 6;
  p.num_kv_heads = 4;
  expect_argument_error(fwd(p, c.cu_q, c.cu_k), {"num_heads=6", "num_kv_heads=4"});
  p = c.dims;
  expect_argument_error(fwd(p, {0, 4, 7}, c.cu_k), {"cu_seqlens_q ends at 7", "total_q=9"});
  expect_argument_error(fwd(p, c.cu_q, {0, 4, 11}), {"cu_seqlens_k ends at 11", "total_k=9"});
  expect_argument_error(fwd(p, {0, 6, 5}, c.cu_k), {"non-decreasing", "cu_seqlens_q[2]=5"});
  expect_argument_error(fwd(p, {1, 4, 9}, c.cu_k), {"cu_seqlens_q[0] must be 0, got 1"});
  p.head_dim = 0;
  expect_argument_error(fwd(p, c.cu_q, c.cu_k), {"head_dim=0"});
  p = c.dims;
  p.scale = std::numeric_limits<double>::quiet_NaN();
  expect_argument_error(fwd(p, c.cu_q, c.cu_k), {"scale=nan"});
  // The backward checks the same way.
  p = c.dims;
  p.num_heads = 3;
  expect_argument_error(
      [&] {
        attention_backward<float>(p, q.data(), k.data(), v.data(), out.data(), lse.data(), q.data(),
                                  c.cu_q.data(), c.cu_k.data(), dq.data(), dk.data(), dv.data());
      },
      {"num_heads=3", "num_kv_heads=2"});
}
