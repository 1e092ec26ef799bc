// GPU flash attention (mma.sync) against the CPU attention kernels in double on the same bf16-rounded inputs.
// Tolerances (bf16): the output and the gradients come out of products with P or dS rounded to bf16 (2^-9
// relative each) and are rounded to bf16 once more, so relative L2 errors are ~3e-3; we allow 1.5e-2 for out
// and 2.5e-2 for dq, dk, dv (the backward chains two such products). lse is fp32: 1e-3 absolute.
#if VG_HAVE_CUDA
#include <algorithm>

#include "cpu/attention.h"
#include "cuda/attention.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

namespace {

void attention_case(std::vector<int32_t> lens_q, std::vector<int32_t> lens_k, int64_t hq, int64_t hkv, int64_t d,
                    bool causal, uint64_t salt) {
  auto g = vgtest::rng(salt);
  vg::AttentionDims dims;
  dims.batch = static_cast<int64_t>(lens_q.size());
  std::vector<int32_t> cu_q{0}, cu_k{0};
  for (size_t b = 0; b < lens_q.size(); ++b) cu_q.push_back(cu_q.back() + lens_q[b]), cu_k.push_back(cu_k.back() + lens_k[b]);
  dims.total_q = cu_q.back();
  dims.total_k = cu_k.back();
  dims.num_heads = hq;
  dims.num_kv_heads = hkv;
  dims.head_dim = d;
  dims.causal = causal;
  dims.scale = vg::AttentionDims::default_scale(d);
  const int64_t max_q = *std::max_element(lens_q.begin(), lens_q.end());
  const int64_t max_k = *std::max_element(lens_k.begin(), lens_k.end());
  const size_t nq = static_cast<size_t>(dims.total_q * hq * d), nk = static_cast<size_t>(dims.total_k * hkv * d);
  auto q = vgtest::randn_bf16(nq, g), k = vgtest::randn_bf16(nk, g), v = vgtest::randn_bf16(nk, g);
  auto dout = vgtest::randn_bf16(nq, g);

  auto qd = vgtest::to_double(q), kd = vgtest::to_double(k), vd = vgtest::to_double(v), dod = vgtest::to_double(dout);
  std::vector<double> out_ref(nq), lse_ref(static_cast<size_t>(hq * dims.total_q));
  vg::attention_forward<double>(dims, qd.data(), kd.data(), vd.data(), cu_q.data(), cu_k.data(), out_ref.data(),
                                lse_ref.data());

  auto dq_ = vgtest::device_bf16(q), dk_ = vgtest::device_bf16(k), dv_ = vgtest::device_bf16(v);
  auto ddout = vgtest::device_bf16(dout);
  auto dcq = to_device(cu_q), dck = to_device(cu_k);
  DeviceBuffer<bf16> dout_gpu(nq), gq(nq), gk(nk), gv(nk);
  DeviceBuffer<float> dlse(static_cast<size_t>(hq * dims.total_q));
  for (auto* bptr : {&dout_gpu, &gq, &gk, &gv}) bptr->fill_bytes(0xFF);
  dlse.fill_bytes(0xFF);
  attention_forward(dims, max_q, max_k, dq_.get(), dk_.get(), dv_.get(), dcq.get(), dck.get(), dout_gpu.get(),
                    dlse.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto out = vgtest::host_float(dout_gpu);
  auto lse = dlse.to_host();
  VG_EXPECT_REL_L2(out.data(), out_ref.data(), nq, 1.5e-2);
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(lse_ref[i])) VG_EXPECT(std::isinf(lse[i]) && lse[i] < 0, "lse[", i, "] = ", lse[i], ", want -inf");
    else VG_EXPECT(std::fabs(lse[i] - lse_ref[i]) <= 1e-3, "lse[", i, "] = ", lse[i], " vs ", lse_ref[i]);
  }

  // Backward against the CPU backward fed the GPU's own (bf16) output, as the trainer would.
  std::vector<double> out_used(out.begin(), out.end()), lse_used(lse.begin(), lse.end());
  std::vector<double> dq_ref(nq), dk_ref(nk), dv_ref(nk);
  vg::attention_backward<double>(dims, qd.data(), kd.data(), vd.data(), out_used.data(), lse_used.data(), dod.data(),
                                 cu_q.data(), cu_k.data(), dq_ref.data(), dk_ref.data(), dv_ref.data());
  attention_backward(dims, max_q, max_k, dq_.get(), dk_.get(), dv_.get(), dout_gpu.get(), dlse.get(), ddout.get(),
                     dcq.get(), dck.get(), gq.get(), gk.get(), gv.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto gqv = vgtest::host_float(gq), gkv = vgtest::host_float(gk), gvv = vgtest::host_float(gv);
  VG_EXPECT_REL_L2(gqv.data(), dq_ref.data(), nq, 2.5e-2);
  VG_EXPECT_REL_L2(gkv.data(), dk_ref.data(), nk, 2.5e-2);
  VG_EXPECT_REL_L2(gvv.data(), dv_ref.data(), nk, 2.5e-2);
  // Deterministic: a second backward gives the same bits.
  DeviceBuffer<bf16> gq2(nq);
  attention_backward(dims, max_q, max_k, dq_.get(), dk_.get(), dv_.get(), dout_gpu.get(), dlse.get(), ddout.get(),
                     dcq.get(), dck.get(), gq2.get(), gk.get(), gv.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  VG_EXPECT(vgtest::host_float(gq2) == gqv, "dq is not reproducible");
}

}  // namespace

VG_TEST(cuda_attention_varlen_gqa_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  uint64_t salt = 0;
  for (int64_t d : {64, 80, 128})
    for (bool causal : {false, true}) attention_case({37, 130, 64}, {37, 130, 64}, 4, 2, d, causal, ++salt);
}

VG_TEST(cuda_attention_cross_lengths_and_empty_rows) {
  VG_CUDA_TEST_REQUIRE_GPU();
  // Lk > Lq (decode-style, bottom-right causal), Lk < Lq (causal rows that see no key: o = 0, lse = -inf), MQA.
  attention_case({5, 70, 1}, {90, 20, 1}, 3, 1, 128, true, 11);
  attention_case({5, 70, 1}, {90, 20, 1}, 3, 3, 80, false, 12);
}

VG_TEST(cuda_attention_rejects_bad_dims) {
  vg::AttentionDims dims;
  dims.batch = 1, dims.total_q = 4, dims.total_k = 4, dims.num_heads = 4, dims.num_kv_heads = 3, dims.head_dim = 64;
  dims.scale = 0.125;
  VG_EXPECT_THROWS(attention_forward(dims, 4, 4, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0),
                   "multiple of num_kv_heads");
  dims.num_kv_heads = 2, dims.head_dim = 96;
  VG_EXPECT_THROWS(attention_forward(dims, 4, 4, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0),
                   "head_dim 64, 80 and 128");
}
#endif
