// Paged KV cache bookkeeping: see kv_pages.h.
#include "cuda/kv_pages.h"

#include <algorithm>

#include "core/error.h"

namespace vg {
namespace cuda {

KvPageAllocator::KvPageAllocator(int64_t num_pages, int64_t page_size, int64_t max_seqs, int64_t max_pages_per_seq)
    : num_pages_(num_pages), page_size_(page_size), max_seqs_(max_seqs), max_pages_(max_pages_per_seq) {
  VG_CHECK_ARG(num_pages >= 1 && num_pages <= INT32_MAX, "KvPageAllocator: num_pages must be in [1, 2^31), got ",
               num_pages);
  VG_CHECK_ARG(page_size >= 1 && max_seqs >= 1 && max_pages_per_seq >= 1,
               "KvPageAllocator: page_size, max_seqs and max_pages_per_seq must be >= 1, got ", page_size, ", ",
               max_seqs, ", ", max_pages_per_seq);
  table_.assign(static_cast<size_t>(max_seqs * max_pages_per_seq), -1);
  len_.assign(static_cast<size_t>(max_seqs), 0);
  used_.assign(static_cast<size_t>(max_seqs), 0);
  free_.resize(static_cast<size_t>(num_pages));
  for (int64_t i = 0; i < num_pages; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(num_pages - 1 - i);
}

int64_t KvPageAllocator::pages_for_bytes(int64_t bytes, int64_t layers, int64_t kv_heads, int64_t head_dim,
                                         int64_t page_size) {
  VG_CHECK_ARG(bytes >= 0 && layers >= 1 && kv_heads >= 1 && head_dim >= 1 && page_size >= 1,
               "KvPageAllocator::pages_for_bytes: bad sizes (bytes ", bytes, ", layers ", layers, ", kv_heads ",
               kv_heads, ", head_dim ", head_dim, ", page_size ", page_size, ")");
  const int64_t per_page = layers * 2 * kv_heads * head_dim * page_size * 2;  // K and V, bf16
  return bytes / per_page;
}

void KvPageAllocator::check_slot(const char* fn, int64_t slot) const {
  VG_CHECK_ARG(slot >= 0 && slot < max_seqs_, "KvPageAllocator::", fn, ": slot ", slot, " is outside [0, ", max_seqs_,
               ")");
}

bool KvPageAllocator::in_use(int64_t slot) const {
  check_slot("in_use", slot);
  return used_[static_cast<size_t>(slot)] != 0;
}

int64_t KvPageAllocator::length(int64_t slot) const {
  check_slot("length", slot);
  return len_[static_cast<size_t>(slot)];
}

int64_t KvPageAllocator::acquire() {
  for (int64_t s = 0; s < max_seqs_; ++s)
    if (!used_[static_cast<size_t>(s)]) {
      used_[static_cast<size_t>(s)] = 1;
      len_[static_cast<size_t>(s)] = 0;
      return s;
    }
  return -1;
}

void KvPageAllocator::release(int64_t slot) {
  check_slot("release", slot);
  VG_CHECK_ARG(used_[static_cast<size_t>(slot)], "KvPageAllocator::release: slot ", slot, " is not in use");
  int32_t* row = table_.data() + slot * max_pages_;
  for (int64_t p = 0; p < max_pages_; ++p)
    if (row[p] >= 0) free_.push_back(row[p]), row[p] = -1;
  // Keep the lowest id at the back so allocation stays deterministic whatever the release order.
  std::sort(free_.begin(), free_.end(), [](int32_t a, int32_t b) { return a > b; });
  used_[static_cast<size_t>(slot)] = 0;
  len_[static_cast<size_t>(slot)] = 0;
  ++version_;
}

bool KvPageAllocator::reserve(int64_t slot, int64_t len) {
  check_slot("reserve", slot);
  VG_CHECK_ARG(used_[static_cast<size_t>(slot)], "KvPageAllocator::reserve: slot ", slot, " is not in use");
  VG_CHECK_ARG(len >= 0 && len <= max_pages_ * page_size_, "KvPageAllocator::reserve: length ", len,
               " exceeds the per-sequence limit ", max_pages_ * page_size_, " (", max_pages_, " pages of ", page_size_,
               ")");
  const int64_t have = (len_[static_cast<size_t>(slot)] + page_size_ - 1) / page_size_;
  const int64_t need = (len + page_size_ - 1) / page_size_;
  if (need > have) {
    if (need - have > free_pages()) return false;
    int32_t* row = table_.data() + slot * max_pages_;
    for (int64_t p = have; p < need; ++p) {
      row[p] = free_.back();
      free_.pop_back();
    }
    ++version_;
  }
  len_[static_cast<size_t>(slot)] = std::max(len_[static_cast<size_t>(slot)], len);
  return true;
}

}  // namespace cuda
}  // namespace vg
