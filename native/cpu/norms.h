// Row normalisations of the Qwen2 / Qwen2-VL models, forward and backward, on row-major [rows, hidden] data.
//
// RMSNorm (text model, Qwen2.5-VL vision and merger), exactly as HF Qwen2RMSNorm in fp32:
//   rstd = 1 / sqrt(mean_j(x_j²) + eps);   y = w ⊙ (x · rstd)
// LayerNorm (Qwen2-VL vision and merger), biased variance:
//   mean = mean_j(x_j);  rstd = 1 / sqrt(mean_j((x_j − mean)²) + eps);   y = (x − mean) · rstd ⊙ w + b
// Statistics are computed in T (fp32 for float, double for double) and saved per row for the backward.
//
// Backward (spec section 8), with x̂ the normalised row and g = dy ⊙ w:
//   RMSNorm:   dx = rstd · (g − x̂ · mean(g ⊙ x̂));            dw += Σ_rows dy ⊙ x̂
//   LayerNorm: dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂));  dw += Σ_rows dy ⊙ x̂;  db += Σ_rows dy
// dx is overwritten; dw/db are accumulated (+=) so micro-batches can sum into one gradient buffer. The row sums
// for dw/db run over fixed row blocks whose partials are added in block order, so the result is bitwise the same
// for any thread count.
#pragma once
#include <cstdint>

namespace vg {

// x, y: [rows, hidden]; w: [hidden]; rstd: [rows] (written). y may alias x.
template <typename T>
void rms_norm_forward(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t hidden, double eps);

// dx: [rows, hidden] overwritten (skipped when null; may alias dy); dw: [hidden] accumulated (skipped when null).
template <typename T>
void rms_norm_backward(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t hidden);

// b may be null (no bias). mean, rstd: [rows] (written). y may alias x.
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t hidden,
                        double eps);

// dx overwritten (skipped when null; may alias dy); dw, db accumulated (each skipped when null).
template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db,
                         int64_t rows, int64_t hidden);

}  // namespace vg
