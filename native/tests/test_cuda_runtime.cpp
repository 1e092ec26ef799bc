// Host-side tests of the CUDA runtime helpers and the cuBLAS loader (run on any machine with a CUDA build),
// plus the bf16 GEMM against the CPU GEMM when a GPU and cuBLAS are present.
#if VG_HAVE_CUDA
#include <cstring>

#include "cpu/gemm.h"
#include "cuda/cublas_loader.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

VG_TEST(cuda_runtime_available_gives_a_reason) {
  const auto& a = cuda_available();
  VG_EXPECT(!a.reason.empty(), "cuda_available() must always say why");
  VG_EXPECT(a.ok == (a.reason == "ok"), "ok=", a.ok, " but reason '", a.reason, "'");
  if (!a.ok) std::printf("     (GPU path unavailable here: %s)\n", a.reason.c_str());
}

VG_TEST(cuda_runtime_bf16_rounding) {
  // Round to nearest even at the 16-bit boundary, exact for representable values, NaN stays NaN.
  VG_EXPECT(to_float(to_bf16(1.0f)) == 1.0f);
  VG_EXPECT(to_float(to_bf16(-3.5f)) == -3.5f);
  const float halfway_even = 1.0f + 0x1.0p-8f;  // between 1 and 1 + 2^-7: ties to the even mantissa (1.0)
  VG_EXPECT(to_float(to_bf16(halfway_even)) == 1.0f, to_float(to_bf16(halfway_even)));
  const float halfway_odd = 1.0f + 3 * 0x1.0p-8f;  // between 1 + 2^-7 and 1 + 2^-6: ties to 1 + 2^-6
  VG_EXPECT(to_float(to_bf16(halfway_odd)) == 1.0f + 0x1.0p-6f, to_float(to_bf16(halfway_odd)));
  VG_EXPECT(to_float(to_bf16(1.0f + 0x1.8p-8f)) == 1.0f + 0x1.0p-7f);  // above halfway rounds up
  VG_EXPECT(std::isnan(to_float(to_bf16(NAN))));
  VG_EXPECT(std::isinf(to_float(to_bf16(INFINITY))));
  auto g = vgtest::rng(7);
  auto v = vgtest::randn<float>(1000, g, 10.0);
  auto r = round_to_bf16(v);
  for (size_t i = 0; i < v.size(); ++i) {
    VG_EXPECT(std::fabs(r[i] - v[i]) <= std::fabs(v[i]) * 0x1.0p-8f, v[i], " -> ", r[i]);
    uint32_t bits;
    std::memcpy(&bits, &r[i], 4);
    VG_EXPECT((bits & 0xFFFFu) == 0, "low 16 bits not cleared for ", v[i]);
  }
}

VG_TEST(cuda_runtime_cublas_loader_reports_missing_library) {
  // A library that does not exist: the message names it and says how to fix it.
  const std::string err = cublas_probe_candidates({"libcublas-does-not-exist.so.99", "/nonexistent/libcublas.so.13"});
  VG_EXPECT(err.find("libcublas-does-not-exist.so.99") != std::string::npos, err);
  VG_EXPECT(err.find("/nonexistent/libcublas.so.13") != std::string::npos, err);
  VG_EXPECT(err.find("VG_CUBLAS_LIB") != std::string::npos, err);
  // A library that loads but lacks the entry points (the C library): named as such.
  const std::string err2 = cublas_probe_candidates({"libm.so.6"});
  VG_EXPECT(err2.find("entry point") != std::string::npos, err2);
  // The process-wide loader either works or says which names it tried.
  std::string why;
  if (cublas_available(&why)) {
    VG_EXPECT(!cublas_loaded_path().empty());
    std::printf("     cuBLAS loaded from %s\n", cublas_loaded_path().c_str());
  } else {
    VG_EXPECT(why.find("libcublas.so.13") != std::string::npos && why.find("libcublas.so.12") != std::string::npos, why);
    std::printf("     (cuBLAS not loadable here, as expected on a machine without it)\n");
  }
}

VG_TEST(cuda_runtime_gemm_rejects_bad_shapes) {
  VG_EXPECT_THROWS(gemm_bf16(false, false, 4, 4, 4, 1.f, nullptr, 3, nullptr, 4, 0.f, nullptr, CUDA_R_32F, 4, 0), "lda=3");
  VG_EXPECT_THROWS(gemm_bf16(false, true, 4, 5, 6, 1.f, nullptr, 6, nullptr, 5, 0.f, nullptr, CUDA_R_32F, 5, 0), "ldb=5");
  VG_EXPECT_THROWS(gemm_bf16(false, false, 4, 4, 4, 1.f, nullptr, 4, nullptr, 4, 0.f, nullptr, CUDA_R_64F, 4, 0), "bf16 or fp32");
}

namespace {
// C = alpha op(A) op(B) + beta C on the GPU (bf16 operands) against the CPU double GEMM on the same values.
void gemm_case(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, bool f32_out, uint64_t salt) {
  auto g = vgtest::rng(salt);
  auto A = vgtest::randn_bf16(static_cast<size_t>(M * K), g);
  auto B = vgtest::randn_bf16(static_cast<size_t>(K * N), g);
  auto C0 = vgtest::randn_bf16(static_cast<size_t>(M * N), g);
  auto ref = vgtest::to_double(C0);
  auto Ad = vgtest::to_double(A), Bd = vgtest::to_double(B);
  vg::gemm<double>(ta, tb, M, N, K, alpha, Ad.data(), ta ? M : K, Bd.data(), tb ? K : N, beta, ref.data(), N);
  auto dA = vgtest::device_bf16(A), dB = vgtest::device_bf16(B);
  std::vector<float> out;
  if (f32_out) {
    auto dC = to_device(C0);
    gemm_bf16(ta, tb, M, N, K, alpha, dA.get(), dB.get(), beta, dC.get(), 0);
    VG_CUDA_CHECK(cudaDeviceSynchronize());
    out = dC.to_host();
  } else {
    auto dC = vgtest::device_bf16(C0);
    gemm_bf16(ta, tb, M, N, K, alpha, dA.get(), dB.get(), beta, dC.get(), 0);
    VG_CUDA_CHECK(cudaDeviceSynchronize());
    out = vgtest::host_float(dC);
  }
  // fp32 accumulation of exact bf16 products: ~1e-6 relative; a bf16 output adds 2^-9 rounding.
  VG_EXPECT_REL_L2(out.data(), ref.data(), out.size(), f32_out ? 1e-5 : 5e-3);
}
}  // namespace

VG_TEST(cuda_runtime_gemm_bf16_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  std::string why;
  if (!cublas_available(&why)) {
    std::printf("     skipped: cuBLAS not loadable (%s)\n", why.c_str());
    return;
  }
  int salt = 0;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      gemm_case(ta, tb, 37, 53, 129, 1.0f, 0.0f, true, ++salt);
      gemm_case(ta, tb, 64, 17, 40, 0.5f, 1.0f, false, ++salt);
    }
  // Strided batched: 3 products of [M, K] x [K, N]ᵀ.
  auto g = vgtest::rng(99);
  const int64_t M = 9, N = 11, K = 20, batch = 3;
  auto A = vgtest::randn_bf16(static_cast<size_t>(batch * M * K), g), B = vgtest::randn_bf16(static_cast<size_t>(batch * N * K), g);
  std::vector<double> ref(static_cast<size_t>(batch * M * N), 0.0);
  auto Ad = vgtest::to_double(A), Bd = vgtest::to_double(B);
  for (int64_t b = 0; b < batch; ++b)
    vg::gemm<double>(false, true, M, N, K, 1.0, Ad.data() + b * M * K, K, Bd.data() + b * N * K, K, 0.0,
                     ref.data() + b * M * N, N);
  auto dA = vgtest::device_bf16(A), dB = vgtest::device_bf16(B);
  DeviceBuffer<float> dC(ref.size());
  dC.fill_bytes(0xFF);
  gemm_bf16_strided_batched(false, true, M, N, K, 1.f, dA.get(), K, M * K, dB.get(), K, N * K, 0.f, dC.get(),
                            CUDA_R_32F, N, M * N, batch, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto out = dC.to_host();
  VG_EXPECT_REL_L2(out.data(), ref.data(), out.size(), 1e-5);
}
#endif
