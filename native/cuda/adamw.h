// AdamW and global gradient-norm clipping on the GPU over one contiguous fp32 buffer (the parameter layout of
// DESIGN.md §8: parameters, gradients and both moments share offsets, so one launch updates every tensor).
//
// adamw_step: exactly the per-element math of native/cpu/adamw.h (PyTorch AdamW, decoupled weight decay), in
// double, rounded to fp32 once: fp32 master weights and moments are updated in place, and when `model` is given
// the bf16 model copy is rewritten from the new master weights in the same pass. Parameter groups with a
// different weight decay are separate calls on sub-ranges. `grad_scale` (device, nullable) multiplies every
// gradient first, rounded to fp32 as if the buffer had been scaled in place (what clip_grad_norm does), so a
// clip can feed the step without a second pass over the gradients and without a host round trip.
//
// Global norm, deterministic two-pass reduction: pass 1 gives one double partial Σ g² per fixed 32768-element
// block (a fixed tree inside the block); pass 2, one block, adds the partials in a fixed order. Same bits on
// every run. Clip rule as the CPU (torch.nn.utils.clip_grad_norm_): coef = max_norm / (total + 1e-6), applied
// when < 1 and when max_norm is finite and > 0 and total is finite; otherwise scale = 1.
#pragma once
#include <cstdint>

#include "cpu/adamw.h"
#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// master, grads, exp_avg, exp_avg_sq: [n] fp32; model: [n] bf16 or null; grad_scale: 1 double or null.
void adamw_step(float* master, const float* grads, float* exp_avg, float* exp_avg_sq, bf16* model, int64_t n,
                const AdamWConfig& cfg, const double* grad_scale, cudaStream_t stream);

// Device-only (no host synchronisation): writes the global L2 norm to *total_norm and the clip factor to *scale
// (both device doubles; scale = 1 when nothing is clipped).
void grad_norm_clip_scale(const float* grads, int64_t n, double max_norm, double* total_norm, double* scale,
                          cudaStream_t stream);

// Measures the norm, scales the gradients in place when clipping, synchronises `stream` and returns both numbers
// (the CPU clip_grad_norm's contract).
ClipGradNormResult clip_grad_norm(float* grads, int64_t n, double max_norm, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
