// Which ranges of the gradient buffer (params.h layout) a backward pass has finished, and when: the model reports
// them through a GradReadyFn so that data-parallel training can start each bucket's collective while backward goes on
// (dist/grad_buckets.h).
//
// Backward order and the ranges it reports (each once, padding included, so together they tile [0, total)):
//   1. after the LM head:                lm_head.weight (untied only)
//   2. after decoder layer l = L-1..0:   that layer's tensors; layer L-1's range also holds model.norm.weight (the
//                                        final norm's gradient is computed before layer L-1)
//   3. after the embedding scatter:      model.embed_tokens.weight (also the tied LM head: final only now)
//   4. vision tower, when its backward runs:
//        after block b = D-1..0:         the block's tensors; block D-1 also reports the merger (computed before the
//                                        blocks), and block b the deepstack merger fed by block b (Qwen3-VL)
//        at the end:                     the stem (patch embedding, its bias and the position table)
//      otherwise (text-only batch, frozen tower): the whole vision range [vision_begin, total) at the end.
// `order()` lists the ranges in the order of a backward through the vision tower (the bucket plan follows it).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace vg {

struct GradRange {
  int64_t begin = 0, end = 0;
};

// Called on the thread running backward: gradients [begin, end) are final for this backward (it will not write
// them again), so another thread may read or overwrite them from now on.
using GradReadyFn = std::function<void(int64_t begin, int64_t end)>;

class GradReadyOrder {
 public:
  GradReadyOrder(const ModelConfig& cfg, const ParamLayout& layout);
  GradRange lm_head() const;                           // empty when tied
  GradRange decoder_layer(int64_t l) const;
  GradRange embed() const;
  std::vector<GradRange> vision_block(int64_t b) const;
  GradRange vision_stem() const;
  GradRange vision() const;                            // empty without a vision tower
  std::vector<GradRange> order() const;

 private:
  std::vector<int64_t> layer_begin_;  // L + 1 entries: layer starts, then the end of layer L-1 (incl. final norm)
  int64_t lm_head_begin_ = 0, vision_begin_ = 0, total_ = 0;
  std::vector<int64_t> block_begin_;  // D + 1 entries: block starts, then the merger's start
  int64_t merger_end_ = 0;
  std::vector<int64_t> ds_begin_;     // deepstack mergers' starts, then total
  std::vector<int64_t> ds_block_;     // the block feeding each deepstack merger
};

}  // namespace vg
