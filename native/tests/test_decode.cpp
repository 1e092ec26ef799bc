// The decode-step kernels: skinny_linear_multi (several linears of one input, bias and residual), skinny_swiglu,
// decode_attention over a transposed KV cache and decode_kv_store, each against a plain double reference, plus
// their independence from the thread count (bitwise); and generate()'s decode step on the tiny model (more
// sequences than the streaming kernels take, thread-count independence).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "cpu/decode_attention.h"
#include "cpu/skinny_linear.h"
#include "model/generate.h"
#include "test_framework.h"
#include "tiny_model.h"

using namespace vg;

namespace {

// y[r, o] = x[r]·W[o] + b[o] + res[r, o] in double.
template <typename T>
std::vector<double> linear_ref(const std::vector<T>& x, const std::vector<T>& W, const T* b, const T* res, int64_t rows,
                               int64_t in, int64_t out) {
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t k = 0; k < in; ++k) s += double(x[r * in + k]) * double(W[o * in + k]);
      if (b) s += b[o];
      if (res) s += res[r * out + o];
      y[r * out + o] = s;
    }
  return y;
}

// Runs fn with 1 and with 3 threads (more tasks than cores is fine) and restores the thread count.
template <typename F>
void with_threads(int n, F fn) {
  const int keep = num_threads();
  set_num_threads(n);
  try {
    fn();
  } catch (...) {
    set_num_threads(keep);
    throw;
  }
  set_num_threads(keep);
}

template <typename T>
void check_multi(double tol) {
  auto g = vgtest::rng(sizeof(T) == 4 ? 101 : 102);
  // Widths: a multiple of 16, odd tails, and one below a single vector.
  for (int64_t in : {64, 37, 100, 5}) {
    for (int64_t rows = 1; rows <= kSkinnyMaxRows; ++rows) {
      // Three linears of different widths (odd ones too), so a task's range spans their boundaries.
      const int64_t outs[3] = {67, 1, 130};
      auto x = vgtest::randn<T>(rows * in, g);
      std::vector<std::vector<T>> W, b, res, y;
      std::vector<SkinnyOutput<T>> spec(3);
      for (int i = 0; i < 3; ++i) {
        W.push_back(vgtest::randn<T>(outs[i] * in, g));
        b.push_back(vgtest::randn<T>(outs[i], g));
        res.push_back(vgtest::randn<T>(rows * outs[i], g));
        y.push_back(std::vector<T>(rows * outs[i], T(7)));
        spec[i].W = W[i].data();
        spec[i].bias = i == 1 ? nullptr : b[i].data();       // without bias
        spec[i].residual = i == 2 ? nullptr : res[i].data();  // without residual
        spec[i].y = y[i].data();
        spec[i].out = outs[i];
      }
      skinny_linear_multi<T>(x.data(), rows, in, spec.data(), 3);
      for (int i = 0; i < 3; ++i) {
        auto ref = linear_ref(x, W[i], spec[i].bias, spec[i].residual, rows, in, outs[i]);
        VG_EXPECT_ALLCLOSE(y[i].data(), ref.data(), y[i].size(), tol, tol);
      }
      // The plain entry point is the one-linear case.
      std::vector<T> y1(rows * outs[0]);
      skinny_linear<T>(x.data(), W[0].data(), b[0].data(), y1.data(), rows, in, outs[0]);
      auto ref1 = linear_ref(x, W[0], b[0].data(), static_cast<const T*>(nullptr), rows, in, outs[0]);
      VG_EXPECT_ALLCLOSE(y1.data(), ref1.data(), y1.size(), tol, tol);
    }
  }
}

template <typename T>
void check_swiglu(double tol) {
  auto g = vgtest::rng(sizeof(T) == 4 ? 201 : 202);
  for (int64_t in : {48, 29}) {
    for (int64_t rows : {1, 3, 8, 9, 16}) {
      const int64_t inter = 75;
      auto x = vgtest::randn<T>(rows * in, g), Wg = vgtest::randn<T>(inter * in, g), Wu = vgtest::randn<T>(inter * in, g);
      std::vector<T> act(rows * inter);
      skinny_swiglu<T>(x.data(), Wg.data(), Wu.data(), act.data(), rows, in, inter);
      auto gate = linear_ref(x, Wg, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), rows, in, inter);
      auto up = linear_ref(x, Wu, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), rows, in, inter);
      std::vector<double> ref(rows * inter);
      for (size_t i = 0; i < ref.size(); ++i) ref[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      VG_EXPECT_ALLCLOSE(act.data(), ref.data(), act.size(), tol, tol);
    }
  }
}

// One sequence's cache in the decode layout, filled from row-major k, v [len, kv_heads * d] through decode_kv_store.
template <typename T>
struct Cache {
  std::vector<T> keys, values;
  int64_t capacity;
};

// Plain attention of one query row per sequence over row-major k, v [len, kv_heads * d], in double.
template <typename T>
std::vector<double> attention_ref(const std::vector<T>& q, const std::vector<std::vector<T>>& k,
                                  const std::vector<std::vector<T>>& v, const std::vector<int64_t>& lens, int64_t heads,
                                  int64_t kv_heads, int64_t d, double scale) {
  const int64_t B = static_cast<int64_t>(lens.size()), G = heads / kv_heads, kvd = kv_heads * d;
  std::vector<double> out(B * heads * d, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kh = h / G, len = lens[b];
      std::vector<double> s(len);
      double mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += double(q[(b * heads + h) * d + e]) * double(k[b][j * kvd + kh * d + e]);
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j < len; ++j)
        for (int64_t e = 0; e < d; ++e) out[(b * heads + h) * d + e] += s[j] / sum * double(v[b][j * kvd + kh * d + e]);
    }
  return out;
}

template <typename T>
void check_attention(double tol) {
  auto g = vgtest::rng(sizeof(T) == 4 ? 301 : 302);
  struct Shape { int64_t heads, kv_heads, d; };
  for (Shape sh : {Shape{8, 2, 64}, Shape{4, 4, 20}, Shape{6, 1, 8}, Shape{3, 3, 1}}) {
    const std::vector<int64_t> lens = {1, 37, 96, 5, 17};
    const int64_t B = static_cast<int64_t>(lens.size()), kvd = sh.kv_heads * sh.d;
    const double scale = 1.0 / std::sqrt(double(sh.d));
    auto q = vgtest::randn<T>(B * sh.heads * sh.d, g, 2.0);  // scale 2: peaked softmaxes too
    std::vector<std::vector<T>> k, v;
    std::vector<Cache<T>> caches(B);
    std::vector<DecodeKv<T>> kvs(B);
    for (int64_t b = 0; b < B; ++b) {
      k.push_back(vgtest::randn<T>(lens[b] * kvd, g));
      v.push_back(vgtest::randn<T>(lens[b] * kvd, g));
      Cache<T>& c = caches[b];
      c.capacity = lens[b] + 3 * b;  // spare capacity: rows beyond len must not be read
      c.keys.assign(c.capacity * kvd, T(NAN));
      c.values.assign(c.capacity * kvd, T(NAN));
      for (int64_t j = 0; j < lens[b]; ++j)
        decode_kv_store(c.keys.data(), c.values.data(), c.capacity, sh.kv_heads, sh.d, j, k[b].data() + j * kvd,
                        v[b].data() + j * kvd);
      kvs[b] = {c.keys.data(), c.values.data(), lens[b], c.capacity};
    }
    DecodeAttentionDims dims{B, sh.heads, sh.kv_heads, sh.d, scale};
    std::vector<T> out(B * sh.heads * sh.d);
    decode_attention(dims, q.data(), kvs.data(), out.data());
    auto ref = attention_ref(q, k, v, lens, sh.heads, sh.kv_heads, sh.d, scale);
    VG_EXPECT_ALLCLOSE(out.data(), ref.data(), out.size(), tol, tol);
    // Same bits with one thread and with three.
    std::vector<T> o1(out.size()), o3(out.size());
    with_threads(1, [&] { decode_attention(dims, q.data(), kvs.data(), o1.data()); });
    with_threads(3, [&] { decode_attention(dims, q.data(), kvs.data(), o3.data()); });
    VG_EXPECT(o1 == out && o3 == out, "decode_attention depends on the thread count");
  }
}

}  // namespace

VG_TEST(decode_skinny_linear_multi_matches_reference_float) { check_multi<float>(2e-5); }
VG_TEST(decode_skinny_linear_multi_matches_reference_double) { check_multi<double>(1e-12); }
VG_TEST(decode_skinny_swiglu_matches_reference_float) { check_swiglu<float>(2e-5); }
VG_TEST(decode_skinny_swiglu_matches_reference_double) { check_swiglu<double>(1e-12); }
VG_TEST(decode_attention_matches_reference_float) { check_attention<float>(2e-5); }
VG_TEST(decode_attention_matches_reference_double) { check_attention<double>(1e-12); }

VG_TEST(decode_skinny_kernels_do_not_depend_on_thread_count) {
  // Decode-step shapes (8 rows, widths 512 -> 768 and 512 -> 1408), bitwise equal with 1, 2 and 3 threads.
  auto g = vgtest::rng(401);
  const int64_t rows = 8, in = 512, a = 512, b = 256, inter = 1408;
  auto x = vgtest::randn<float>(rows * in, g), Wa = vgtest::randn<float>(a * in, g), Wb = vgtest::randn<float>(b * in, g);
  auto Wu = vgtest::randn<float>(inter * in, g), Wg = vgtest::randn<float>(inter * in, g);
  auto run = [&](int threads) {
    std::vector<float> ya(rows * a), yb(rows * b), act(rows * inter);
    with_threads(threads, [&] {
      SkinnyOutput<float> s[2];
      s[0].W = Wa.data(), s[0].y = ya.data(), s[0].out = a;
      s[1].W = Wb.data(), s[1].y = yb.data(), s[1].out = b;
      skinny_linear_multi<float>(x.data(), rows, in, s, 2);
      skinny_swiglu<float>(x.data(), Wg.data(), Wu.data(), act.data(), rows, in, inter);
    });
    ya.insert(ya.end(), yb.begin(), yb.end());
    ya.insert(ya.end(), act.begin(), act.end());
    return ya;
  };
  const auto r1 = run(1);
  VG_EXPECT(run(2) == r1 && run(3) == r1, "skinny kernels depend on the thread count");
}

VG_TEST(decode_kernels_reject_bad_arguments) {
  std::vector<float> x(17 * 4), W(4 * 4), y(17 * 4);
  VG_EXPECT_THROWS(skinny_linear<float>(x.data(), W.data(), nullptr, y.data(), 17, 4, 4), "rows=17");
  VG_EXPECT_THROWS(skinny_swiglu<float>(x.data(), W.data(), W.data(), y.data(), 17, 4, 4), "rows=17");
  std::vector<float> k(2 * 4), v(2 * 4), q(4), o(4);
  DecodeKv<float> kv{k.data(), v.data(), 3, 2};
  DecodeAttentionDims dims{1, 1, 1, 4, 0.5};
  VG_EXPECT_THROWS(decode_attention(dims, q.data(), &kv, o.data()), "3 cached positions for a capacity of 2");
  dims.kv_heads = 3;
  kv.len = 1;
  VG_EXPECT_THROWS(decode_attention(dims, q.data(), &kv, o.data()), "kv heads 3");
  VG_EXPECT_THROWS(decode_kv_store(k.data(), v.data(), 2, 1, 4, 2, q.data(), q.data()), "position 2");
}

// ---- the decode step inside generate() (tiny model: hidden 16, head dim 4, MLP 24, so every kernel's partial
// vector paths run)

namespace {

// Decode positions of the tiny case's two prompts: every axis = cache index + (max prompt position + 1 - length).
std::vector<int32_t> rope_deltas(const vgtest::Case& c) {
  const int64_t N = static_cast<int64_t>(c.ids.size());
  std::vector<int32_t> deltas;
  for (size_t s = 0; s + 1 < c.cu.size(); ++s) {
    int32_t mx = 0;
    for (int64_t n = c.cu[s]; n < c.cu[s + 1]; ++n)
      for (int a = 0; a < 3; ++a) mx = std::max(mx, c.positions[a * N + n]);
    deltas.push_back(mx + 1 - (c.cu[s + 1] - c.cu[s]));
  }
  return deltas;
}

}  // namespace

VG_TEST(decode_generate_many_sequences_match_few) {
  // 2 prompts x 9 samples = 18 sequences: more rows than the streaming kernels take, so the decode step runs the
  // GEMM path with separate gate/up/SwiGLU; greedy, every sample must equal the 1-sample run (streaming, fused).
  vgtest::Case c = vgtest::make_case(VisionKind::Qwen2_5, false, 501);
  Model<float> m(c.cfg);
  vgtest::init_params(m, 502);
  const auto deltas = rope_deltas(c);
  GenerateOptions o;
  o.max_new_tokens = 6;
  o.sampling.temperature = 0;
  const auto few = generate(m, c.batch(), deltas.data(), &c.vin, o);
  o.num_samples = 9;
  const auto many = generate(m, c.batch(), deltas.data(), &c.vin, o);
  VG_EXPECT(few.size() == 2 && many.size() == 18);
  for (size_t s = 0; s < many.size(); ++s) {
    const auto& a = many[s];
    const auto& b = few[s / 9];
    VG_EXPECT(a.prompt == b.prompt && a.tokens == b.tokens, "sample ", s, " differs from its prompt's greedy run");
    VG_EXPECT_ALLCLOSE(a.logprobs.data(), b.logprobs.data(), b.logprobs.size(), 1e-5, 1e-5);
  }
}

VG_TEST(decode_generate_does_not_depend_on_thread_count) {
  vgtest::Case c = vgtest::make_case(VisionKind::Qwen2_5, false, 503);
  Model<float> m(c.cfg);
  vgtest::init_params(m, 504);
  const auto deltas = rope_deltas(c);
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.num_samples = 3;
  o.sampling.temperature = 1.0;
  o.sampling.seed = 11;
  std::vector<std::vector<GeneratedSequence>> runs;
  for (int threads : {1, 2, 3})
    with_threads(threads, [&] { runs.push_back(generate(m, c.batch(), deltas.data(), &c.vin, o)); });
  for (size_t r = 1; r < runs.size(); ++r)
    for (size_t s = 0; s < runs[0].size(); ++s)
      VG_EXPECT(runs[r][s].tokens == runs[0][s].tokens && runs[r][s].logprobs == runs[0][s].logprobs, "sequence ", s,
                " with ", r + 1, " threads");
}
