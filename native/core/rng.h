// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel Random Numbers: As Easy
// as 1, 2, 3", SC11), the generator cuRAND and PyTorch's CUDA RNG use.
//
// A draw is a pure function of a 64-bit key and a 128-bit counter: there is no state to advance, so the
// same (key, counter) gives the same numbers on any thread, in any order and on any batch layout. The
// sampler keys it with the user's seed and uses (position, sequence id) as the counter, which is what makes
// rollouts independent of batch composition and thread count.
//
// Round function (10 rounds, key bumped by the Weyl constants between rounds):
//   (hi0, lo0) = mulhilo32(0xD2511F53, c0); (hi1, lo1) = mulhilo32(0xCD9E8D57, c2)
//   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);  k0 += 0x9E3779B9; k1 += 0xBB67AE85
// Checked against the Random123 known-answer vectors in native/tests/test_sampling.cpp.
#pragma once
#include <array>
#include <cstdint>

namespace vg {

using Philox4x32Counter = std::array<uint32_t, 4>;
using Philox4x32Key = std::array<uint32_t, 2>;

// One Philox4x32-10 block: 4 independent 32-bit outputs for (counter, key).
inline Philox4x32Counter philox4x32_10(Philox4x32Counter c, Philox4x32Key k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += W0;
      k[1] += W1;
    }
    const uint64_t p0 = static_cast<uint64_t>(M0) * c[0], p1 = static_cast<uint64_t>(M1) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

// The key for a 64-bit seed: low 32 bits first, high 32 bits second.
inline Philox4x32Key philox_key(uint64_t seed) {
  return {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
}

// A double uniform in [0, 1) with 53 random bits, from the first two output words (w0 high, w1 low).
inline double uniform53(const Philox4x32Counter& r) {
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 32 | r[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

// The sampler's draw for one decoding step: counter (position, sequence id, 0, 0) under key(seed).
// Counter words 2 and 3 stay zero, so other consumers of the same seed can use them as a stream id.
inline double sampling_uniform(uint64_t seed, uint32_t sequence_id, uint32_t position) {
  return uniform53(philox4x32_10({position, sequence_id, 0u, 0u}, philox_key(seed)));
}

}  // namespace vg
