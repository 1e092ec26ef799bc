// Philox4x32-10 for host and device: the same function as native/core/rng.h (which uses std::array and cannot
// run on the GPU), so the GPU sampler draws exactly the CPU sampler's uniforms. Checked against
// vg::sampling_uniform on the host in native/tests/test_cuda_sampling.cpp (a test that runs without a GPU).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define VG_HD __host__ __device__ __forceinline__
#else
#define VG_HD inline
#endif

namespace vg {
namespace cuda {

struct Philox4 {
  uint32_t v[4];
};

VG_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += W0;
      k1 += W1;
    }
    const uint64_t p0 = static_cast<uint64_t>(M0) * c.v[0], p1 = static_cast<uint64_t>(M1) * c.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// The sampler's uniform in [0, 1) for (seed, sequence id, position): counter (position, sequence, 0, 0), key
// (low, high 32 bits of seed), 53 bits from output words 0 (high) and 1 (low).
VG_HD double sampling_uniform(uint64_t seed, uint32_t sequence_id, uint32_t position) {
  const Philox4 r = philox4x32_10(Philox4{{position, sequence_id, 0u, 0u}}, static_cast<uint32_t>(seed),
                                  static_cast<uint32_t>(seed >> 32));
  const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32 | r.v[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace cuda
}  // namespace vg
