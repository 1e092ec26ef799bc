// Host-side tests of the paged KV cache bookkeeping (no GPU needed): page hand-out and return, all-or-nothing
// reservation, deterministic reuse, and the invariant that every page is owned exactly once.
#if VG_HAVE_CUDA
#include <algorithm>
#include <set>

#include "cuda/kv_pages.h"
#include "test_framework.h"

using vg::cuda::KvPageAllocator;

VG_TEST(cuda_kv_pages_reserve_release_reuse) {
  KvPageAllocator a(10, 4, 3, 5);
  const auto row = [&](int64_t s) {
    return std::vector<int32_t>(a.block_table().begin() + s * 5, a.block_table().begin() + (s + 1) * 5);
  };
  VG_EXPECT(a.acquire() == 0);
  const uint64_t v0 = a.version();
  VG_EXPECT(a.reserve(0, 5) && a.length(0) == 5 && a.free_pages() == 8);
  VG_EXPECT((row(0) == std::vector<int32_t>{0, 1, -1, -1, -1}));
  VG_EXPECT(a.version() > v0);
  VG_EXPECT(a.reserve(0, 8) && a.free_pages() == 8, "positions 5..7 fit in page 1");
  VG_EXPECT(a.reserve(0, 9) && (row(0) == std::vector<int32_t>{0, 1, 2, -1, -1}));
  VG_EXPECT(a.acquire() == 1);
  VG_EXPECT(a.reserve(1, 20) && (row(1) == std::vector<int32_t>{3, 4, 5, 6, 7}) && a.free_pages() == 2);
  VG_EXPECT_THROWS(a.reserve(1, 21), "exceeds the per-sequence limit 20");
  VG_EXPECT(a.acquire() == 2);
  VG_EXPECT(a.acquire() == -1, "all three slots are taken");
  const uint64_t v1 = a.version();
  VG_EXPECT(!a.reserve(2, 12), "3 pages needed, 2 free");
  VG_EXPECT(a.length(2) == 0 && a.free_pages() == 2 && (row(2) == std::vector<int32_t>{-1, -1, -1, -1, -1}));
  VG_EXPECT(a.version() == v1, "a failed reserve changes nothing");
  a.release(0);  // pages 0, 1, 2 come back; the lowest ids are handed out first
  VG_EXPECT(a.free_pages() == 5 && !a.in_use(0));
  VG_EXPECT(a.reserve(2, 12) && (row(2) == std::vector<int32_t>{0, 1, 2, -1, -1}));
  VG_EXPECT(a.acquire() == 0, "the released slot is refilled");
  VG_EXPECT_THROWS(a.release(5), "outside [0, 3)");
  a.release(0);
  VG_EXPECT_THROWS(a.release(0), "not in use");
}

VG_TEST(cuda_kv_pages_random_operations_keep_pages_owned_once) {
  auto g = vgtest::rng(11);
  const int64_t pages = 64, page = 16, seqs = 8, per_seq = 12;
  KvPageAllocator a(pages, page, seqs, per_seq);
  for (int step = 0; step < 5000; ++step) {
    const int op = static_cast<int>(g() % 3);
    const int64_t s = static_cast<int64_t>(g() % seqs);
    if (op == 0) a.acquire();
    else if (op == 1 && a.in_use(s)) a.release(s);
    else if (a.in_use(s)) a.reserve(s, std::min<int64_t>(per_seq * page, a.length(s) + static_cast<int64_t>(g() % 40)));
    // Invariants: every page is either free or in exactly one slot's prefix of ceil(len / page) entries.
    std::set<int32_t> owned;
    int64_t assigned = 0;
    for (int64_t q = 0; q < seqs; ++q) {
      const int64_t need = a.in_use(q) ? (a.length(q) + page - 1) / page : 0;
      for (int64_t p = 0; p < per_seq; ++p) {
        const int32_t id = a.block_table()[q * per_seq + p];
        VG_EXPECT((p < need) == (id >= 0), "slot ", q, " entry ", p, " = ", id, " with length ", a.length(q));
        if (id >= 0) {
          VG_EXPECT(id < pages && owned.insert(id).second, "page ", id, " owned twice");
          ++assigned;
        }
      }
    }
    VG_EXPECT(assigned + a.free_pages() == pages, "pages lost: ", assigned, " + ", a.free_pages());
  }
}

VG_TEST(cuda_kv_pages_sized_from_memory) {
  // Qwen2.5-VL-3B: 36 layers × (K, V) × 2 kv heads × 128 × 16 positions × 2 B = 589,824 B per page.
  VG_EXPECT(KvPageAllocator::pages_for_bytes(10LL << 30, 36, 2, 128, 16) == 18204);
  VG_EXPECT(KvPageAllocator::pages_for_bytes(589823, 36, 2, 128, 16) == 0);
  VG_EXPECT_THROWS(KvPageAllocator(0, 16, 1, 1), "num_pages");
}
#endif
