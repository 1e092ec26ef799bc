#!/usr/bin/env python3
"""Independent float64 reference of Qwen3-VL (dense) as Hugging Face transformers runs it, and the generator of
the fixtures in test/fixtures/tiny-q3vl/ (a tiny random model).

Written from a reading of transformers' modeling_qwen3_vl.py (Qwen3VLVisionModel, Qwen3VLVisionPatchMerger,
fast_pos_embed_interpolate, rot_pos_emb, Qwen3VLTextAttention with q_norm/k_norm, Qwen3VLTextRotaryEmbedding
.apply_interleaved_mrope, Qwen3VLTextModel._deepstack_process, Qwen3VLModel.get_rope_index). It uses plain torch
ops in float64 and autograd for the gradients; it shares no code with the project (run with Debian's
python3-torch: `/usr/bin/python3 test/reference/qwen3_vl_reference.py [out_dir]`).

Fixture contents (expected.safetensors; floats F32, ints I64):
  single.input_ids, single.pixel_values [P, 3·2·16·16], single.image_embeds (merger output), single.deepstack.<i>,
  single.logits [N, V], single.completion_logprobs, single.grad.<canonical name> (loss = −Σ completion log-probs),
  multi.* (two images of different grids), generate.input_ids (+ greedy tokens in inputs.json),
  video.* (a (2, 4, 4) video as two timestamped one-frame runs, then an image: input_ids, pixel_values,
  pixel_values_videos, positions, video_embeds, logits, completion_logprobs, grad.<canonical name>).
Canonical names are the legacy hub names (visual.*, model.*, lm_head.weight); model.safetensors uses the Qwen3-VL
checkpoint names (model.visual.*, model.language_model.*, lm_head.weight).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

CONFIG = {
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "model_type": "qwen3_vl",
    "image_token_id": 500,
    "video_token_id": 501,
    "vision_start_token_id": 498,
    "vision_end_token_id": 499,
    "tie_word_embeddings": False,
    "text_config": {
        "model_type": "qwen3_vl_text",
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 24,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 5000.0,
        "rope_scaling": {"rope_type": "default", "mrope_section": [4, 4, 4], "mrope_interleaved": True},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "max_position_embeddings": 4096,
        "bos_token_id": 495,
        "eos_token_id": 497,
        "tie_word_embeddings": False,
        "dtype": "float32",
    },
    "vision_config": {
        "model_type": "qwen3_vl",
        "depth": 3,
        "hidden_size": 32,
        "hidden_act": "gelu_pytorch_tanh",
        "intermediate_size": 64,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 64,
        "num_position_embeddings": 16,
        "deepstack_visual_indexes": [0, 1],
    },
}
PAD, IM_START, IM_END, V_START, V_END, IMG, VID = 495, 496, 497, 498, 499, 500, 501


# ---------------------------------------------------------------------------------------------------------
# parameters (Qwen3-VL checkpoint names)

def param_shapes(cfg):
    t, v = cfg["text_config"], cfg["vision_config"]
    H, d, I = t["hidden_size"], t["head_dim"], t["intermediate_size"]
    D, Iv, ps, tp = v["hidden_size"], v["intermediate_size"], v["patch_size"], v["temporal_patch_size"]
    M = D * v["spatial_merge_size"] ** 2
    O = v["out_hidden_size"]
    s = {}
    s["model.visual.patch_embed.proj.weight"] = (D, v["in_channels"], tp, ps, ps)
    s["model.visual.patch_embed.proj.bias"] = (D,)
    s["model.visual.pos_embed.weight"] = (v["num_position_embeddings"], D)
    for b in range(v["depth"]):
        p = f"model.visual.blocks.{b}."
        for n in ("norm1", "norm2"):
            s[p + n + ".weight"] = (D,)
            s[p + n + ".bias"] = (D,)
        s[p + "attn.qkv.weight"] = (3 * D, D)
        s[p + "attn.qkv.bias"] = (3 * D,)
        s[p + "attn.proj.weight"] = (D, D)
        s[p + "attn.proj.bias"] = (D,)
        s[p + "mlp.linear_fc1.weight"] = (Iv, D)
        s[p + "mlp.linear_fc1.bias"] = (Iv,)
        s[p + "mlp.linear_fc2.weight"] = (D, Iv)
        s[p + "mlp.linear_fc2.bias"] = (D,)
    mergers = ["model.visual.merger."] + [f"model.visual.deepstack_merger_list.{i}." for i in range(len(v["deepstack_visual_indexes"]))]
    for j, p in enumerate(mergers):
        nd = D if j == 0 else M
        s[p + "norm.weight"] = (nd,)
        s[p + "norm.bias"] = (nd,)
        s[p + "linear_fc1.weight"] = (M, M)
        s[p + "linear_fc1.bias"] = (M,)
        s[p + "linear_fc2.weight"] = (O, M)
        s[p + "linear_fc2.bias"] = (O,)
    s["model.language_model.embed_tokens.weight"] = (t["vocab_size"], H)
    for l in range(t["num_hidden_layers"]):
        p = f"model.language_model.layers.{l}."
        s[p + "input_layernorm.weight"] = (H,)
        s[p + "self_attn.q_proj.weight"] = (t["num_attention_heads"] * d, H)
        s[p + "self_attn.k_proj.weight"] = (t["num_key_value_heads"] * d, H)
        s[p + "self_attn.v_proj.weight"] = (t["num_key_value_heads"] * d, H)
        s[p + "self_attn.o_proj.weight"] = (H, t["num_attention_heads"] * d)
        s[p + "self_attn.q_norm.weight"] = (d,)
        s[p + "self_attn.k_norm.weight"] = (d,)
        s[p + "post_attention_layernorm.weight"] = (H,)
        s[p + "mlp.gate_proj.weight"] = (I, H)
        s[p + "mlp.up_proj.weight"] = (I, H)
        s[p + "mlp.down_proj.weight"] = (H, I)
    s["model.language_model.norm.weight"] = (H,)
    s["lm_head.weight"] = (t["vocab_size"], H)
    return s


def init_params(cfg, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in param_shapes(cfg).items():
        if "norm" in name and name.endswith(".weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("pos_embed.weight"):
            a = 0.5 * rng.standard_normal(shape)
        else:
            a = 0.2 * rng.standard_normal(shape)
        out[name] = torch.tensor(a.astype(np.float32).astype(np.float64), requires_grad=True)
    return out


def canonical(name):
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("model.visual."):
        return "visual." + name[len("model.visual."):]
    return name


# ---------------------------------------------------------------------------------------------------------
# small ops

def layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def linear(x, w, b=None):
    y = x @ w.T
    return y + b if b is not None else y


# ---------------------------------------------------------------------------------------------------------
# vision tower

def pos_embed_interpolate(P, vcfg, grids):
    """fast_pos_embed_interpolate: bilinear taps of the side × side table per (h, w) raster position, then the rows
    reordered into merge-block order (t, h/2, w/2, 2, 2) and repeated for every frame."""
    table = P["model.visual.pos_embed.weight"]
    side = int(round(math.sqrt(vcfg["num_position_embeddings"])))
    m = vcfg["spatial_merge_size"]
    outs = []
    for (t, h, w) in grids:
        hs = np.linspace(0, side - 1, h)
        ws = np.linspace(0, side - 1, w)
        rows = []
        for i in range(h):
            for j in range(w):
                y, x = hs[i], ws[j]
                y0, x0 = int(y), int(x)
                y1, x1 = min(y0 + 1, side - 1), min(x0 + 1, side - 1)
                dy, dx = y - y0, x - x0
                e = ((1 - dy) * (1 - dx) * table[y0 * side + x0] + (1 - dy) * dx * table[y0 * side + x1]
                     + dy * (1 - dx) * table[y1 * side + x0] + dy * dx * table[y1 * side + x1])
                rows.append(e)
        pe = torch.stack(rows).view(h // m, m, w // m, m, -1).permute(0, 2, 1, 3, 4).reshape(h * w, -1)
        outs.append(pe.repeat(t, 1))
    return torch.cat(outs)


def vision_rotary(vcfg, grids):
    """rot_pos_emb: (row, col) of every patch in merge-block order; half the frequencies by row, half by col."""
    D, heads, m = vcfg["hidden_size"], vcfg["num_heads"], vcfg["spatial_merge_size"]
    dim = (D // heads) // 2
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    pos = []
    for (t, h, w) in grids:
        for _ in range(t):
            for bi in range(h // m):
                for bj in range(w // m):
                    for a in range(m):
                        for b in range(m):
                            pos.append((bi * m + a, bj * m + b))
    pos = torch.tensor(pos, dtype=torch.float64)
    freqs = torch.cat([pos[:, 0:1] * inv[None, :], pos[:, 1:2] * inv[None, :]], dim=1)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def merger(P, prefix, x, D, M, postshuffle):
    if postshuffle:
        y = layer_norm(x.reshape(-1, M), P[prefix + "norm.weight"], P[prefix + "norm.bias"])
    else:
        y = layer_norm(x, P[prefix + "norm.weight"], P[prefix + "norm.bias"]).reshape(-1, M)
    y = gelu_erf(linear(y, P[prefix + "linear_fc1.weight"], P[prefix + "linear_fc1.bias"]))
    return linear(y, P[prefix + "linear_fc2.weight"], P[prefix + "linear_fc2.bias"])


def vision_forward(P, cfg, pixels, grids):
    v = cfg["vision_config"]
    D, heads = v["hidden_size"], v["num_heads"]
    hd = D // heads
    M = D * v["spatial_merge_size"] ** 2
    W = P["model.visual.patch_embed.proj.weight"].reshape(D, -1)
    x = linear(pixels, W, P["model.visual.patch_embed.proj.bias"])
    x = x + pos_embed_interpolate(P, v, grids)
    cos, sin = vision_rotary(v, grids)
    bounds = [0]
    for (t, h, w) in grids:
        for _ in range(t):
            bounds.append(bounds[-1] + h * w)
    deep = []
    for b in range(v["depth"]):
        p = f"model.visual.blocks.{b}."
        xn = layer_norm(x, P[p + "norm1.weight"], P[p + "norm1.bias"])
        qkv = linear(xn, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"]).reshape(-1, 3, heads, hd)
        q, k, vv = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        q = q * cos[:, None, :] + rotate_half(q) * sin[:, None, :]
        k = k * cos[:, None, :] + rotate_half(k) * sin[:, None, :]
        outs = []
        for s in range(len(bounds) - 1):
            a, e = bounds[s], bounds[s + 1]
            qs, ks, vs = q[a:e].transpose(0, 1), k[a:e].transpose(0, 1), vv[a:e].transpose(0, 1)
            att = torch.softmax(qs @ ks.transpose(1, 2) / math.sqrt(hd), dim=-1)
            outs.append((att @ vs).transpose(0, 1).reshape(e - a, D))
        x = x + linear(torch.cat(outs), P[p + "attn.proj.weight"], P[p + "attn.proj.bias"])
        xn = layer_norm(x, P[p + "norm2.weight"], P[p + "norm2.bias"])
        x = x + linear(gelu_tanh(linear(xn, P[p + "mlp.linear_fc1.weight"], P[p + "mlp.linear_fc1.bias"])),
                       P[p + "mlp.linear_fc2.weight"], P[p + "mlp.linear_fc2.bias"])
        if b in v["deepstack_visual_indexes"]:
            i = v["deepstack_visual_indexes"].index(b)
            deep.append(merger(P, f"model.visual.deepstack_merger_list.{i}.", x, D, M, True))
    return merger(P, "model.visual.merger.", x, D, M, False), deep


# ---------------------------------------------------------------------------------------------------------
# rope index (images and Qwen3-VL videos), text model

def rope_index(cfg, ids, grids, vgrids=()):
    """get_rope_index for one unpadded sequence (Qwen3-VL: images as Qwen2-VL; every video grid (t, h, w) is split
    into t grids (1, h, w), one per timestamped vision_start … video_pad run, so frames carry no t offset). The next
    item is whichever of the next image_pad / video_pad comes first."""
    m = cfg["vision_config"]["spatial_merge_size"]
    img, vid = cfg["image_token_id"], cfg["video_token_id"]
    vgrids = [(1, h, w) for (t, h, w) in vgrids for _ in range(t)]
    pos = []
    st, gi, vi, nxt = 0, 0, 0, 0
    n = len(ids)
    while True:
        ei = ids.index(img, st) if img in ids[st:] else -1
        ev = ids.index(vid, st) if vid in ids[st:] else -1
        if ei < 0 and ev < 0:
            break
        if ei >= 0 and (ev < 0 or ei < ev):
            ed = ei
            t, h, w = grids[gi]
            gi += 1
        else:
            ed = ev
            t, h, w = vgrids[vi]
            vi += 1
        for j in range(ed - st):
            pos.append((nxt + j,) * 3)
        base = nxt + ed - st
        lh, lw = h // m, w // m
        for f in range(t):
            for r in range(lh):
                for c in range(lw):
                    pos.append((base + f, base + r, base + c))
        nxt = max(p for q in pos for p in q) + 1
        st = ed + t * lh * lw
    for j in range(n - st):
        pos.append((nxt + j,) * 3)
    pos = torch.tensor(pos, dtype=torch.float64).T  # [3, n]
    delta = int(pos.max().item()) + 1 - n
    return pos, delta


def text_rotary(cfg, pos):
    t = cfg["text_config"]
    d = t["head_dim"]
    sec = t["rope_scaling"]["mrope_section"]
    inv = 1.0 / (t["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = pos[:, :, None] * inv[None, None, :]  # [3, n, d/2]
    f = freqs[0].clone()
    for k in range(d // 2):  # interleaved: slot k takes h when k % 3 == 1 and k < 3·s1, w when k % 3 == 2 and k < 3·s2
        if k % 3 == 1 and k < 3 * sec[1]:
            f[:, k] = freqs[1, :, k]
        elif k % 3 == 2 and k < 3 * sec[2]:
            f[:, k] = freqs[2, :, k]
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def text_forward(P, cfg, ids, pos, image_embeds, deep, video_embeds=None, vdeep=None):
    t = cfg["text_config"]
    H, d, nh, nkv, eps = t["hidden_size"], t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"], t["rms_norm_eps"]
    n = len(ids)
    ids_t = torch.tensor(ids)
    x = P["model.language_model.embed_tokens.weight"][ids_t]
    mask = ids_t == cfg["image_token_id"]
    vmask = ids_t == cfg["video_token_id"]
    if image_embeds is not None:
        x = x.clone()
        x[mask] = image_embeds
    if video_embeds is not None:  # HF scatters the video features into the video pads separately
        x = x.clone()
        x[vmask] = video_embeds
    cos, sin = text_rotary(cfg, pos)
    causal = torch.full((n, n), float("-inf")).triu(1)
    for l in range(t["num_hidden_layers"]):
        p = f"model.language_model.layers.{l}."
        xn = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = rms_norm(linear(xn, P[p + "self_attn.q_proj.weight"]).view(n, nh, d), P[p + "self_attn.q_norm.weight"], eps)
        k = rms_norm(linear(xn, P[p + "self_attn.k_proj.weight"]).view(n, nkv, d), P[p + "self_attn.k_norm.weight"], eps)
        v = linear(xn, P[p + "self_attn.v_proj.weight"]).view(n, nkv, d)
        q = q * cos[:, None, :] + rotate_half(q) * sin[:, None, :]
        k = k * cos[:, None, :] + rotate_half(k) * sin[:, None, :]
        g = nh // nkv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        att = torch.softmax(q.transpose(0, 1) @ k.transpose(0, 1).transpose(1, 2) / math.sqrt(d) + causal, dim=-1)
        o = (att @ v.transpose(0, 1)).transpose(0, 1).reshape(n, nh * d)
        x = x + linear(o, P[p + "self_attn.o_proj.weight"])
        xn = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        gate = linear(xn, P[p + "mlp.gate_proj.weight"])
        x = x + linear(gate * torch.sigmoid(gate) * linear(xn, P[p + "mlp.up_proj.weight"]), P[p + "mlp.down_proj.weight"])
        if deep is not None and l < len(deep):  # _deepstack_process
            x = x.clone()
            x[mask] = x[mask] + deep[l]
        if vdeep is not None and l < len(vdeep):  # deepstack of the video features at the video pads
            x = x.clone()
            x[vmask] = x[vmask] + vdeep[l]
    x = rms_norm(x, P["model.language_model.norm.weight"], eps)
    return linear(x, P["lm_head.weight"])


def run(P, cfg, ids, pixels, grids):
    if grids:
        emb, deep = vision_forward(P, cfg, pixels, grids)
    else:
        emb, deep = None, None
    pos, delta = rope_index(cfg, ids, grids)
    return text_forward(P, cfg, ids, pos, emb, deep), emb, deep, pos, delta


def greedy(P, cfg, prompt, pixels, grids, steps, banned):
    """Greedy decoding by full recomputation; decode positions are index + delta on all three axes. Vision special
    tokens are never chosen (the project's generate bans them)."""
    ids = list(prompt)
    _, _, _, pos, delta = run(P, cfg, ids, pixels, grids)
    out = []
    with torch.no_grad():
        emb, deep = vision_forward(P, cfg, pixels, grids)
        for _ in range(steps):
            n = len(ids)
            extra = torch.arange(len(prompt), n, dtype=torch.float64) + delta
            full = torch.cat([pos, extra[None, :].expand(3, -1)], dim=1)
            z = text_forward(P, cfg, ids, full, emb, deep)[-1].clone()
            z[banned] = float("-inf")
            tok = int(torch.argmax(z).item())
            out.append(tok)
            ids.append(tok)
    return out


# ---------------------------------------------------------------------------------------------------------
# safetensors

def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f32(t):
    return t.detach().numpy().astype(np.float32)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "tiny-q3vl")
    os.makedirs(out_dir, exist_ok=True)
    cfg = CONFIG
    P = init_params(cfg, 20250)
    rng = np.random.default_rng(7)
    pd = 3 * 2 * 16 * 16
    expected, inputs = {}, {"cases": {}}

    # single: one image of grid (1, 4, 6) → 6 image tokens; completion = the assistant answer.
    g1 = [(1, 4, 6)]
    px1 = rng.standard_normal((24, pd)).astype(np.float32)
    prompt = [IM_START, 10, 11, 12, V_START] + [IMG] * 6 + [V_END, 13, 14, IM_END, IM_START, 15]
    completion = [40, 41, 42, 43, 44, IM_END]
    ids = prompt + completion
    logits, emb, deep, pos, _ = run(P, cfg, ids, torch.tensor(px1, dtype=torch.float64), g1)
    lp = torch.log_softmax(logits, dim=-1)
    cs = len(prompt)
    comp = torch.stack([lp[cs - 1 + j, ids[cs + j]] for j in range(len(completion))])
    loss = -comp.sum()
    loss.backward()
    expected["single.input_ids"] = np.array(ids, dtype=np.int64)
    expected["single.pixel_values"] = px1
    expected["single.positions"] = pos.numpy().astype(np.int64)
    expected["single.image_embeds"] = f32(emb)
    for i, dfe in enumerate(deep):
        expected[f"single.deepstack.{i}"] = f32(dfe)
    expected["single.logits"] = f32(logits)
    expected["single.completion_logprobs"] = f32(comp)
    for name, p in P.items():
        expected[f"single.grad.{canonical(name)}"] = f32(p.grad)
    inputs["cases"]["single"] = {"image_grid_thw": [list(g) for g in g1], "completion_start": cs, "completion_length": len(completion)}

    # multi: two images of different grids (the position table is interpolated to each).
    g2 = [(1, 4, 6), (1, 6, 4)]
    px2 = rng.standard_normal((48, pd)).astype(np.float32)
    prompt2 = [IM_START, 10, V_START] + [IMG] * 6 + [V_END, 11, V_START] + [IMG] * 6 + [V_END, 12, IM_END, IM_START]
    comp2 = [50, 51, 52, IM_END]
    ids2 = prompt2 + comp2
    with torch.no_grad():
        logits2, emb2, _, pos2, _ = run(P, cfg, ids2, torch.tensor(px2, dtype=torch.float64), g2)
    lp2 = torch.log_softmax(logits2, dim=-1)
    expected["multi.input_ids"] = np.array(ids2, dtype=np.int64)
    expected["multi.pixel_values"] = px2
    expected["multi.positions"] = pos2.numpy().astype(np.int64)
    expected["multi.image_embeds"] = f32(emb2)
    expected["multi.logits"] = f32(logits2)
    expected["multi.completion_logprobs"] = f32(torch.stack([lp2[len(prompt2) - 1 + j, ids2[len(prompt2) + j]] for j in range(len(comp2))]))
    inputs["cases"]["multi"] = {"image_grid_thw": [list(g) for g in g2], "completion_start": len(prompt2), "completion_length": len(comp2)}

    # generate: greedy from the single prompt.
    steps = 8
    toks = greedy(P, cfg, prompt, torch.tensor(px1, dtype=torch.float64), g1, steps, [V_START, V_END, IMG, 501])
    expected["generate.input_ids"] = np.array(prompt, dtype=np.int64)
    inputs["cases"]["generate"] = {"image_grid_thw": [list(g) for g in g1], "max_new_tokens": steps, "tokens": toks}

    # video: a video of grid (2, 4, 4) (two timestamped one-frame runs of 4 pads; the timestamp text "<0.2 seconds>",
    # "<1.2 seconds>" stands as plain token ids) followed by an image (1, 4, 6): the tower runs on the image, then the
    # video (get_image_features / get_video_features), and the features go to the image / video pads separately.
    for p in P.values():
        p.grad = None
    vrng = np.random.default_rng(11)
    gv_img, gv_vid = [(1, 4, 6)], [(2, 4, 4)]
    pxi = vrng.standard_normal((24, pd)).astype(np.float32)
    pxv = vrng.standard_normal((32, pd)).astype(np.float32)
    prompt3 = ([IM_START, 10, 60, 61, 62, V_START] + [VID] * 4 + [V_END, 60, 63, 62, V_START] + [VID] * 4
               + [V_END, 11, V_START] + [IMG] * 6 + [V_END, 12, IM_END, IM_START])
    comp3 = [70, 71, 72, IM_END]
    ids3 = prompt3 + comp3
    emb_i, deep_i = vision_forward(P, cfg, torch.tensor(pxi, dtype=torch.float64), gv_img)
    emb_v, deep_v = vision_forward(P, cfg, torch.tensor(pxv, dtype=torch.float64), gv_vid)
    pos3, _ = rope_index(cfg, ids3, gv_img, gv_vid)
    logits3 = text_forward(P, cfg, ids3, pos3, emb_i, deep_i, emb_v, deep_v)
    lp3 = torch.log_softmax(logits3, dim=-1)
    cs3 = len(prompt3)
    c3 = torch.stack([lp3[cs3 - 1 + j, ids3[cs3 + j]] for j in range(len(comp3))])
    (-c3.sum()).backward()
    expected["video.input_ids"] = np.array(ids3, dtype=np.int64)
    expected["video.pixel_values"] = pxi
    expected["video.pixel_values_videos"] = pxv
    expected["video.positions"] = pos3.numpy().astype(np.int64)
    expected["video.video_embeds"] = f32(emb_v)
    expected["video.logits"] = f32(logits3)
    expected["video.completion_logprobs"] = f32(c3)
    for name, p in P.items():
        expected[f"video.grad.{canonical(name)}"] = f32(p.grad)
    inputs["cases"]["video"] = {"image_grid_thw": [list(g) for g in gv_img], "video_grid_thw": [list(g) for g in gv_vid],
                                "completion_start": cs3, "completion_length": len(comp3)}

    save_safetensors(os.path.join(out_dir, "model.safetensors"), {k: f32(v) for k, v in P.items()})
    save_safetensors(os.path.join(out_dir, "expected.safetensors"), expected)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:  # the Qwen3-VL hub processor values
        json.dump({"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16, "temporal_patch_size": 2,
                   "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                   "processor_class": "Qwen3VLProcessor", "image_processor_type": "Qwen2VLImageProcessorFast"}, f, indent=2)
    with open(os.path.join(out_dir, "inputs.json"), "w") as f:
        inputs["tensors"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in expected.items()}
        json.dump(inputs, f, indent=1)
    print("wrote", out_dir, "generated", toks)


if __name__ == "__main__":
    main()
