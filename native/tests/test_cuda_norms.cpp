// GPU RMSNorm / LayerNorm against the CPU kernels (double precision on the same bf16-rounded inputs).
// Tolerances: bf16 outputs carry a relative rounding error of at most 2^-9 each, so relative L2 errors are
// ~2e-3; we allow 8e-3. fp32 statistics and gradients: 1e-4 relative.
#if VG_HAVE_CUDA
#include "cpu/norms.h"
#include "cuda/norms.h"
#include "test_cuda_util.h"

using namespace vg::cuda;
using vgtest::to_double;

namespace {

void run_norm_case(bool layer, int64_t rows, int64_t hidden, uint64_t salt) {
  auto g = vgtest::rng(salt);
  const size_t n = static_cast<size_t>(rows * hidden);
  auto x = vgtest::randn_bf16(n, g, 1.5, layer ? 0.7 : 0.0);
  auto w = vgtest::randn_bf16(hidden, g, 0.3, 1.0);
  auto b = vgtest::randn_bf16(hidden, g, 0.5);
  auto dy = vgtest::randn_bf16(n, g, 1.0);
  auto dw0 = vgtest::randn<float>(hidden, g), db0 = vgtest::randn<float>(hidden, g);
  const double eps = 1e-6;

  // CPU reference in double.
  auto xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  std::vector<double> y_ref(n), mean_ref(rows), rstd_ref(rows), dx_ref(n), dw_ref = to_double(dw0), db_ref = to_double(db0);
  if (layer) {
    vg::layer_norm_forward(xd.data(), wd.data(), bd.data(), y_ref.data(), mean_ref.data(), rstd_ref.data(), rows,
                           hidden, eps);
    vg::layer_norm_backward(xd.data(), wd.data(), mean_ref.data(), rstd_ref.data(), dyd.data(), dx_ref.data(),
                            dw_ref.data(), db_ref.data(), rows, hidden);
  } else {
    vg::rms_norm_forward(xd.data(), wd.data(), y_ref.data(), rstd_ref.data(), rows, hidden, eps);
    vg::rms_norm_backward(xd.data(), wd.data(), rstd_ref.data(), dyd.data(), dx_ref.data(), dw_ref.data(), rows,
                          hidden);
  }

  auto dx_ = vgtest::device_bf16(x), dw_ = vgtest::device_bf16(w), db_ = vgtest::device_bf16(b);
  auto ddy = vgtest::device_bf16(dy);
  DeviceBuffer<bf16> dyo(n), ddx(n);
  DeviceBuffer<float> dmean(rows), drstd(rows);
  auto ddw = to_device(dw0), ddb = to_device(db0);
  dyo.fill_bytes(0xFF);  // NaN poison: every element must be written
  ddx.fill_bytes(0xFF);
  drstd.fill_bytes(0xFF);
  dmean.fill_bytes(0xFF);
  if (layer) {
    layer_norm_forward(dx_.get(), dw_.get(), db_.get(), dyo.get(), dmean.get(), drstd.get(), rows, hidden, eps, 0);
    layer_norm_backward(dx_.get(), dw_.get(), dmean.get(), drstd.get(), ddy.get(), ddx.get(), ddw.get(), ddb.get(),
                        rows, hidden, 0);
  } else {
    rms_norm_forward(dx_.get(), dw_.get(), dyo.get(), drstd.get(), rows, hidden, eps, 0);
    rms_norm_backward(dx_.get(), dw_.get(), drstd.get(), ddy.get(), ddx.get(), ddw.get(), rows, hidden, 0);
  }
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto y = vgtest::host_float(dyo), dx = vgtest::host_float(ddx);
  auto rstd = drstd.to_host(), dwv = ddw.to_host();
  VG_EXPECT_REL_L2(y.data(), y_ref.data(), n, 8e-3);
  VG_EXPECT_ALLCLOSE(y.data(), y_ref.data(), n, 2e-2, 1e-2);
  VG_EXPECT_ALLCLOSE(rstd.data(), rstd_ref.data(), static_cast<size_t>(rows), 0.0, 1e-4);
  VG_EXPECT_REL_L2(dx.data(), dx_ref.data(), n, 8e-3);
  VG_EXPECT_REL_L2(dwv.data(), dw_ref.data(), static_cast<size_t>(hidden), 1e-4);
  if (layer) {
    auto mean = dmean.to_host(), dbv = ddb.to_host();
    VG_EXPECT_ALLCLOSE(mean.data(), mean_ref.data(), static_cast<size_t>(rows), 1e-5, 1e-4);
    VG_EXPECT_REL_L2(dbv.data(), db_ref.data(), static_cast<size_t>(hidden), 1e-4);
  }

  // dx may alias dy (in place), and the parameter gradients are bitwise reproducible.
  auto ddw2 = to_device(dw0), ddb2 = to_device(db0);
  if (layer)
    layer_norm_backward(dx_.get(), dw_.get(), dmean.get(), drstd.get(), ddy.get(), ddy.get(), ddw2.get(), ddb2.get(),
                        rows, hidden, 0);
  else
    rms_norm_backward(dx_.get(), dw_.get(), drstd.get(), ddy.get(), ddy.get(), ddw2.get(), rows, hidden, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto dx_inplace = vgtest::host_float(ddy), dw2 = ddw2.to_host();
  VG_EXPECT(dx_inplace == dx, "in-place dx differs from out-of-place dx");
  VG_EXPECT(dw2 == dwv, "dw is not reproducible run to run");
}

}  // namespace

VG_TEST(cuda_norms_rms_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  run_norm_case(false, 37, 1000, 1);
  run_norm_case(false, 130, 2048, 2);  // more than one 64-row chunk for dw
}

VG_TEST(cuda_norms_layer_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  run_norm_case(true, 37, 1280, 3);
  run_norm_case(true, 200, 80, 4);
}

VG_TEST(cuda_norms_rejects_bad_shapes) {
  // Argument checks run before any CUDA call, so this test also runs without a GPU.
  VG_EXPECT_THROWS(rms_norm_forward(nullptr, nullptr, nullptr, nullptr, 4, 0, 1e-6, 0), "hidden=0");
  VG_EXPECT_THROWS(layer_norm_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, -1, 8, 1e-6, 0), "rows=-1");
  VG_EXPECT_THROWS(rms_norm_forward(nullptr, nullptr, nullptr, nullptr, 4, 8, -1.0, 0), "eps");
  VG_EXPECT_THROWS(rms_norm_forward(nullptr, nullptr, nullptr, nullptr, 4, 8, 1e-6, 0), "must not be null");
}
#endif
