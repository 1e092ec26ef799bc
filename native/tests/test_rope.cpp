// Rotary embeddings against a literal transcription of the HF formulas (spec 3.2, 4.3): emb = concat(freqs, freqs),
// q' = q·cos(emb) + rotate_half(q)·sin(emb), M-RoPE by splitting emb into mrope_section·2 chunks, vision angles from
// a table indexed by (hpos, wpos). Also: the spec's numeric constants, text-only M-RoPE = 1-D RoPE, section
// boundaries, the spec's vision position order, finite differences for the backward, and the inverse property.
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/rope.h"
#include "test_framework.h"

using namespace vg;

namespace {

// inv_freq exactly as HF writes it: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in T.
template <typename T>
std::vector<T> literal_inv_freq(double theta, int64_t dim) {
  std::vector<T> f;
  for (int64_t i = 0; i < dim; i += 2) f.push_back(T(1) / std::pow(static_cast<T>(theta), T(i) / T(dim)));
  return f;
}

// q' = q·cos + rotate_half(q)·sin for one head of length d, with emb of length d; computed in double.
template <typename T>
void literal_rotate(const T* q, const std::vector<T>& emb, int64_t d, double* out) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < d; ++i) {
    const double rh = i < half ? -double(q[i + half]) : double(q[i - half]);  // rotate_half([x1, x2]) = [-x2, x1]
    out[i] = double(q[i]) * std::cos(double(emb[i])) + rh * std::sin(double(emb[i]));
  }
}

// Applies per-token emb [N, d] to x [N, H, d].
template <typename T>
std::vector<double> literal_apply(const std::vector<T>& x, const std::vector<std::vector<T>>& emb, int64_t N, int64_t H,
                                  int64_t d) {
  std::vector<double> out(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) literal_rotate(x.data() + (n * H + h) * d, emb[n], d, out.data() + (n * H + h) * d);
  return out;
}

// 1-D: freqs = pos · inv_freq (in T), emb = concat(freqs, freqs).
template <typename T>
std::vector<std::vector<T>> literal_emb_1d(const std::vector<int32_t>& pos, int64_t d, double theta) {
  auto inv = literal_inv_freq<T>(theta, d);
  std::vector<std::vector<T>> emb;
  for (int32_t p : pos) {
    std::vector<T> e(d);
    for (int64_t k = 0; k < d / 2; ++k) e[k] = e[k + d / 2] = static_cast<T>(p) * inv[k];
    emb.push_back(e);
  }
  return emb;
}

// M-RoPE as HF's apply_multimodal_rotary_pos_emb: emb_c for each component, then split the last dim into chunks of
// sizes mrope_section * 2 = [s0, s1, s2, s0, s1, s2] and take chunk i from component i % 3.
template <typename T>
std::vector<std::vector<T>> literal_emb_mrope(const std::vector<int32_t>& pos3, int64_t N, int64_t d, double theta,
                                             const int64_t sec[3]) {
  std::vector<std::vector<T>> emb_c[3];
  for (int c = 0; c < 3; ++c)
    emb_c[c] = literal_emb_1d<T>(std::vector<int32_t>(pos3.begin() + c * N, pos3.begin() + (c + 1) * N), d, theta);
  const int64_t chunks[6] = {sec[0], sec[1], sec[2], sec[0], sec[1], sec[2]};
  std::vector<std::vector<T>> emb(N, std::vector<T>(d));
  for (int64_t n = 0; n < N; ++n) {
    int64_t off = 0;
    for (int i = 0; i < 6; ++i) {
      for (int64_t j = 0; j < chunks[i]; ++j) emb[n][off + j] = emb_c[i % 3][n][off + j];
      off += chunks[i];
    }
  }
  return emb;
}

// Vision: HF get_rotary_pos_ids for one grid: (hpos, wpos) in merge-window order, repeated gt times.
std::vector<int32_t> vision_pos_ids(int gt, int gh, int gw) {
  std::vector<int32_t> ids;
  for (int t = 0; t < gt; ++t)
    for (int i = 0; i < gh / 2; ++i)
      for (int j = 0; j < gw / 2; ++j)
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) ids.push_back(2 * i + a), ids.push_back(2 * j + b);
  return ids;
}

// Vision angles: table[p, k] = p · inv_freq_v[k] with inv_freq_v over dim = dv/2; rotary_pos_emb =
// [table[hpos], table[wpos]] (dv/2 values); emb = concat(rotary_pos_emb, rotary_pos_emb).
template <typename T>
std::vector<std::vector<T>> literal_emb_vision(const std::vector<int32_t>& ids, int64_t dv, double theta) {
  auto inv = literal_inv_freq<T>(theta, dv / 2);
  int32_t maxp = 0;
  for (int32_t p : ids) maxp = std::max(maxp, p);
  std::vector<std::vector<T>> table(maxp + 1);
  for (int32_t p = 0; p <= maxp; ++p)
    for (T f : inv) table[p].push_back(static_cast<T>(p) * f);
  std::vector<std::vector<T>> emb;
  for (size_t n = 0; n < ids.size() / 2; ++n) {
    std::vector<T> rpe = table[ids[2 * n]];
    rpe.insert(rpe.end(), table[ids[2 * n + 1]].begin(), table[ids[2 * n + 1]].end());
    std::vector<T> e = rpe;
    e.insert(e.end(), rpe.begin(), rpe.end());
    emb.push_back(e);
  }
  return emb;
}

template <typename T>
std::vector<T> apply(RopeKind kind, const std::vector<T>& x, const std::vector<int32_t>& pos, int64_t N, int64_t H,
                     int64_t d, double theta, const int64_t* sec = nullptr, bool inverse = false) {
  std::vector<T> c(N * d / 2), s(N * d / 2), y(x.size());
  rope_tables<T>(kind, pos.data(), N, d, theta, sec, c.data(), s.data());
  rope_apply<T>(x.data(), y.data(), N, H, d, c.data(), s.data(), inverse);
  return y;
}

// Random positions, including 0, large ones and the int32 extremes of what a model could see.
std::vector<int32_t> random_positions(size_t n, std::mt19937_64& g) {
  std::uniform_int_distribution<int32_t> small(0, 4096), large(0, 2000000000);
  const int32_t special[] = {0, 1, 127999, 1000000, 16777217, 2147483647};
  std::vector<int32_t> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = i < 6 ? special[i] : (i % 3 == 0 ? large(g) : small(g));
  return p;
}

// Tolerance of the float path against the double-evaluated literal formula: the angles are identical fp32 values
// on both sides; cos/sin (fp32 vs double) and the rotation rounding add a few ulp of |x| ~ 4.
constexpr double kFloatTol = 4e-6;

}  // namespace

VG_TEST(rope_inv_freq_matches_spec_constants) {
  // Spec 1.4: text, theta 1e6, d = 128.
  std::vector<float> f(64);
  rope_inv_freq<float>(RopeKind::k1D, 128, 1e6, f.data());
  const double want[] = {1.0, 0.80584222, 0.64938164, 0.52329916};
  for (int k = 0; k < 4; ++k) VG_EXPECT(std::fabs(f[k] - want[k]) < 1e-7, "inv_freq[", k, "] = ", f[k]);
  VG_EXPECT(std::fabs(f[16] / 0.0316228 - 1) < 1e-5, "inv_freq[16] = ", f[16]);
  VG_EXPECT(std::fabs(f[63] / 1.2409e-6 - 1) < 1e-4, "inv_freq[63] = ", f[63]);
  // Vision: dv = 80, dim_rot 40, 20 frequencies 1/10000^(2k/40).
  std::vector<float> v(20);
  rope_inv_freq<float>(RopeKind::kVision2D, 80, 1e4, v.data());
  const double vwant[] = {1.0, 0.6309573, 0.3981072, 0.2511886, 0.1584893, 0.1};
  for (int k = 0; k < 6; ++k) VG_EXPECT(std::fabs(v[k] - vwant[k]) < 1e-7, "inv_freq_v[", k, "] = ", v[k]);
  VG_EXPECT(std::fabs(v[19] / 1.5849e-4 - 1) < 1e-4, "inv_freq_v[19] = ", v[19]);
  // The fp32 values are those of the fp32 formula (not a double computation rounded at the end).
  auto lit = literal_inv_freq<float>(1e6, 128);
  for (int k = 0; k < 64; ++k) VG_EXPECT(f[k] == lit[k], "k ", k);
}

VG_TEST(rope_1d_matches_literal_formula) {
  auto g = vgtest::rng(21);
  for (int64_t d : {2, 16, 128}) {
    const int64_t N = 40, H = 3;
    auto pos = random_positions(N, g);
    for (double theta : {1e4, 1e6}) {
      auto xf = vgtest::randn<float>(N * H * d, g);
      auto ref = literal_apply(xf, literal_emb_1d<float>(pos, d, theta), N, H, d);
      auto yf = apply<float>(RopeKind::k1D, xf, pos, N, H, d, theta);
      VG_EXPECT_ALLCLOSE(yf.data(), ref.data(), yf.size(), kFloatTol, 0.0);

      std::vector<double> xd(xf.begin(), xf.end());
      auto refd = literal_apply(xd, literal_emb_1d<double>(pos, d, theta), N, H, d);
      auto yd = apply<double>(RopeKind::k1D, xd, pos, N, H, d, theta);
      // Double angles up to 2e9 rad: cos/sin of them agree to ~1e-16·|angle|.
      VG_EXPECT_ALLCLOSE(yd.data(), refd.data(), yd.size(), 1e-12, 0.0);
    }
  }
}

VG_TEST(rope_mrope_matches_literal_formula) {
  auto g = vgtest::rng(22);
  struct Case { int64_t d; int64_t sec[3]; };
  const Case cases[] = {{128, {16, 24, 24}}, {16, {2, 3, 3}}, {16, {4, 2, 2}}, {24, {3, 4, 5}}, {8, {0, 4, 0}}};
  for (const Case& c : cases) {
    const int64_t N = 30, H = 2;
    auto p = random_positions(3 * N, g);
    auto xf = vgtest::randn<float>(N * H * c.d, g);
    auto ref = literal_apply(xf, literal_emb_mrope<float>(p, N, c.d, 1e6, c.sec), N, H, c.d);
    auto yf = apply<float>(RopeKind::kMRope, xf, p, N, H, c.d, 1e6, c.sec);
    VG_EXPECT_ALLCLOSE(yf.data(), ref.data(), yf.size(), kFloatTol, 0.0);

    std::vector<double> xd(xf.begin(), xf.end());
    auto refd = literal_apply(xd, literal_emb_mrope<double>(p, N, c.d, 100.0, c.sec), N, H, c.d);
    auto yd = apply<double>(RopeKind::kMRope, xd, p, N, H, c.d, 100.0, c.sec);
    VG_EXPECT_ALLCLOSE(yd.data(), refd.data(), yd.size(), 1e-12, 0.0);
  }
}

VG_TEST(rope_mrope_text_only_equals_1d) {
  auto g = vgtest::rng(23);
  const int64_t N = 50, H = 4, d = 128, sec[3] = {16, 24, 24};
  auto p = random_positions(N, g);
  std::vector<int32_t> p3;
  for (int c = 0; c < 3; ++c) p3.insert(p3.end(), p.begin(), p.end());  // t = h = w
  auto x = vgtest::randn<float>(N * H * d, g);
  auto a = apply<float>(RopeKind::k1D, x, p, N, H, d, 1e6);
  auto b = apply<float>(RopeKind::kMRope, x, p3, N, H, d, 1e6, sec);
  for (size_t i = 0; i < a.size(); ++i) VG_EXPECT(a[i] == b[i], "element ", i, ": ", a[i], " vs ", b[i]);
}

VG_TEST(rope_mrope_section_boundaries) {
  // Distinct t, h, w per token: pair k must use t for k < s0, h for s0 <= k < s0+s1, w after (both halves alike).
  const int64_t d = 128, half = 64, sec[3] = {16, 24, 24};
  const int64_t N = 2;
  const std::vector<int32_t> p3 = {3, 40, /*h*/ 7, 50, /*w*/ 11, 60};
  std::vector<double> c(N * half), s(N * half);
  rope_tables<double>(RopeKind::kMRope, p3.data(), N, d, 1e6, sec, c.data(), s.data());
  std::vector<double> inv(half);
  rope_inv_freq<double>(RopeKind::kMRope, d, 1e6, inv.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k : {int64_t(0), int64_t(15), int64_t(16), int64_t(39), int64_t(40), int64_t(63)}) {
      const int comp = k < 16 ? 0 : (k < 40 ? 1 : 2);
      const double angle = p3[comp * N + n] * inv[k];
      VG_EXPECT(std::fabs(c[n * half + k] - std::cos(angle)) < 1e-15, "cos n ", n, " k ", k);
      VG_EXPECT(std::fabs(s[n * half + k] - std::sin(angle)) < 1e-15, "sin n ", n, " k ", k);
    }
  // And the rotation of a one-hot vector e_k shows the angle at (k, k + d/2): dims 16..39 and 80..103 move with h.
  std::vector<double> x(d, 0.0), y(d);
  x[16] = 1.0;
  rope_apply<double>(x.data(), y.data(), 1, 1, d, c.data(), s.data(), false);
  VG_EXPECT(std::fabs(y[16] - std::cos(7 * inv[16])) < 1e-15 && std::fabs(y[80] - std::sin(7 * inv[16])) < 1e-15,
            "pair (16, 80) uses h = 7");
}

VG_TEST(rope_vision2d_matches_spec_order_and_formula) {
  // Spec 3.2 example, grid (1,4,4).
  const int32_t want[16][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3},
                               {2, 0}, {2, 1}, {3, 0}, {3, 1}, {2, 2}, {2, 3}, {3, 2}, {3, 3}};
  auto ids = vision_pos_ids(1, 4, 4);
  VG_EXPECT(ids.size() == 32, "size");
  for (int i = 0; i < 16; ++i) VG_EXPECT(ids[2 * i] == want[i][0] && ids[2 * i + 1] == want[i][1], "patch ", i);

  auto g = vgtest::rng(24);
  const int grids[][3] = {{1, 4, 4}, {2, 6, 10}, {1, 36, 8}};
  for (auto& gr : grids)
    for (int64_t dv : {80, 16, 4}) {
      auto pos = vision_pos_ids(gr[0], gr[1], gr[2]);
      const int64_t N = static_cast<int64_t>(pos.size() / 2), H = 2;
      auto xf = vgtest::randn<float>(N * H * dv, g);
      auto ref = literal_apply(xf, literal_emb_vision<float>(pos, dv, 1e4), N, H, dv);
      auto yf = apply<float>(RopeKind::kVision2D, xf, pos, N, H, dv, 1e4);
      VG_EXPECT_ALLCLOSE(yf.data(), ref.data(), yf.size(), kFloatTol, 0.0);
      std::vector<double> xd(xf.begin(), xf.end());
      auto refd = literal_apply(xd, literal_emb_vision<double>(pos, dv, 1e4), N, H, dv);
      auto yd = apply<double>(RopeKind::kVision2D, xd, pos, N, H, dv, 1e4);
      VG_EXPECT_ALLCLOSE(yd.data(), refd.data(), yd.size(), 1e-13, 0.0);
    }
  // Pairs k < dv/4 rotate with hpos, the next dv/4 with wpos: swapping (h, w) must change the result.
  std::vector<int32_t> hw = {2, 5}, wh = {5, 2};
  auto x = vgtest::randn<double>(16, g);
  auto a = apply<double>(RopeKind::kVision2D, x, hw, 1, 1, 16, 1e4), b = apply<double>(RopeKind::kVision2D, x, wh, 1, 1, 16, 1e4);
  bool differs = false;
  for (int i = 0; i < 16; ++i) differs |= std::fabs(a[i] - b[i]) > 1e-6;
  VG_EXPECT(differs, "h and w positions must not be interchangeable");
}

VG_TEST(rope_backward_finite_differences_and_inverse) {
  auto g = vgtest::rng(25);
  const int64_t N = 3, H = 2, d = 8, sec[3] = {1, 2, 1};
  for (RopeKind kind : {RopeKind::k1D, RopeKind::kMRope, RopeKind::kVision2D}) {
    const int64_t npos = kind == RopeKind::k1D ? N : (kind == RopeKind::kMRope ? 3 * N : 2 * N);
    auto pos = random_positions(npos, g);
    std::vector<double> c(N * d / 2), s(N * d / 2);
    rope_tables<double>(kind, pos.data(), N, d, 1e4, sec, c.data(), s.data());
    auto x = vgtest::randn<double>(N * H * d, g), gy = vgtest::randn<double>(N * H * d, g);
    auto loss = [&]() {
      std::vector<double> y(x.size());
      rope_apply<double>(x.data(), y.data(), N, H, d, c.data(), s.data(), false);
      double l = 0;
      for (size_t i = 0; i < y.size(); ++i) l += gy[i] * y[i];
      return l;
    };
    std::vector<double> dx(x.size(), NAN);
    rope_backward<double>(gy.data(), dx.data(), N, H, d, c.data(), s.data());
    // Threshold: the loss is linear in x, so central differences (h = 1e-6) are exact up to rounding, ~1e-10.
    for (size_t i = 0; i < x.size(); ++i) {
      const double h = 1e-6, keep = x[i];
      x[i] = keep + h;
      const double lp = loss();
      x[i] = keep - h;
      const double lm = loss();
      x[i] = keep;
      const double fd = (lp - lm) / (2 * h);
      VG_EXPECT(std::fabs(fd - dx[i]) < 1e-8, "dx[", i, "] = ", dx[i], " vs fd ", fd);
    }
    // Inverse: rotating by θ then by −θ gives x back; in place (y == x) too.
    auto y = x;
    rope_apply<double>(y.data(), y.data(), N, H, d, c.data(), s.data(), false);
    rope_apply<double>(y.data(), y.data(), N, H, d, c.data(), s.data(), true);
    VG_EXPECT_ALLCLOSE(y.data(), x.data(), x.size(), 1e-14, 0.0);
  }
  // Float, larger: inverse within fp32 rounding.
  const int64_t Nf = 64, Hf = 4, df = 128, secf[3] = {16, 24, 24};
  auto pos = random_positions(3 * Nf, g);
  std::vector<float> c(Nf * df / 2), s(Nf * df / 2);
  rope_tables<float>(RopeKind::kMRope, pos.data(), Nf, df, 1e6, secf, c.data(), s.data());
  auto x = vgtest::randn<float>(Nf * Hf * df, g);
  std::vector<float> y(x.size()), z(x.size());
  rope_apply<float>(x.data(), y.data(), Nf, Hf, df, c.data(), s.data(), false);
  rope_backward<float>(y.data(), z.data(), Nf, Hf, df, c.data(), s.data());
  VG_EXPECT_ALLCLOSE(z.data(), x.data(), x.size(), 2e-6, 0.0);
}

VG_TEST(rope_strided_in_place_on_packed_qkv) {
  // One table, shared by q (nH heads) and k (nKV heads) inside packed [N, (nH + 2 nKV) d] rows; v untouched.
  auto g = vgtest::rng(26);
  const int64_t N = 9, nH = 4, nKV = 2, d = 16, row = (nH + 2 * nKV) * d;
  auto pos = random_positions(N, g);
  std::vector<float> c(N * d / 2), s(N * d / 2);
  rope_tables<float>(RopeKind::k1D, pos.data(), N, d, 1e4, nullptr, c.data(), s.data());
  auto qkv = vgtest::randn<float>(N * row, g);
  auto packed = qkv;
  rope_apply<float>(packed.data(), row, packed.data(), row, N, nH, d, c.data(), s.data(), false);
  rope_apply<float>(packed.data() + nH * d, row, packed.data() + nH * d, row, N, nKV, d, c.data(), s.data(), false);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<float> q(qkv.begin() + n * row, qkv.begin() + n * row + nH * d), qy(nH * d);
    std::vector<float> k(qkv.begin() + n * row + nH * d, qkv.begin() + n * row + (nH + nKV) * d), ky(nKV * d);
    rope_apply<float>(q.data(), qy.data(), 1, nH, d, c.data() + n * d / 2, s.data() + n * d / 2, false);
    rope_apply<float>(k.data(), ky.data(), 1, nKV, d, c.data() + n * d / 2, s.data() + n * d / 2, false);
    VG_EXPECT(std::memcmp(qy.data(), packed.data() + n * row, sizeof(float) * nH * d) == 0, "q of token ", n);
    VG_EXPECT(std::memcmp(ky.data(), packed.data() + n * row + nH * d, sizeof(float) * nKV * d) == 0, "k of token ", n);
    VG_EXPECT(std::memcmp(qkv.data() + n * row + (nH + nKV) * d, packed.data() + n * row + (nH + nKV) * d,
                          sizeof(float) * nKV * d) == 0,
              "v of token ", n);
  }
}

VG_TEST(rope_rejects_bad_arguments) {
  std::vector<int32_t> pos(12, 1);
  std::vector<float> c(64), s(64), x(64);
  const int64_t bad_sec[3] = {2, 3, 2}, neg_sec[3] = {-1, 5, 4};
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::k1D, pos.data(), 2, 7, 1e4, nullptr, c.data(), s.data()),
                   "head_dim must be even and >= 2, got 7");
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::kMRope, pos.data(), 2, 16, 1e4, bad_sec, c.data(), s.data()),
                   "must be >= 0 and sum to head_dim/2 = 8 (sum 7)");
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::kMRope, pos.data(), 2, 16, 1e4, neg_sec, c.data(), s.data()),
                   "mrope_section [-1, 5, 4]");
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::kMRope, pos.data(), 2, 16, 1e4, nullptr, c.data(), s.data()),
                   "needs mrope_section");
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::kVision2D, pos.data(), 2, 6, 1e4, nullptr, c.data(), s.data()),
                   "divisible by 4");
  VG_EXPECT_THROWS(rope_tables<float>(RopeKind::k1D, pos.data(), 2, 8, 0.0, nullptr, c.data(), s.data()),
                   "theta must be finite and > 0");
  VG_EXPECT_THROWS(rope_apply<float>(x.data(), 8, x.data(), 8, 2, 2, 8, c.data(), s.data(), false),
                   "token strides");
}
