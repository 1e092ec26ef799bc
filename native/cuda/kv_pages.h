// Host-side bookkeeping of the paged KV cache used by cuda/decode_attention.h: which pages of the pool belong to
// which sequence slot, and the block table the kernels read. No CUDA calls here (the owner uploads
// block_table() to the device when version() changed), so this is tested on any machine.
//
// The pool has num_pages pages of page_size positions. A sequence slot (0 .. max_seqs-1) holds one sequence at a
// time; reserve(slot, len) makes positions [0, len) addressable by taking whole pages from the free list (all or
// nothing, so a failed reserve leaves the slot unchanged and the caller can preempt or wait); release(slot) returns
// its pages, which is how continuous batching refills a finished sequence's slot without moving any memory.
// Pages are handed out lowest-id first from the free list, so allocation is deterministic.
#pragma once
#include <cstdint>
#include <vector>

namespace vg {
namespace cuda {

class KvPageAllocator {
 public:
  KvPageAllocator(int64_t num_pages, int64_t page_size, int64_t max_seqs, int64_t max_pages_per_seq);

  // Pages that fit in `bytes` for a model with `layers` layers (K and V, bf16, kv_heads × head_dim per position).
  static int64_t pages_for_bytes(int64_t bytes, int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t page_size);

  // A free slot (lowest index), or -1 when every slot holds a sequence.
  int64_t acquire();
  // Frees the slot and its pages. Releasing a free slot is an error.
  void release(int64_t slot);
  // Makes positions [0, len) of the slot addressable. Returns false, changing nothing, when the pool has too few
  // free pages; throws when len exceeds max_pages_per_seq · page_size.
  bool reserve(int64_t slot, int64_t len);

  int64_t length(int64_t slot) const;      // positions reserved
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t page_size() const { return page_size_; }
  int64_t max_pages_per_seq() const { return max_pages_; }
  bool in_use(int64_t slot) const;
  // [max_seqs, max_pages_per_seq] page ids, -1 where no page is assigned.
  const std::vector<int32_t>& block_table() const { return table_; }
  // Bumped by every change of block_table(), so the owner re-uploads only when needed.
  uint64_t version() const { return version_; }

 private:
  void check_slot(const char* fn, int64_t slot) const;
  int64_t num_pages_, page_size_, max_seqs_, max_pages_;
  std::vector<int32_t> table_;
  std::vector<int64_t> len_;
  std::vector<uint8_t> used_;
  std::vector<int32_t> free_;  // a stack: the lowest free id at the back
  uint64_t version_ = 0;
};

}  // namespace cuda
}  // namespace vg
