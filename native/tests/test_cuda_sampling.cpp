// The GPU sampler against the CPU sampler on the same fp32 logits and Philox keys: the same tokens (both
// compute the weights in double; they can differ only if u or p lands within ~1e-12 of a cumulative-mass
// boundary, which these random cases never do), and log-probs within 2e-5 absolute (fp32 outputs of double
// math, the normalisers summed in a different order).
#if VG_HAVE_CUDA
#include <algorithm>
#include <cstring>

#include "core/rng.h"
#include "cpu/sampling.h"
#include "cuda/philox.h"
#include "cuda/radix_select.h"
#include "cuda/sampling.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

VG_TEST(cuda_sampling_philox_matches_cpu_rng) {
  // Host-side check of the shared device/host Philox (runs without a GPU).
  auto g = vgtest::rng(1);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t seed = g();
    const uint32_t seq = static_cast<uint32_t>(g()), pos = static_cast<uint32_t>(g() % 100000);
    const double a = vg::cuda::sampling_uniform(seed, seq, pos), b = vg::sampling_uniform(seed, seq, pos);
    VG_EXPECT(a == b, "seed ", seed, " seq ", seq, " pos ", pos, ": ", a, " vs ", b);
  }
}

namespace {

using u64 = unsigned long long;

// The sampler's key: order-preserving bits of the logit, then the complemented id (cuda/sampling.cu).
u64 key_of(float x, uint32_t id) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<u64>(u) << 32) | (0xFFFFFFFFu - id);
}

// The kernel's 8-level radix descents, run on the host with the same bin choices.
u64 radix_topk(const std::vector<u64>& keys, long long k) {
  u64 prefix = 0, pmask = 0;
  for (int level = 0; level < 8; ++level) {
    const int shift = 56 - 8 * level;
    unsigned int count[256] = {};
    for (u64 key : keys)
      if ((key & pmask) == prefix) ++count[(key >> shift) & 255];
    long long above = 0;
    const int bin = vg::cuda::topk_choose_bin(count, k, &above);
    prefix |= static_cast<u64>(bin) << shift;
    pmask |= 0xFFull << shift;
    k -= above;
  }
  return prefix;
}

u64 radix_topp(const std::vector<u64>& keys, const std::vector<u64>& w, u64 target) {
  u64 prefix = 0, pmask = 0, before = 0;
  for (int level = 0; level < 8; ++level) {
    const int shift = 56 - 8 * level;
    unsigned int count[256] = {};
    u64 mass[256] = {};
    for (size_t i = 0; i < keys.size(); ++i)
      if ((keys[i] & pmask) == prefix) ++count[(keys[i] >> shift) & 255], mass[(keys[i] >> shift) & 255] += w[i];
    u64 chosen_before = 0;
    const int bin = vg::cuda::topp_choose_bin(count, mass, before, target, &chosen_before);
    prefix |= static_cast<u64>(bin) << shift;
    pmask |= 0xFFull << shift;
    before = chosen_before;
  }
  return prefix;
}

void sampling_case(int64_t B, int64_t V, vg::SamplingOptions o, const std::vector<int32_t>& banned, uint64_t salt,
                   double scale) {
  auto g = vgtest::rng(salt);
  auto logits = vgtest::randn<float>(static_cast<size_t>(B * V), g, scale);
  // Ties and -inf entries: the order's tie-break and the exclusion rules must agree with the CPU.
  for (int64_t b = 0; b < B; ++b) {
    logits[b * V + (b % V)] = logits[b * V + ((b + 3) % V)];
    logits[b * V + ((b + 5) % V)] = -INFINITY;
  }
  std::vector<uint32_t> seq(B), pos(B);
  for (int64_t b = 0; b < B; ++b) seq[b] = static_cast<uint32_t>(g()), pos[b] = static_cast<uint32_t>(g() % 4096);
  o.banned = banned.empty() ? nullptr : banned.data();
  o.num_banned = static_cast<int64_t>(banned.size());
  std::vector<int32_t> tok_ref(B);
  std::vector<float> lp_ref(B), flp_ref(B);
  vg::sample_tokens<float>(logits.data(), B, V, seq.data(), pos.data(), o, tok_ref.data(), lp_ref.data(), flp_ref.data());

  auto dl = to_device(logits);
  auto ds = to_device(seq), dp = to_device(pos);
  DeviceBuffer<int32_t> dt(B);
  DeviceBuffer<float> dlp(B), dflp(B);
  dt.fill_bytes(0xFF);
  dlp.fill_bytes(0xFF);
  dflp.fill_bytes(0xFF);
  sample_tokens(dl.get(), B, V, ds.get(), dp.get(), o, dt.get(), dlp.get(), dflp.get(), 0);
  auto tok = dt.to_host();
  auto lp = dlp.to_host(), flp = dflp.to_host();
  for (int64_t b = 0; b < B; ++b)
    VG_EXPECT(tok[b] == tok_ref[b], "row ", b, ": GPU token ", tok[b], " vs CPU ", tok_ref[b], " (T=", o.temperature,
              " k=", o.top_k, " p=", o.top_p, " min_p=", o.min_p, ")");
  VG_EXPECT_ALLCLOSE(lp.data(), lp_ref.data(), static_cast<size_t>(B), 2e-5, 1e-6);
  VG_EXPECT_ALLCLOSE(flp.data(), flp_ref.data(), static_cast<size_t>(B), 2e-5, 1e-6);
}

}  // namespace

VG_TEST(cuda_sampling_radix_descents_match_a_sort) {
  // Host-side check of the bin choices the sampler kernel makes (runs without a GPU): the top-k threshold is the
  // k-th largest key and the top-p threshold is the smallest key whose mass strictly before it is < target.
  auto g = vgtest::rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + g() % 3000;
    std::vector<u64> keys(n), w(n);
    std::normal_distribution<float> nd(0.f, trial % 2 ? 3.f : 0.01f);
    for (size_t i = 0; i < n; ++i) {
      float x = nd(g);
      if (g() % 4 == 0) x = std::round(x);  // many exact ties in the logit part
      keys[i] = key_of(x, static_cast<uint32_t>(i));
      w[i] = g() % 8 == 0 ? 0 : g() % (u64(1) << 40);
    }
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] > keys[b]; });
    const long long k = 1 + static_cast<long long>(g() % n);
    VG_EXPECT(radix_topk(keys, k) == keys[order[k - 1]], "top-k, n=", n, " k=", k);
    u64 total = 0;
    for (u64 x : w) total += x;
    u64 target = 1 + (total > 0 ? g() % total : 0);
    if (trial % 3 == 0) {  // exactly a cumulative mass: the strict "< target" boundary must hold
      u64 cum = 0;
      const size_t stop = g() % n;
      for (size_t i = 0; i <= stop; ++i) cum += w[order[i]];
      if (cum > 0) target = cum;
    }
    u64 before = 0, last = keys[order[0]];
    for (size_t i : order) {
      if (before >= target) break;
      last = keys[i];
      before += w[i];
    }
    VG_EXPECT(radix_topp(keys, w, target) == last, "top-p, n=", n, " target=", target);
  }
}

VG_TEST(cuda_sampling_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  const int64_t B = 48, V = 5003;
  std::vector<int32_t> banned = {0, 17, 4999, 17};
  uint64_t salt = 10;
  vg::SamplingOptions o;
  o.seed = 1234;
  o.temperature = 0;  // greedy
  sampling_case(B, V, o, banned, ++salt, 3.0);
  o.temperature = 0.8;  // plain temperature sampling
  sampling_case(B, V, o, banned, ++salt, 3.0);
  o.top_k = 40;
  sampling_case(B, V, o, {}, ++salt, 3.0);
  o.top_k = 0, o.top_p = 0.9;
  sampling_case(B, V, o, banned, ++salt, 3.0);
  o.top_p = 1.0, o.min_p = 0.05;
  sampling_case(B, V, o, {}, ++salt, 2.0);
  o.top_k = 200, o.top_p = 0.7, o.min_p = 0.01, o.temperature = 1.3;
  sampling_case(B, V, o, banned, ++salt, 4.0);
  o.top_k = 1;  // top-1 is greedy on the allowed tokens
  sampling_case(B, V, o, banned, ++salt, 1.0);
}

VG_TEST(cuda_sampling_matches_cpu_full_vocabulary) {
  VG_CUDA_TEST_REQUIRE_GPU();
  vg::SamplingOptions o;
  o.seed = 99;
  o.temperature = 1.0, o.top_p = 0.95, o.top_k = 0;
  sampling_case(8, 151936, o, {151643, 151644, 151645}, 77, 2.5);
}

VG_TEST(cuda_sampling_rejects_bad_input) {
  VG_CUDA_TEST_REQUIRE_GPU();
  const int64_t B = 3, V = 20;
  auto g = vgtest::rng(5);
  auto logits = vgtest::randn<float>(B * V, g);
  logits[1 * V + 7] = NAN;
  auto dl = to_device(logits);
  auto ds = to_device(std::vector<uint32_t>{0, 1, 2}), dp = to_device(std::vector<uint32_t>{0, 0, 0});
  DeviceBuffer<int32_t> dt(B);
  DeviceBuffer<float> a(B), b(B);
  vg::SamplingOptions o;
  VG_EXPECT_THROWS(sample_tokens(dl.get(), B, V, ds.get(), dp.get(), o, dt.get(), a.get(), b.get(), 0), "logits[1, 7]");
  std::vector<int32_t> all(V);
  for (int i = 0; i < V; ++i) all[i] = i;
  logits[1 * V + 7] = 0.f;
  dl.upload(logits);
  o.banned = all.data(), o.num_banned = V;
  VG_EXPECT_THROWS(sample_tokens(dl.get(), B, V, ds.get(), dp.get(), o, dt.get(), a.get(), b.get(), 0),
                   "no token left");
}

VG_TEST(cuda_sampling_rejects_bad_options) {
  vg::SamplingOptions o;
  o.top_p = 0;
  VG_EXPECT_THROWS(sample_tokens(nullptr, 1, 10, nullptr, nullptr, o, nullptr, nullptr, nullptr, 0), "topP");
  o.top_p = 1;
  const int32_t bad[1] = {10};
  o.banned = bad, o.num_banned = 1;
  VG_EXPECT_THROWS(sample_tokens(nullptr, 1, 10, nullptr, nullptr, o, nullptr, nullptr, nullptr, 0), "bannedTokens[0] = 10");
}
#endif
