// AdamW step (PyTorch torch.optim.AdamW semantics, decoupled weight decay) and global gradient-norm clipping
// (torch.nn.utils.clip_grad_norm_ semantics) over flat buffers.
//
// adamw_step, per element, with t = step (1-based) and the arithmetic in double, rounded to T once at the end:
//   p ← p·(1 − lr·wd)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)
// (PyTorch rounds each of these in-place ops to fp32; the results agree to a few ulps.) Elements are
// independent, so the update is parallel and does not depend on the thread count. Non-finite gradients are not
// screened here: they propagate into the state (check clip_grad_norm's total norm first).
//
// clip_grad_norm: total = sqrt(Σ over all buffers Σ g²), accumulated in double over fixed 32768-element blocks
// whose partial sums are added in order (thread-count independent). When max_norm is finite and > 0 and total is
// finite, every buffer is multiplied by coef = max_norm / (total + 1e-6) if coef < 1. max_norm <= 0 or +inf only
// measures. A non-finite total (a NaN or ±inf gradient) leaves the buffers untouched and is reported as is.
#pragma once
#include <cstdint>

namespace vg {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  int64_t step = 1;  // 1-based count of steps including this one (used for bias correction)
};

// Updates params, exp_avg and exp_avg_sq (each n elements) in place from grads.
template <typename T>
void adamw_step(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamWConfig& cfg);

struct ClipGradNormResult {
  double total_norm = 0;  // global L2 norm before clipping (NaN/inf when a gradient is not finite)
  double scale = 1;       // factor applied to every buffer (1 when nothing was scaled)
};

// The global L2 norm of `count` buffers (bufs[k] holds lens[k] elements).
template <typename T>
double global_grad_norm(const T* const* bufs, const int64_t* lens, int64_t count);

// Measures the global norm and scales the buffers in place as described above.
template <typename T>
ClipGradNormResult clip_grad_norm(T* const* bufs, const int64_t* lens, int64_t count, double max_norm);

}  // namespace vg
