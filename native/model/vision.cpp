#include "model/vision.h"

#include <algorithm>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activations.h"
#include "cpu/attention.h"
#include "cpu/linear.h"
#include "cpu/norms.h"
#include "cpu/rope.h"

namespace vg {
namespace {

template <typename T>
void norm_fwd(bool layer_norm, const T* x, const T* w, const T* b, T* y, std::vector<T>& mean, std::vector<T>& rstd,
              int64_t rows, int64_t dim, double eps) {
  rstd.resize(rows);
  if (layer_norm) {
    mean.resize(rows);
    layer_norm_forward(x, w, b, y, mean.data(), rstd.data(), rows, dim, eps);
  } else {
    rms_norm_forward(x, w, y, rstd.data(), rows, dim, eps);
  }
}

template <typename T>
void norm_bwd(bool layer_norm, const T* x, const T* w, const std::vector<T>& mean, const std::vector<T>& rstd,
              const T* dy, T* dx, T* dw, T* db, int64_t rows, int64_t dim) {
  if (layer_norm) layer_norm_backward(x, w, mean.data(), rstd.data(), dy, dx, dw, db, rows, dim);
  else rms_norm_backward(x, w, rstd.data(), dy, dx, dw, rows, dim);
}

template <typename T>
void add_into(T* dst, const T* src, int64_t n) {
  parallel_for(0, n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

AttentionDims vision_dims(const VisionConfig& v, int64_t P, int64_t segments) {
  AttentionDims d;
  d.batch = segments;
  d.total_q = d.total_k = P;
  d.num_heads = d.num_kv_heads = v.heads;
  d.head_dim = v.head_dim;
  d.causal = false;
  d.scale = AttentionDims::default_scale(v.head_dim);
  return d;
}

bool is_full_block(const VisionConfig& v, int64_t b) {
  if (v.kind != VisionKind::Qwen2_5) return true;
  return std::find(v.fullatt_blocks.begin(), v.fullatt_blocks.end(), b) != v.fullatt_blocks.end();
}

// Index of block b in deepstack_indexes, or -1.
int64_t deepstack_slot(const VisionConfig& v, int64_t b) {
  auto it = std::find(v.deepstack_indexes.begin(), v.deepstack_indexes.end(), b);
  return it == v.deepstack_indexes.end() ? -1 : it - v.deepstack_indexes.begin();
}

// torch.linspace(0, end, n)[i] in T, as torch computes it on the CPU: the first half counts up from 0, the second
// half down from `end` (so the last value is exactly `end`).
template <typename T>
T linspace_at(T end, int64_t n, int64_t i) {
  if (n == 1) return T(0);
  const T step = end / static_cast<T>(n - 1);
  return i < n / 2 ? step * static_cast<T>(i) : end - step * static_cast<T>(n - 1 - i);
}

// Qwen3-VL position-embedding taps (HF fast_pos_embed_interpolate): a patch at (row, col) of an h × w grid reads the
// side × side table at y = linspace(0, side-1, h)[row], x = linspace(0, side-1, w)[col]: rows (⌊y⌋, ⌊x⌋),
// (⌊y⌋, ⌈x⌉), (⌈y⌉, ⌊x⌋), (⌈y⌉, ⌈x⌉) (ceil = min(⌊·⌋ + 1, side − 1)) with weights (1−dy)(1−dx), (1−dy)dx,
// dy(1−dx), dy·dx. Video frames repeat their grid's embedding.
template <typename T>
void pos_embed_taps(const VisionConfig& v, const VisionInput& in, std::vector<int32_t>& idx, std::vector<T>& wt) {
  int64_t side = 0;
  while ((side + 1) * (side + 1) <= v.num_position_embeddings) ++side;
  const int64_t P = in.num_patches;
  idx.resize(P * 4);
  wt.resize(P * 4);
  for (int64_t s = 0; s < in.num_images; ++s) {
    const int64_t r0 = in.cu_seqlens[s], r1 = in.cu_seqlens[s + 1];
    VG_CHECK_ARG(r0 <= r1, "vision_forward: image boundaries must not decrease (segment ", s, ")");
    int64_t h = 0, w = 0;
    for (int64_t r = r0; r < r1; ++r) {
      VG_CHECK_ARG(in.pos_ids[2 * r] >= 0 && in.pos_ids[2 * r + 1] >= 0, "vision_forward: negative position id at patch ", r);
      h = std::max<int64_t>(h, in.pos_ids[2 * r] + 1);
      w = std::max<int64_t>(w, in.pos_ids[2 * r + 1] + 1);
    }
    VG_CHECK_ARG(h * w == r1 - r0, "vision_forward: image segment ", s, " has ", r1 - r0, " patches but its positions span a ",
                 h, " x ", w, " grid (one frame per segment expected)");
    const T end = static_cast<T>(side - 1);
    for (int64_t r = r0; r < r1; ++r) {
      const T y = linspace_at(end, h, in.pos_ids[2 * r]), x = linspace_at(end, w, in.pos_ids[2 * r + 1]);
      const int64_t y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(x);
      const int64_t y1 = std::min(y0 + 1, side - 1), x1 = std::min(x0 + 1, side - 1);
      const T dy = y - static_cast<T>(y0), dx = x - static_cast<T>(x0);
      const int64_t rows[4] = {y0 * side + x0, y0 * side + x1, y1 * side + x0, y1 * side + x1};
      const T ws[4] = {(T(1) - dy) * (T(1) - dx), (T(1) - dy) * dx, dy * (T(1) - dx), dy * dx};
      for (int j = 0; j < 4; ++j) {
        idx[r * 4 + j] = static_cast<int32_t>(rows[j]);
        wt[r * 4 + j] = ws[j];
      }
    }
  }
}

// Postshuffle-norm merger (Qwen3-VL deepstack): x [U, M] (4 patches side by side) -> LayerNorm(M) -> fc1 -> GELU -> fc2.
template <typename T>
void ds_merger_forward(const MergerView<T>& m, const T* x, int64_t U, int64_t M, int64_t O, double eps, MergerActs<T>& a,
                       T* out) {
  a.mean.resize(U);
  a.rstd.resize(U);
  a.ln_out.resize(U * M);
  a.fc1.resize(U * M);
  a.gelu.resize(U * M);
  layer_norm_forward(x, m.ln_w, m.ln_b, a.ln_out.data(), a.mean.data(), a.rstd.data(), U, M, eps);
  linear_forward(a.ln_out.data(), m.fc1_w, m.fc1_b, a.fc1.data(), U, M, M);
  gelu_forward(a.fc1.data(), a.gelu.data(), U * M, GeluApprox::kNone);
  linear_forward(a.gelu.data(), m.fc2_w, m.fc2_b, out, U, M, O);
}

// Its backward: accumulates dL/dx into dx_acc and the merger's gradients into g (null fields skipped).
template <typename T>
void ds_merger_backward(const MergerView<T>& m, const MergerView<T>& g, const T* x, const MergerActs<T>& a,
                        const T* dout, int64_t U, int64_t M, int64_t O, T* dx_acc) {
  std::vector<T> dgelu(U * M), dfc1(U * M), dln(U * M), dx(U * M);
  linear_backward(a.gelu.data(), m.fc2_w, dout, dgelu.data(), g.fc2_w, g.fc2_b, U, M, O);
  gelu_backward(a.fc1.data(), dgelu.data(), dfc1.data(), U * M, GeluApprox::kNone);
  linear_backward(a.ln_out.data(), m.fc1_w, dfc1.data(), dln.data(), g.fc1_w, g.fc1_b, U, M, M);
  layer_norm_backward(x, m.ln_w, a.mean.data(), a.rstd.data(), dln.data(), dx.data(), g.ln_w, g.ln_b, U, M);
  add_into(dx_acc, dx.data(), U * M);
}

}  // namespace

template <typename T>
void vision_forward(const ModelConfig& cfg, const ModelView<T>& p, const VisionInput& in, VisionActs<T>& acts, T* out,
                    const LoraView<T>* lora) {
  const VisionConfig& v = cfg.vision;
  VG_CHECK_ARG(v.present, "vision_forward: this model has no vision tower");
  const int64_t P = in.num_patches, D = v.hidden, hd = v.head_dim, pd = v.patch_dim(), unit = v.merge_size * v.merge_size;
  const bool q3 = v.kind == VisionKind::Qwen3;
  const bool ln = v.kind == VisionKind::Qwen2 || q3;
  const bool windows = v.kind == VisionKind::Qwen2_5;
  const LoraRun run = lora ? lora->run : LoraRun{};
  auto site = [&](int64_t b, int slot) { return lora ? lora->block(b, slot) : nullptr; };
  VG_CHECK_ARG(P > 0 && P % unit == 0, "vision_forward: the number of patches ", P, " must be a positive multiple of ", unit);
  VG_CHECK_ARG(in.cu_seqlens[0] == 0 && in.cu_seqlens[in.num_images] == P, "vision_forward: image boundaries must run from 0 to ",
               P, " patches");
  if (windows) {
    VG_CHECK_ARG(in.window_index && in.cu_window_seqlens, "vision_forward: Qwen2.5-VL needs the window order");
    VG_CHECK_ARG(in.cu_window_seqlens[0] == 0 && in.cu_window_seqlens[in.num_windows] == P,
                 "vision_forward: window boundaries must run from 0 to ", P, " patches");
  }
  // Row order: window order for Qwen2.5-VL (whole merge units move together), identity otherwise.
  acts.perm.resize(P);
  for (int64_t i = 0; i < P / unit; ++i) {
    const int64_t u = windows ? in.window_index[i] : i;
    VG_CHECK_ARG(u >= 0 && u < P / unit, "vision_forward: window_index[", i, "] = ", u, " is out of range");
    for (int64_t j = 0; j < unit; ++j) acts.perm[i * unit + j] = static_cast<int32_t>(u * unit + j);
  }
  acts.pixels.resize(P * pd);
  std::vector<int32_t> pos(P * 2);
  for (int64_t r = 0; r < P; ++r) {
    const int64_t src = acts.perm[r];
    for (int64_t c = 0; c < pd; ++c) acts.pixels[r * pd + c] = static_cast<T>(in.pixel_values[src * pd + c]);
    pos[2 * r] = in.pos_ids[2 * src];
    pos[2 * r + 1] = in.pos_ids[2 * src + 1];
  }
  acts.cos.resize(P * hd / 2);
  acts.sin.resize(P * hd / 2);
  rope_tables(RopeKind::kVision2D, pos.data(), P, hd, 10000.0, static_cast<const int64_t*>(nullptr), acts.cos.data(),
              acts.sin.data());
  // Patch embedding (Conv3d with stride = kernel == a linear layer on the flattened patch).
  std::vector<T> x(P * D);
  linear_forward<T>(acts.pixels.data(), p.patch_embed, p.patch_embed_b, x.data(), P, pd, D);  // bias: Qwen3-VL only
  if (q3) {  // + bilinearly interpolated learned position embedding (rows are in original order: no windows)
    pos_embed_taps(v, in, acts.pe_idx, acts.pe_w);
    parallel_for(0, P, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int j = 0; j < 4; ++j) {
          const T wj = acts.pe_w[r * 4 + j];
          const T* e = p.pos_embed + static_cast<int64_t>(acts.pe_idx[r * 4 + j]) * D;
          T* xr = x.data() + r * D;
          for (int64_t c = 0; c < D; ++c) xr[c] += wj * e[c];
        }
    });
  }
  const int64_t n_ds = q3 ? static_cast<int64_t>(v.deepstack_indexes.size()) : 0;
  acts.ds.resize(n_ds);
  acts.deepstack_out.resize(n_ds);
  acts.blocks.resize(v.depth);
  std::vector<T> qkv(P * 3 * D), tmp(P * D);
  for (int64_t b = 0; b < v.depth; ++b) {
    const VisionBlockView<T>& w = p.blocks[b];
    VisionBlockActs<T>& a = acts.blocks[b];
    const bool full = is_full_block(v, b);
    const int32_t* cu = full ? in.cu_seqlens : in.cu_window_seqlens;
    const int64_t segs = full ? in.num_images : in.num_windows;
    a.x_in = std::move(x);
    a.xn1.resize(P * D);
    norm_fwd(ln, a.x_in.data(), w.norm1_w, w.norm1_b, a.xn1.data(), a.mean1, a.rstd1, P, D, v.eps);
    linear_forward(a.xn1.data(), w.qkv_w, w.qkv_b, qkv.data(), P, D, 3 * D);
    lora_forward(site(b, kLoraQkv), run, a.xn1.data(), qkv.data(), P, &a.lora_u[kLoraQkv]);
    a.q.resize(P * D);
    a.k.resize(P * D);
    a.v.resize(P * D);
    for (int64_t r = 0; r < P; ++r) {
      std::copy(qkv.data() + r * 3 * D, qkv.data() + r * 3 * D + D, a.q.data() + r * D);
      std::copy(qkv.data() + r * 3 * D + D, qkv.data() + r * 3 * D + 2 * D, a.k.data() + r * D);
      std::copy(qkv.data() + r * 3 * D + 2 * D, qkv.data() + r * 3 * D + 3 * D, a.v.data() + r * D);
    }
    rope_apply(a.q.data(), a.q.data(), P, v.heads, hd, acts.cos.data(), acts.sin.data(), false);
    rope_apply(a.k.data(), a.k.data(), P, v.heads, hd, acts.cos.data(), acts.sin.data(), false);
    a.attn.resize(P * D);
    a.lse.resize(v.heads * P);
    attention_forward(vision_dims(v, P, segs), a.q.data(), a.k.data(), a.v.data(), cu, cu, a.attn.data(), a.lse.data());
    a.h.resize(P * D);
    linear_forward(a.attn.data(), w.proj_w, w.proj_b, a.h.data(), P, D, D);
    lora_forward(site(b, kLoraProj), run, a.attn.data(), a.h.data(), P, &a.lora_u[kLoraProj]);
    add_into(a.h.data(), a.x_in.data(), P * D);
    a.xn2.resize(P * D);
    norm_fwd(ln, a.h.data(), w.norm2_w, w.norm2_b, a.xn2.data(), a.mean2, a.rstd2, P, D, v.eps);
    const int64_t I = v.intermediate;
    a.act.resize(P * I);
    x.resize(P * D);
    if (ln) {  // fc1 -> act -> fc2
      a.a.resize(P * I);
      linear_forward(a.xn2.data(), w.fc1_w, w.fc1_b, a.a.data(), P, D, I);
      lora_forward(site(b, kLoraFc1), run, a.xn2.data(), a.a.data(), P, &a.lora_u[kLoraFc1]);
      if (v.act == Activation::QuickGELU) quick_gelu_forward(a.a.data(), a.act.data(), P * I);
      else gelu_forward(a.a.data(), a.act.data(), P * I, v.act == Activation::GELUTanh ? GeluApprox::kTanh : GeluApprox::kNone);
      linear_forward(a.act.data(), w.fc2_w, w.fc2_b, x.data(), P, I, D);
      lora_forward(site(b, kLoraFc2), run, a.act.data(), x.data(), P, &a.lora_u[kLoraFc2]);
    } else {   // down(silu(gate) * up)
      a.a.resize(P * I);
      a.b.resize(P * I);
      linear_forward(a.xn2.data(), w.gate_w, w.gate_b, a.a.data(), P, D, I);
      linear_forward(a.xn2.data(), w.up_w, w.up_b, a.b.data(), P, D, I);
      lora_forward(site(b, kLoraVGate), run, a.xn2.data(), a.a.data(), P, &a.lora_u[kLoraVGate]);
      lora_forward(site(b, kLoraVUp), run, a.xn2.data(), a.b.data(), P, &a.lora_u[kLoraVUp]);
      swiglu_forward(a.a.data(), a.b.data(), a.act.data(), P * I);
      linear_forward(a.act.data(), w.down_w, w.down_b, x.data(), P, I, D);
      lora_forward(site(b, kLoraVDown), run, a.act.data(), x.data(), P, &a.lora_u[kLoraVDown]);
    }
    add_into(x.data(), a.h.data(), P * D);
    const int64_t slot = q3 ? deepstack_slot(v, b) : -1;
    if (slot >= 0) {
      acts.deepstack_out[slot].resize(P / unit * v.out_hidden);
      ds_merger_forward(p.deepstack[slot], x.data(), P / unit, v.merged_dim(), v.out_hidden, v.eps, acts.ds[slot],
                        acts.deepstack_out[slot].data());
    }
  }
  // Merger: per-patch norm, then each merge unit's `unit` rows side by side (a free reshape).
  acts.x_final = std::move(x);
  acts.ln_out.resize(P * D);
  norm_fwd(ln, acts.x_final.data(), p.merger_ln_w, p.merger_ln_b, acts.ln_out.data(), acts.ln_mean, acts.ln_rstd, P, D,
           v.eps);
  const int64_t U = P / unit, M = v.merged_dim(), O = v.out_hidden;
  acts.fc1.resize(U * M);
  acts.gelu.resize(U * M);
  linear_forward(acts.ln_out.data(), p.merger_fc1_w, p.merger_fc1_b, acts.fc1.data(), U, M, M);
  lora_forward(lora ? lora->merger[kLoraMerger0] : nullptr, run, acts.ln_out.data(), acts.fc1.data(), U,
               &acts.lora_u[kLoraMerger0]);
  gelu_forward(acts.fc1.data(), acts.gelu.data(), U * M, GeluApprox::kNone);
  std::vector<T> out_w(U * O);
  linear_forward(acts.gelu.data(), p.merger_fc2_w, p.merger_fc2_b, out_w.data(), U, M, O);
  lora_forward(lora ? lora->merger[kLoraMerger2] : nullptr, run, acts.gelu.data(), out_w.data(), U,
               &acts.lora_u[kLoraMerger2]);
  for (int64_t i = 0; i < U; ++i) {  // back to the original unit order
    const int64_t u = acts.perm[i * unit] / unit;
    std::copy(out_w.data() + i * O, out_w.data() + (i + 1) * O, out + u * O);
  }
}

template <typename T>
void vision_backward(const ModelConfig& cfg, const ModelView<T>& p, const ModelView<T>& g, const VisionInput& in,
                     VisionActs<T>& acts, const T* dout, const LoraView<T>* lora,
                     const std::vector<std::vector<T>>* d_deepstack) {
  const VisionConfig& v = cfg.vision;
  const int64_t P = in.num_patches, D = v.hidden, hd = v.head_dim, pd = v.patch_dim(), unit = v.merge_size * v.merge_size;
  const int64_t U = P / unit, M = v.merged_dim(), O = v.out_hidden, I = v.intermediate;
  const bool q3 = v.kind == VisionKind::Qwen3;
  const bool ln = v.kind == VisionKind::Qwen2 || q3;
  if (d_deepstack) {
    VG_CHECK_ARG(d_deepstack->size() == acts.deepstack_out.size(), "vision_backward: ", d_deepstack->size(),
                 " deepstack gradients for ", acts.deepstack_out.size(), " deepstack outputs");
    for (const auto& d : *d_deepstack)
      VG_CHECK_ARG(static_cast<int64_t>(d.size()) == U * O, "vision_backward: a deepstack gradient has ", d.size(),
                   " values, expected ", U * O);
  }
  const LoraRun run = lora ? lora->run : LoraRun{};
  auto site = [&](int64_t b, int slot) { return lora ? lora->block(b, slot) : nullptr; };
  std::vector<T> dout_w(U * O), dgelu(U * M), dfc1(U * M), dln(P * D), dx(P * D);
  for (int64_t i = 0; i < U; ++i) {
    const int64_t u = acts.perm[i * unit] / unit;
    std::copy(dout + u * O, dout + (u + 1) * O, dout_w.data() + i * O);
  }
  linear_backward(acts.gelu.data(), p.merger_fc2_w, dout_w.data(), dgelu.data(), g.merger_fc2_w, g.merger_fc2_b, U, M, O);
  lora_backward(lora ? lora->merger[kLoraMerger2] : nullptr, run, acts.gelu.data(), acts.lora_u[kLoraMerger2].data(),
                dout_w.data(), dgelu.data(), U);
  gelu_backward(acts.fc1.data(), dgelu.data(), dfc1.data(), U * M, GeluApprox::kNone);
  linear_backward(acts.ln_out.data(), p.merger_fc1_w, dfc1.data(), dln.data(), g.merger_fc1_w, g.merger_fc1_b, U, M, M);
  lora_backward(lora ? lora->merger[kLoraMerger0] : nullptr, run, acts.ln_out.data(), acts.lora_u[kLoraMerger0].data(),
                dfc1.data(), dln.data(), U);
  norm_bwd(ln, acts.x_final.data(), p.merger_ln_w, acts.ln_mean, acts.ln_rstd, dln.data(), dx.data(), g.merger_ln_w,
           g.merger_ln_b, P, D);
  std::vector<T> dh(P * D), dxn(P * D), dact(P * I), da(P * I), db(P * I), dattn(P * D), dq(P * D), dk(P * D),
      dv(P * D), dqkv(P * 3 * D);
  for (int64_t b = v.depth - 1; b >= 0; --b) {
    const VisionBlockView<T>& w = p.blocks[b];
    const VisionBlockView<T>& gw = g.blocks[b];
    VisionBlockActs<T>& a = acts.blocks[b];
    const bool full = is_full_block(v, b);
    const int32_t* cu = full ? in.cu_seqlens : in.cu_window_seqlens;
    const int64_t segs = full ? in.num_images : in.num_windows;
    const int64_t slot = q3 && d_deepstack ? deepstack_slot(v, b) : -1;
    if (slot >= 0) {  // this block's output also fed a deepstack merger
      const T* out_b = b + 1 < v.depth ? acts.blocks[b + 1].x_in.data() : acts.x_final.data();
      const MergerView<T> gm = slot < static_cast<int64_t>(g.deepstack.size()) ? g.deepstack[slot] : MergerView<T>{};
      ds_merger_backward(p.deepstack[slot], gm, out_b, acts.ds[slot], (*d_deepstack)[slot].data(), U, M, O, dx.data());
    }
    // MLP branch: x_out = h + mlp(norm2(h))
    if (ln) {
      linear_backward(a.act.data(), w.fc2_w, dx.data(), dact.data(), gw.fc2_w, gw.fc2_b, P, I, D);
      lora_backward(site(b, kLoraFc2), run, a.act.data(), a.lora_u[kLoraFc2].data(), dx.data(), dact.data(), P);
      if (v.act == Activation::QuickGELU) quick_gelu_backward(a.a.data(), dact.data(), da.data(), P * I);
      else gelu_backward(a.a.data(), dact.data(), da.data(), P * I, v.act == Activation::GELUTanh ? GeluApprox::kTanh : GeluApprox::kNone);
      linear_backward(a.xn2.data(), w.fc1_w, da.data(), dxn.data(), gw.fc1_w, gw.fc1_b, P, D, I);
      lora_backward(site(b, kLoraFc1), run, a.xn2.data(), a.lora_u[kLoraFc1].data(), da.data(), dxn.data(), P);
    } else {
      linear_backward(a.act.data(), w.down_w, dx.data(), dact.data(), gw.down_w, gw.down_b, P, I, D);
      lora_backward(site(b, kLoraVDown), run, a.act.data(), a.lora_u[kLoraVDown].data(), dx.data(), dact.data(), P);
      swiglu_backward(a.a.data(), a.b.data(), dact.data(), da.data(), db.data(), P * I);
      linear_backward(a.xn2.data(), w.gate_w, da.data(), dxn.data(), gw.gate_w, gw.gate_b, P, D, I);
      lora_backward(site(b, kLoraVGate), run, a.xn2.data(), a.lora_u[kLoraVGate].data(), da.data(), dxn.data(), P);
      linear_backward(a.xn2.data(), w.up_w, db.data(), dh.data(), gw.up_w, gw.up_b, P, D, I);
      lora_backward(site(b, kLoraVUp), run, a.xn2.data(), a.lora_u[kLoraVUp].data(), db.data(), dh.data(), P);
      add_into(dxn.data(), dh.data(), P * D);
    }
    norm_bwd(ln, a.h.data(), w.norm2_w, a.mean2, a.rstd2, dxn.data(), dh.data(), gw.norm2_w, gw.norm2_b, P, D);
    add_into(dh.data(), dx.data(), P * D);
    // Attention branch: h = x_in + proj(attn(rope(q), rope(k), v))
    linear_backward(a.attn.data(), w.proj_w, dh.data(), dattn.data(), gw.proj_w, gw.proj_b, P, D, D);
    lora_backward(site(b, kLoraProj), run, a.attn.data(), a.lora_u[kLoraProj].data(), dh.data(), dattn.data(), P);
    attention_backward(vision_dims(v, P, segs), a.q.data(), a.k.data(), a.v.data(), a.attn.data(), a.lse.data(),
                       dattn.data(), cu, cu, dq.data(), dk.data(), dv.data());
    rope_backward(dq.data(), dq.data(), P, v.heads, hd, acts.cos.data(), acts.sin.data());
    rope_backward(dk.data(), dk.data(), P, v.heads, hd, acts.cos.data(), acts.sin.data());
    for (int64_t r = 0; r < P; ++r) {
      std::copy(dq.data() + r * D, dq.data() + (r + 1) * D, dqkv.data() + r * 3 * D);
      std::copy(dk.data() + r * D, dk.data() + (r + 1) * D, dqkv.data() + r * 3 * D + D);
      std::copy(dv.data() + r * D, dv.data() + (r + 1) * D, dqkv.data() + r * 3 * D + 2 * D);
    }
    linear_backward(a.xn1.data(), w.qkv_w, dqkv.data(), dxn.data(), gw.qkv_w, gw.qkv_b, P, D, 3 * D);
    lora_backward(site(b, kLoraQkv), run, a.xn1.data(), a.lora_u[kLoraQkv].data(), dqkv.data(), dxn.data(), P);
    norm_bwd(ln, a.x_in.data(), w.norm1_w, a.mean1, a.rstd1, dxn.data(), dx.data(), gw.norm1_w, gw.norm1_b, P, D);
    add_into(dx.data(), dh.data(), P * D);
    if (acts.on_block_grads) acts.on_block_grads(b);
  }
  // Patch embedding weight (rows are in window order, like acts.pixels); nothing to do when it is frozen.
  if (g.patch_embed || g.patch_embed_b)
    linear_backward<T>(acts.pixels.data(), p.patch_embed, dx.data(), nullptr, g.patch_embed, g.patch_embed_b, P, pd, D);
  if (q3 && g.pos_embed) {  // scatter-add of the bilinear taps; each thread owns a column range (deterministic)
    parallel_for(0, D, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < P; ++r)
        for (int j = 0; j < 4; ++j) {
          const T wj = acts.pe_w[r * 4 + j];
          T* ge = g.pos_embed + static_cast<int64_t>(acts.pe_idx[r * 4 + j]) * D;
          const T* dr = dx.data() + r * D;
          for (int64_t c = c0; c < c1; ++c) ge[c] += wj * dr[c];
        }
    });
  }
}

template void vision_forward<float>(const ModelConfig&, const ModelView<float>&, const VisionInput&, VisionActs<float>&, float*,
                                    const LoraView<float>*);
template void vision_forward<double>(const ModelConfig&, const ModelView<double>&, const VisionInput&, VisionActs<double>&, double*,
                                     const LoraView<double>*);
template void vision_backward<float>(const ModelConfig&, const ModelView<float>&, const ModelView<float>&, const VisionInput&,
                                     VisionActs<float>&, const float*, const LoraView<float>*,
                                     const std::vector<std::vector<float>>*);
template void vision_backward<double>(const ModelConfig&, const ModelView<double>&, const ModelView<double>&,
                                      const VisionInput&, VisionActs<double>&, const double*, const LoraView<double>*,
                                      const std::vector<std::vector<double>>*);

}  // namespace vg
