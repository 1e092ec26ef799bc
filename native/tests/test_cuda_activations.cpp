// GPU activations against the CPU kernels (double precision on the same bf16-rounded inputs). Each bf16
// output has a relative rounding error <= 2^-9, so we allow 8e-3 relative L2 and 1e-2 elementwise (plus a small
// absolute floor for outputs near zero).
#if VG_HAVE_CUDA
#include "cpu/activations.h"
#include "cuda/activations.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

namespace {
constexpr double kRel = 8e-3, kRtol = 1e-2, kAtol = 1e-3;

std::vector<float> inputs(size_t n, uint64_t salt) {
  auto g = vgtest::rng(salt);
  auto x = vgtest::randn_bf16(n, g, 3.0);
  // A few saturating values: must stay finite and match the limits.
  if (n > 4) x[0] = 80.f, x[1] = -80.f, x[2] = 3e4f, x[3] = -3e4f;
  return vg::cuda::round_to_bf16(x);
}

void check_unary(bool quick, vg::GeluApprox approx) {
  const int64_t n = 10007;
  auto x = inputs(n, quick ? 11 : 12 + static_cast<int>(approx));
  auto dy = inputs(n, 99);
  auto xd = vgtest::to_double(x), dyd = vgtest::to_double(dy);
  std::vector<double> y_ref(n), dx_ref(n);
  if (quick) {
    vg::quick_gelu_forward(xd.data(), y_ref.data(), n);
    vg::quick_gelu_backward(xd.data(), dyd.data(), dx_ref.data(), n);
  } else {
    vg::gelu_forward(xd.data(), y_ref.data(), n, approx);
    vg::gelu_backward(xd.data(), dyd.data(), dx_ref.data(), n, approx);
  }
  auto dx_ = vgtest::device_bf16(x), ddy = vgtest::device_bf16(dy);
  DeviceBuffer<bf16> dyo(n), ddx(n);
  dyo.fill_bytes(0xFF);
  ddx.fill_bytes(0xFF);
  if (quick) {
    quick_gelu_forward(dx_.get(), dyo.get(), n, 0);
    quick_gelu_backward(dx_.get(), ddy.get(), ddx.get(), n, 0);
  } else {
    gelu_forward(dx_.get(), dyo.get(), n, approx, 0);
    gelu_backward(dx_.get(), ddy.get(), ddx.get(), n, approx, 0);
  }
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto y = vgtest::host_float(dyo), dx = vgtest::host_float(ddx);
  VG_EXPECT_REL_L2(y.data(), y_ref.data(), n, kRel);
  VG_EXPECT_ALLCLOSE(y.data(), y_ref.data(), n, kAtol, kRtol);
  VG_EXPECT_REL_L2(dx.data(), dx_ref.data(), n, kRel);
  VG_EXPECT_ALLCLOSE(dx.data(), dx_ref.data(), n, kAtol, kRtol);
  // In place: y may alias x.
  if (quick) quick_gelu_forward(dx_.get(), dx_.get(), n, 0);
  else gelu_forward(dx_.get(), dx_.get(), n, approx, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  VG_EXPECT(vgtest::host_float(dx_) == y, "in-place forward differs");
}
}  // namespace

VG_TEST(cuda_activations_gelu_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  check_unary(false, vg::GeluApprox::kNone);
  check_unary(false, vg::GeluApprox::kTanh);
}

VG_TEST(cuda_activations_quick_gelu_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  check_unary(true, vg::GeluApprox::kNone);
}

VG_TEST(cuda_activations_swiglu_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  const int64_t rows = 13, inter = 777, n = rows * inter;
  auto gu = inputs(static_cast<size_t>(2 * n), 21);
  auto dout = inputs(static_cast<size_t>(n), 22);
  auto gud = vgtest::to_double(gu), doutd = vgtest::to_double(dout);
  std::vector<double> out_ref(n), dgu_ref(2 * n);
  vg::swiglu_fused_forward(gud.data(), out_ref.data(), rows, inter);
  vg::swiglu_fused_backward(gud.data(), doutd.data(), dgu_ref.data(), rows, inter);
  auto dgu = vgtest::device_bf16(gu), ddout = vgtest::device_bf16(dout);
  DeviceBuffer<bf16> dout_gpu(n), ddgu(2 * n);
  dout_gpu.fill_bytes(0xFF);
  ddgu.fill_bytes(0xFF);
  swiglu_fused_forward(dgu.get(), dout_gpu.get(), rows, inter, 0);
  swiglu_fused_backward(dgu.get(), ddout.get(), ddgu.get(), rows, inter, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto out = vgtest::host_float(dout_gpu), dgrad = vgtest::host_float(ddgu);
  VG_EXPECT_REL_L2(out.data(), out_ref.data(), n, kRel);
  VG_EXPECT_ALLCLOSE(out.data(), out_ref.data(), n, kAtol, kRtol);
  VG_EXPECT_REL_L2(dgrad.data(), dgu_ref.data(), 2 * n, kRel);
  VG_EXPECT_ALLCLOSE(dgrad.data(), dgu_ref.data(), 2 * n, kAtol, kRtol);

  // Separate gate / up arrays: the first row's halves, checked against the CPU separate-array kernels.
  std::vector<float> gate(gu.begin(), gu.begin() + inter), up(gu.begin() + inter, gu.begin() + 2 * inter);
  std::vector<float> d1(dout.begin(), dout.begin() + inter);
  auto gd = vgtest::to_double(gate), ud = vgtest::to_double(up), d1d = vgtest::to_double(d1);
  std::vector<double> o_ref(inter), dg_ref(inter), du_ref(inter);
  vg::swiglu_forward(gd.data(), ud.data(), o_ref.data(), inter);
  vg::swiglu_backward(gd.data(), ud.data(), d1d.data(), dg_ref.data(), du_ref.data(), inter);
  auto dg = vgtest::device_bf16(gate), du = vgtest::device_bf16(up), dd1 = vgtest::device_bf16(d1);
  DeviceBuffer<bf16> o(inter), dgo(inter), duo(inter);
  swiglu_forward(dg.get(), du.get(), o.get(), inter, 0);
  swiglu_backward(dg.get(), du.get(), dd1.get(), dgo.get(), duo.get(), inter, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto ov = vgtest::host_float(o), dgv = vgtest::host_float(dgo), duv = vgtest::host_float(duo);
  VG_EXPECT_ALLCLOSE(ov.data(), o_ref.data(), static_cast<size_t>(inter), kAtol, kRtol);
  VG_EXPECT_ALLCLOSE(dgv.data(), dg_ref.data(), static_cast<size_t>(inter), kAtol, kRtol);
  VG_EXPECT_ALLCLOSE(duv.data(), du_ref.data(), static_cast<size_t>(inter), kAtol, kRtol);
}

VG_TEST(cuda_activations_reject_bad_lengths) {
  VG_EXPECT_THROWS(gelu_forward(nullptr, nullptr, -5, vg::GeluApprox::kNone, 0), "-5");
  VG_EXPECT_THROWS(swiglu_fused_forward(nullptr, nullptr, 3, 0, 0), "inter 0");
}
#endif
