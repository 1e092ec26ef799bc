// The sequential step of the sampler's radix searches (cuda/sampling.cu), for host and device: given one level's
// 256-bin histogram of the keys that share the prefix found so far, pick the bin to descend into. The kernel
// builds the histograms in parallel and calls these from one thread; native/tests/test_cuda_sampling.cpp runs the
// whole descent on the host against a sort (no GPU needed).
#pragma once
#include <cstdint>

#include "cuda/philox.h"  // VG_HD

namespace vg {
namespace cuda {

// Top-k: `count[b]` keys fall in bin b (bins in ascending key order); `krem` >= 1 keys are still to be taken from
// the largest. Returns the bin that holds the krem-th largest key and sets *above to the number of keys in higher
// bins (so krem − above are still to be taken inside the chosen bin).
VG_HD int topk_choose_bin(const unsigned int* count, long long krem, long long* above) {
  long long a = 0;
  for (int b = 255; b >= 0; --b) {
    const long long c = count[b];
    if (a + c >= krem) {
      *above = a;
      return b;
    }
    a += c;
  }
  *above = a;
  return 0;  // fewer than krem keys: the caller never asks for that
}

// Top-p: `mass[b]` is the (fixed-point) probability mass of the `count[b]` keys in bin b; `before` is the mass of
// every key above this prefix. A key is kept when the mass strictly before it is < target, so the last kept key
// lies in the lowest non-empty bin whose mass-before is < target. Returns that bin and sets *chosen_before to its
// mass-before (the `before` of the next level). The first non-empty bin always qualifies when before < target.
VG_HD int topp_choose_bin(const unsigned int* count, const unsigned long long* mass, unsigned long long before,
                          unsigned long long target, unsigned long long* chosen_before) {
  unsigned long long cum = before;
  int chosen = 0;
  *chosen_before = before;
  for (int b = 255; b >= 0; --b) {
    if (count[b] == 0) continue;
    if (cum >= target) break;
    chosen = b;
    *chosen_before = cum;
    cum += mass[b];
  }
  return chosen;
}

}  // namespace cuda
}  // namespace vg
