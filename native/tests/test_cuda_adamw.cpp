// GPU AdamW and gradient clipping against the CPU kernels. AdamW does the same double arithmetic per element
// as the CPU and rounds to fp32 once, so master weights and moments agree to 1 fp32 ulp (we allow 2e-7
// relative + 1e-30 absolute: GPU sqrt/division are IEEE-correct in double like the CPU's). The global norm is a
// sum of squares in double in a different order: 1e-12 relative.
#if VG_HAVE_CUDA
#include "cpu/adamw.h"
#include "cuda/adamw.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

VG_TEST(cuda_adamw_clip_then_step_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  auto g = vgtest::rng(1);
  const int64_t n = 3 * (1 << 15) + 1234;  // several norm blocks plus a ragged tail
  auto p = vgtest::randn<float>(n, g), grads = vgtest::randn<float>(n, g, 0.01);
  auto m = vgtest::randn<float>(n, g, 1e-3);
  auto v = vgtest::randu<float>(n, g, 0.0, 1e-4);
  vg::AdamWConfig cfg;
  cfg.lr = 3e-4, cfg.weight_decay = 0.1, cfg.step = 7;
  const double max_norm = 0.5;  // the random gradients have norm ~ 0.01·sqrt(n) ≈ 3.2: clipped

  // CPU: clip in place, then step.
  auto pc = p, gc = grads, mc = m, vc = v;
  float* bufs[1] = {gc.data()};
  const int64_t lens[1] = {n};
  auto cpu_clip = vg::clip_grad_norm<float>(bufs, lens, 1, max_norm);
  vg::adamw_step<float>(pc.data(), gc.data(), mc.data(), vc.data(), n, cfg);

  // GPU path 1: clip_grad_norm (scales in place) then adamw_step.
  auto dp = to_device(p), dg = to_device(grads), dm = to_device(m), dv = to_device(v);
  DeviceBuffer<bf16> model(n);
  model.fill_bytes(0xFF);
  auto gpu_clip = clip_grad_norm(dg.get(), n, max_norm, 0);
  VG_EXPECT(std::fabs(gpu_clip.total_norm - cpu_clip.total_norm) <= 1e-12 * cpu_clip.total_norm, gpu_clip.total_norm,
            " vs ", cpu_clip.total_norm);
  VG_EXPECT(std::fabs(gpu_clip.scale - cpu_clip.scale) <= 1e-12, gpu_clip.scale, " vs ", cpu_clip.scale);
  VG_EXPECT(cpu_clip.scale < 1.0, "the test must exercise clipping");
  adamw_step(dp.get(), dg.get(), dm.get(), dv.get(), model.get(), n, cfg, nullptr, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto p1 = dp.to_host(), m1 = dm.to_host(), v1 = dv.to_host();
  VG_EXPECT_ALLCLOSE(p1.data(), pc.data(), static_cast<size_t>(n), 1e-30, 2e-7);
  VG_EXPECT_ALLCLOSE(m1.data(), mc.data(), static_cast<size_t>(n), 1e-30, 2e-7);
  VG_EXPECT_ALLCLOSE(v1.data(), vc.data(), static_cast<size_t>(n), 1e-30, 2e-7);
  auto mv = vgtest::host_float(model);
  auto p1_bf16 = round_to_bf16(p1);
  VG_EXPECT(mv == p1_bf16, "bf16 model copy is not the rounded master weights");

  // GPU path 2: device-side scale fed straight into the step (no in-place scaling, no host sync): same bits.
  auto dp2 = to_device(p), dg2 = to_device(grads), dm2 = to_device(m), dv2 = to_device(v);
  DeviceBuffer<double> stats(2);
  grad_norm_clip_scale(dg2.get(), n, max_norm, stats.get(), stats.get() + 1, 0);
  adamw_step(dp2.get(), dg2.get(), dm2.get(), dv2.get(), nullptr, n, cfg, stats.get() + 1, 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  VG_EXPECT(dp2.to_host() == p1 && dm2.to_host() == m1 && dv2.to_host() == v1, "fused scale differs from clip+step");
  VG_EXPECT(dg2.to_host() == grads, "grad_norm_clip_scale must not modify the gradients");
}

VG_TEST(cuda_adamw_norm_edge_cases) {
  VG_CUDA_TEST_REQUIRE_GPU();
  auto g = vgtest::rng(2);
  auto grads = vgtest::randn<float>(1000, g);
  auto dg = to_device(grads);
  // max_norm <= 0 or +inf: measure only.
  auto r = clip_grad_norm(dg.get(), 1000, 0.0, 0);
  VG_EXPECT(r.scale == 1.0);
  auto r2 = clip_grad_norm(dg.get(), 1000, INFINITY, 0);
  VG_EXPECT(r2.scale == 1.0 && r2.total_norm == r.total_norm);
  VG_EXPECT(dg.to_host() == grads, "measure-only must not modify the gradients");
  // A NaN gradient: reported, buffers untouched.
  grads[500] = NAN;
  auto dn = to_device(grads);
  auto r3 = clip_grad_norm(dn.get(), 1000, 1.0, 0);
  VG_EXPECT(std::isnan(r3.total_norm) && r3.scale == 1.0);
  // Empty buffer: norm 0.
  auto r4 = clip_grad_norm(nullptr, 0, 1.0, 0);
  VG_EXPECT(r4.total_norm == 0.0 && r4.scale == 1.0);
}

VG_TEST(cuda_adamw_rejects_bad_config) {
  vg::AdamWConfig cfg;
  cfg.step = 0;
  VG_EXPECT_THROWS(adamw_step(nullptr, nullptr, nullptr, nullptr, nullptr, 10, cfg, nullptr, 0), "step must be >= 1");
  cfg.step = 1;
  cfg.beta2 = 1.0;
  VG_EXPECT_THROWS(adamw_step(nullptr, nullptr, nullptr, nullptr, nullptr, 10, cfg, nullptr, 0), "beta2");
  VG_EXPECT_THROWS(grad_norm_clip_scale(nullptr, 10, NAN, nullptr, nullptr, 0), "NaN");
}
#endif
