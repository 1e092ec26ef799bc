// GPU chunked log-prob gather against the CPU kernel (double, same bf16-rounded h and W). The logits are
// fp32-accumulated sums of exact bf16 products (~1e-6 relative), so logprob / lse / entropy agree to 2e-4
// absolute. The backward multiplies a bf16-rounded G (2^-9 relative) in the GEMMs: dh and dW within 1.5e-2
// relative L2.
#if VG_HAVE_CUDA
#include "cpu/logprob.h"
#include "cuda/cublas_loader.h"
#include "cuda/logprob.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

namespace {

bool have_cublas() {
  std::string why;
  if (cublas_available(&why)) return true;
  std::printf("     skipped: cuBLAS not loadable (%s)\n", why.c_str());
  return false;
}

void logprob_case(int64_t N, int64_t H, int64_t V, int64_t chunk, double temp, uint64_t salt) {
  auto g = vgtest::rng(salt);
  auto h = vgtest::randn_bf16(static_cast<size_t>(N * H), g, 1.0);
  auto W = vgtest::randn_bf16(static_cast<size_t>(V * H), g, 0.3);
  std::vector<int32_t> targets(N);
  std::uniform_int_distribution<int32_t> td(0, static_cast<int32_t>(V - 1));
  for (int64_t i = 0; i < N; ++i) targets[i] = (i % 5 == 3) ? -1 : td(g);  // some rows without a target
  auto dlp = vgtest::randn<float>(N, g), dent = vgtest::randn<float>(N, g);
  auto dW0 = vgtest::randn<float>(static_cast<size_t>(V * H), g, 0.1);

  auto hd = vgtest::to_double(h), Wd = vgtest::to_double(W);
  std::vector<double> lp_ref(N), ent_ref(N), lse_ref(N), dh_ref(N * H), dW_ref = vgtest::to_double(dW0);
  auto dlpd = vgtest::to_double(dlp), dentd = vgtest::to_double(dent);
  vg::logprob_forward<double>(hd.data(), Wd.data(), targets.data(), lp_ref.data(), ent_ref.data(), lse_ref.data(), N, H,
                              V, temp, 64);
  vg::logprob_backward<double>(hd.data(), Wd.data(), targets.data(), lse_ref.data(), dlpd.data(), dentd.data(),
                               ent_ref.data(), dh_ref.data(), dW_ref.data(), N, H, V, temp, 64);

  auto dh_in = vgtest::device_bf16(h), dW_in = vgtest::device_bf16(W);
  auto dt = to_device(targets);
  auto ddlp = to_device(dlp), ddent = to_device(dent);
  DeviceBuffer<float> lp(N), ent(N), lse(N), dh(N * H);
  auto dW = to_device(dW0);
  for (auto* b : {&lp, &ent, &lse, &dh}) b->fill_bytes(0xFF);
  logprob_forward(dh_in.get(), dW_in.get(), dt.get(), lp.get(), ent.get(), lse.get(), N, H, V, temp, chunk, 0);
  logprob_backward(dh_in.get(), dW_in.get(), dt.get(), lse.get(), ddlp.get(), ddent.get(), ent.get(), dh.get(), dW.get(),
                   N, H, V, temp, chunk, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto lpv = lp.to_host(), entv = ent.to_host(), lsev = lse.to_host(), dhv = dh.to_host(), dWv = dW.to_host();
  VG_EXPECT_ALLCLOSE(lpv.data(), lp_ref.data(), static_cast<size_t>(N), 2e-4, 1e-5);
  VG_EXPECT_ALLCLOSE(entv.data(), ent_ref.data(), static_cast<size_t>(N), 2e-4, 1e-5);
  VG_EXPECT_ALLCLOSE(lsev.data(), lse_ref.data(), static_cast<size_t>(N), 2e-4, 1e-5);
  VG_EXPECT_REL_L2(dhv.data(), dh_ref.data(), dhv.size(), 1.5e-2);
  // dW: compare the increments (dW - dW0), which carry the error, not the random starting values.
  std::vector<double> inc(dWv.size()), inc_ref(dWv.size());
  for (size_t i = 0; i < dWv.size(); ++i) inc[i] = dWv[i] - dW0[i], inc_ref[i] = dW_ref[i] - dW0[i];
  VG_EXPECT_REL_L2(inc.data(), inc_ref.data(), inc.size(), 1.5e-2);

  // Entropy recomputed inside the backward when not given: same gradient.
  DeviceBuffer<float> dh2(N * H);
  logprob_backward(dh_in.get(), dW_in.get(), dt.get(), lse.get(), ddlp.get(), ddent.get(), nullptr, dh2.get(), nullptr,
                   N, H, V, temp, chunk, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto dh2v = dh2.to_host();
  VG_EXPECT_REL_L2(dh2v.data(), dhv.data(), dhv.size(), 1e-5);
}

}  // namespace

VG_TEST(cuda_logprob_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  if (!have_cublas()) return;
  logprob_case(37, 64, 1000, 256, 0.7, 1);   // 4 chunks, the last one ragged
  logprob_case(16, 128, 777, 8192, 1.0, 2);  // one chunk (clamped to V)
}

VG_TEST(cuda_logprob_rejects_bad_target) {
  VG_CUDA_TEST_REQUIRE_GPU();
  if (!have_cublas()) return;
  auto g = vgtest::rng(3);
  const int64_t N = 4, H = 8, V = 50;
  auto h = vgtest::device_bf16(vgtest::randn_bf16(N * H, g)), W = vgtest::device_bf16(vgtest::randn_bf16(V * H, g));
  auto t = to_device(std::vector<int32_t>{1, 2, 50, 3});
  DeviceBuffer<float> lp(N), lse(N);
  VG_EXPECT_THROWS(logprob_forward(h.get(), W.get(), t.get(), lp.get(), nullptr, lse.get(), N, H, V, 1.0, 16, 0),
                   "targets[2] = 50");
}

VG_TEST(cuda_logprob_rejects_bad_arguments) {
  VG_EXPECT_THROWS(logprob_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 8, 10, 0.0, 16, 0),
                   "temperature");
  VG_EXPECT_THROWS(logprob_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 8, 10, 1.0, 0, 0), "chunk");
}
#endif
