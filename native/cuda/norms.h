// RMSNorm and LayerNorm on the GPU, forward and backward: the same math as native/cpu/norms.h with bf16
// activations and weights, fp32 statistics and fp32 weight gradients.
//
//   RMSNorm:   rstd = 1 / sqrt(mean_j(x_j²) + eps);                  y = w ⊙ (x · rstd)
//   LayerNorm: mean = mean_j(x_j); rstd = 1 / sqrt(mean_j((x_j − mean)²) + eps);  y = (x − mean) · rstd ⊙ w + b
// All arithmetic is fp32 (inputs widened from bf16), each output rounded to bf16 once. (HF rounds x · rstd to
// bf16 before multiplying by w in a bf16 model; we keep it in fp32, which is at least as accurate.)
// Backward, x̂ the normalised row and g = dy ⊙ w:
//   RMSNorm:   dx = rstd · (g − x̂ · mean(g ⊙ x̂));            dw += Σ_rows dy ⊙ x̂
//   LayerNorm: dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂));  dw += Σ_rows dy ⊙ x̂;  db += Σ_rows dy
// dx (bf16) is overwritten (may alias dy; skipped when null); dw/db (fp32) are accumulated (skipped when null).
// One block per row for the row statistics. The column sums for dw/db run over fixed 64-row chunks whose fp32
// partials are added in chunk order in double, so the gradients are bitwise reproducible run to run.
// Every pointer is device memory; work is queued on `stream`.
#pragma once
#include <cstdint>

#include "cuda/runtime.h"

namespace vg {
namespace cuda {

// x, y: [rows, hidden] (y may alias x); w: [hidden]; rstd: [rows] (written).
void rms_norm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int64_t rows, int64_t hidden, double eps,
                      cudaStream_t stream);
void rms_norm_backward(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, bf16* dx, float* dw,
                       int64_t rows, int64_t hidden, cudaStream_t stream);

// b may be null. mean, rstd: [rows] (written).
void layer_norm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean, float* rstd, int64_t rows,
                        int64_t hidden, double eps, cudaStream_t stream);
void layer_norm_backward(const bf16* x, const bf16* w, const float* mean, const float* rstd, const bf16* dy, bf16* dx,
                         float* dw, float* db, int64_t rows, int64_t hidden, cudaStream_t stream);

}  // namespace cuda
}  // namespace vg
