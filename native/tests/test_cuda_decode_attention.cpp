// GPU paged decode attention (and the paged KV store) against the CPU decode_attention on contiguous caches built
// from the same bf16 values. Scores, softmax and the output sums are fp32 on the GPU and the output is rounded to
// bf16 once: relative L2 within 8e-3, elementwise within 2e-2 (+1e-2 absolute).
#if VG_HAVE_CUDA
#include <algorithm>
#include <numeric>

#include "cpu/decode_attention.h"
#include "cuda/decode_attention.h"
#include "test_cuda_util.h"

using namespace vg::cuda;

namespace {

void decode_case(int64_t D, uint64_t salt) {
  auto g = vgtest::rng(salt);
  PagedKvDims dims;
  dims.batch = 5, dims.heads = 8, dims.kv_heads = 2, dims.head_dim = D, dims.page_size = 16, dims.num_pages = 64;
  dims.scale = 1.0 / std::sqrt(static_cast<double>(D));
  const std::vector<int32_t> lens = {1, 16, 17, 150, 63};
  dims.max_pages = 10;  // ceil(150 / 16)
  const int64_t per = dims.kv_heads * D, slot = per;  // elements per cached position
  // Pages handed out from a shuffled pool; the rest of the pool holds unrelated random values.
  std::vector<int32_t> pool(static_cast<size_t>(dims.num_pages));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), g);
  std::vector<int32_t> table(static_cast<size_t>(dims.batch * dims.max_pages), -1);
  size_t next = 0;
  for (int64_t b = 0; b < dims.batch; ++b)
    for (int64_t p = 0; p < (lens[b] + dims.page_size - 1) / dims.page_size; ++p) table[b * dims.max_pages + p] = pool[next++];
  auto k_pages = vgtest::randn_bf16(static_cast<size_t>(dims.num_pages * dims.page_size * slot), g);
  auto v_pages = vgtest::randn_bf16(k_pages.size(), g);
  auto q = vgtest::randn_bf16(static_cast<size_t>(dims.batch * dims.heads * D), g);
  // The last position of every sequence comes through paged_kv_store instead (its page slot holds garbage first).
  auto k_new = vgtest::randn_bf16(static_cast<size_t>(dims.batch * per), g);
  auto v_new = vgtest::randn_bf16(k_new.size(), g);
  std::vector<int32_t> positions(dims.batch);
  for (int64_t b = 0; b < dims.batch; ++b) positions[b] = lens[b] - 1;

  // CPU reference: contiguous caches (keys transposed [kv_heads, D, len], values [kv_heads, len, D]) in double.
  std::vector<std::vector<double>> keys(dims.batch), values(dims.batch);
  std::vector<vg::DecodeKv<double>> kv(dims.batch);
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t L = lens[b];
    keys[b].assign(static_cast<size_t>(per * L), 0.0);
    values[b].assign(static_cast<size_t>(per * L), 0.0);
    for (int64_t j = 0; j < L; ++j) {
      const int64_t page = table[b * dims.max_pages + j / dims.page_size];
      const float* kr = j == L - 1 ? &k_new[b * per] : &k_pages[(page * dims.page_size + j % dims.page_size) * slot];
      const float* vr = j == L - 1 ? &v_new[b * per] : &v_pages[(page * dims.page_size + j % dims.page_size) * slot];
      for (int64_t kh = 0; kh < dims.kv_heads; ++kh)
        for (int64_t d = 0; d < D; ++d) {
          keys[b][(kh * D + d) * L + j] = kr[kh * D + d];
          values[b][(kh * L + j) * D + d] = vr[kh * D + d];
        }
    }
    kv[b].keys = keys[b].data(), kv[b].values = values[b].data(), kv[b].len = L, kv[b].capacity = L;
  }
  vg::DecodeAttentionDims cd;
  cd.batch = dims.batch, cd.heads = dims.heads, cd.kv_heads = dims.kv_heads, cd.head_dim = D, cd.scale = dims.scale;
  auto qd = vgtest::to_double(q);
  std::vector<double> ref(q.size());
  vg::decode_attention<double>(cd, qd.data(), kv.data(), ref.data());

  auto dk = vgtest::device_bf16(k_pages), dv = vgtest::device_bf16(v_pages), dq = vgtest::device_bf16(q);
  auto dkn = vgtest::device_bf16(k_new), dvn = vgtest::device_bf16(v_new);
  auto dt = to_device(table);
  auto dlen = to_device(std::vector<int32_t>(lens.begin(), lens.end()));
  auto dpos = to_device(positions);
  DeviceBuffer<bf16> dout(q.size());
  dout.fill_bytes(0xFF);
  paged_kv_store(dims, dkn.get(), dvn.get(), dt.get(), dpos.get(), dk.get(), dv.get(), 0);
  paged_decode_attention(dims, dq.get(), dk.get(), dv.get(), dt.get(), dlen.get(), dout.get(), 0);
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  auto out = vgtest::host_float(dout);
  VG_EXPECT_REL_L2(out.data(), ref.data(), out.size(), 8e-3);
  VG_EXPECT_ALLCLOSE(out.data(), ref.data(), out.size(), 1e-2, 2e-2);
}

}  // namespace

VG_TEST(cuda_decode_attention_paged_matches_cpu) {
  VG_CUDA_TEST_REQUIRE_GPU();
  decode_case(128, 1);
  decode_case(80, 2);
  decode_case(64, 3);
}

VG_TEST(cuda_decode_attention_rejects_bad_dims) {
  PagedKvDims dims;
  dims.batch = 1, dims.heads = 6, dims.kv_heads = 4, dims.head_dim = 64, dims.page_size = 16, dims.num_pages = 4;
  dims.max_pages = 1, dims.scale = 0.125;
  VG_EXPECT_THROWS(paged_decode_attention(dims, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0),
                   "multiple of kv_heads");
  dims.kv_heads = 2, dims.head_dim = 300;
  VG_EXPECT_THROWS(paged_decode_attention(dims, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0), "head_dim");
}
#endif
