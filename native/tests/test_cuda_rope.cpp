// GPU rotary tables and rotation against the CPU kernels. Tables: fp32 on both sides from the same fp32
// frequencies and angles; cosf/sinf differ from the host libm by a few ulps, so 2e-6 absolute (angles up to
// ~4e3 rad lose no more than that in fp32 argument reduction). Rotation: bf16 outputs, 8e-3 relative L2 and
// 1e-2 elementwise (+1e-2 absolute for values that cancel).
#if VG_HAVE_CUDA
#include "cpu/rope.h"
#include "cuda/rope.h"
#include "test_cuda_util.h"

using namespace vg::cuda;
using vg::RopeKind;

namespace {

void rope_case(RopeKind kind, int64_t n, int64_t heads, int64_t head_dim, uint64_t salt) {
  auto g = vgtest::rng(salt);
  std::uniform_int_distribution<int32_t> pos_dist(0, 4000);
  const int64_t npos = kind == RopeKind::k1D ? n : (kind == RopeKind::kMRope ? 3 * n : 2 * n);
  std::vector<int32_t> pos(npos);
  for (auto& p : pos) p = pos_dist(g);
  const int64_t half = head_dim / 2;
  const int64_t section[3] = {half / 4, (half - half / 4) / 2, half - half / 4 - (half - half / 4) / 2};
  const double theta = kind == RopeKind::kVision2D ? 10000.0 : 1000000.0;
  std::vector<float> cos_ref(n * half), sin_ref(n * half);
  vg::rope_tables<float>(kind, pos.data(), n, head_dim, theta, section, cos_ref.data(), sin_ref.data());

  auto dpos = to_device(pos);
  DeviceBuffer<float> dcos(n * half), dsin(n * half);
  dcos.fill_bytes(0xFF);
  dsin.fill_bytes(0xFF);
  rope_tables(kind, dpos.get(), n, head_dim, theta, section, dcos.get(), dsin.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto cosv = dcos.to_host(), sinv = dsin.to_host();
  VG_EXPECT_ALLCLOSE(cosv.data(), cos_ref.data(), cosv.size(), 2e-6, 0.0);
  VG_EXPECT_ALLCLOSE(sinv.data(), sin_ref.data(), sinv.size(), 2e-6, 0.0);

  // Rotation in a packed row: x_stride > heads*head_dim (as q inside qkv), compared with the CPU on the same
  // fp32 tables (the GPU's), in double.
  const int64_t x_stride = heads * head_dim + 2 * head_dim;
  auto x = vgtest::randn_bf16(static_cast<size_t>(n * x_stride), g);
  auto xd = vgtest::to_double(x);
  std::vector<double> cd(cosv.begin(), cosv.end()), sd(sinv.begin(), sinv.end());
  for (bool inverse : {false, true}) {
    std::vector<double> y_ref(n * heads * head_dim);
    vg::rope_apply<double>(xd.data(), x_stride, y_ref.data(), heads * head_dim, n, heads, head_dim, cd.data(),
                           sd.data(), inverse);
    auto dx = vgtest::device_bf16(x);
    DeviceBuffer<bf16> dy(n * heads * head_dim);
    dy.fill_bytes(0xFF);
    rope_apply(dx.get(), x_stride, dy.get(), heads * head_dim, n, heads, head_dim, dcos.get(), dsin.get(), inverse, 0);
    VG_CUDA_CHECK(cudaDeviceSynchronize());
    auto y = vgtest::host_float(dy);
    VG_EXPECT_REL_L2(y.data(), y_ref.data(), y.size(), 8e-3);
    VG_EXPECT_ALLCLOSE(y.data(), y_ref.data(), y.size(), 1e-2, 1e-2);
  }
  // Dense in place, then the backward undoes it (up to bf16 rounding of the intermediate).
  auto dense = vgtest::randn_bf16(static_cast<size_t>(n * heads * head_dim), g);
  auto dd = vgtest::device_bf16(dense);
  rope_apply(dd.get(), dd.get(), n, heads, head_dim, dcos.get(), dsin.get(), false, 0);
  rope_backward(dd.get(), dd.get(), n, heads, head_dim, dcos.get(), dsin.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto back = vgtest::host_float(dd);
  VG_EXPECT_REL_L2(back.data(), dense.data(), back.size(), 1e-2);
}

}  // namespace

VG_TEST(cuda_rope_1d_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  rope_case(RopeKind::k1D, 33, 4, 128, 1);
}

VG_TEST(cuda_rope_mrope_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  rope_case(RopeKind::kMRope, 29, 3, 128, 2);
  rope_case(RopeKind::kMRope, 17, 2, 64, 3);
}

VG_TEST(cuda_rope_vision2d_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  rope_case(RopeKind::kVision2D, 41, 5, 80, 4);
}

VG_TEST(cuda_rope_rejects_bad_arguments) {
  const int64_t bad_section[3] = {10, 10, 10};
  VG_EXPECT_THROWS(rope_tables(RopeKind::kMRope, nullptr, 4, 128, 1e6, bad_section, nullptr, nullptr, 0), "sum to");
  VG_EXPECT_THROWS(rope_tables(RopeKind::kVision2D, nullptr, 4, 78, 1e4, nullptr, nullptr, nullptr, 0), "divisible by 4");
  VG_EXPECT_THROWS(rope_tables(RopeKind::k1D, nullptr, 4, 1024, 1e4, nullptr, nullptr, nullptr, 0), "<= 512");
  VG_EXPECT_THROWS(rope_apply(nullptr, 10, nullptr, 256, 4, 2, 128, nullptr, nullptr, false, 0), "token strides");
}
#endif
