#!/usr/bin/env python3
"""
PyTorch baseline for benchmarks/model-vs-torch.ts: the same Qwen2.5-VL model (read from the same
config.json + model.safetensors folder), fp32 on the CPU, written for PyTorch's best eager speed:

  - q/k/v and gate/up projections are fused into one matmul each (the concatenated weight is the leaf
    parameter, so gradients and their norm are those of the unfused model);
  - attention is batched [B, L] with equal-length rows (no padding), GQA without copying K/V: the query
    heads that share a KV head are stacked along the rows, so one baddbmm (scale and causal mask fused into
    it) and one bmm per layer cover every head; no Python loop over heads or sequences;
  - the vision tower batches all windows of equal size into one attention call;
  - the loss is F.cross_entropy(reduction='sum') (= -sum of the targets' log-probs, fused log-softmax);
  - generation: one prefill over the whole batch, then a KV-cached decode loop over preallocated cache
    tensors [layers, B, kv_heads, max_len, head_dim], one forward per step for the whole batch, rotary
    tables precomputed once, under torch.inference_mode().

Threads: torch.set_num_threads(N) for the intra-op pool, and OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set to
N before torch loads (torch.set_num_threads does not reach OpenBLAS).

Usage (the driver calls it; run by hand with /usr/bin/python3):
  torch_qwen.py check   --threads N                    -> JSON: torch version, BLAS library, 1024^2 matmul GFLOP/s
  torch_qwen.py sanity  --model DIR --inputs FILE --out FILE --threads N
        -> writes logits of two single sequences, greedy tokens and their log-probs of the generation batch
           into FILE (safetensors);
           prints JSON {loss, grad_norm} of one training step on the batch with an image
  torch_qwen.py serve   --model DIR --inputs FILE --threads N [--new-tokens T]
        -> prints {"ready": true, ...}, then runs one measured iteration per line read from stdin
           (train_text | train_image | generate | quit) and prints its timings (ms) as one JSON line:
           train_*: fwd_ms, bwd_ms, total_ms (gradients reset to None before each); generate: prefill_ms
           (to the first token), total_ms. The driver interleaves these with our runs so both sides meet
           the same machine load. By hand: printf 'train_text\\ngenerate\\n' | torch_qwen.py serve ...
Inputs FILE (safetensors, written by the driver): train.ids I32 [B, L]; trainimg.ids I32 [B, L],
trainimg.pixels F32 [patches, C*T*P*P], trainimg.grid I32 [images, 3], trainimg.rows I32 [images];
gen.ids I32 [G, P].
"""
import argparse
import json
import math
import os
import struct
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "sanity", "serve"])
    ap.add_argument("--model", help="model folder (config.json + model.safetensors)")
    ap.add_argument("--inputs", help="inputs safetensors written by the driver")
    ap.add_argument("--out", help="sanity mode: output safetensors file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    return ap.parse_args()


ARGS = parse_args()
# Must happen before torch (and with it OpenBLAS / OpenMP) is loaded.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)

# ----------------------------------------------------------------------------------------------------------
# safetensors (numpy): u64 header length | JSON header | data; offsets relative to the end of the header
_DT = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = info["dtype"]
        if dt == "BF16":
            a = (np.frombuffer(blob, dtype="<u2", count=(e - b) // 2, offset=8 + n + b).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(blob, dtype=np.dtype(_DT[dt]).newbyteorder("<"), count=(e - b) // np.dtype(_DT[dt]).itemsize, offset=8 + n + b)
        out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header, off, blobs = {}, 0, []
    for k in names:
        a = np.ascontiguousarray(tensors[k].detach().cpu().numpy())
        st = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        header[k] = {"dtype": st, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------------------------------------
# config (flat Hugging Face layout, Qwen2.5-VL only: that is what the driver writes)
class Cfg:
    def __init__(self, d):
        if d.get("model_type") != "qwen2_5_vl":
            raise SystemExit(f"torch_qwen.py handles qwen2_5_vl configs only, got {d.get('model_type')}")
        self.V = d["vocab_size"]
        self.H = d["hidden_size"]
        self.I = d["intermediate_size"]
        self.layers = d["num_hidden_layers"]
        self.nh = d["num_attention_heads"]
        self.nkv = d["num_key_value_heads"]
        self.hd = self.H // self.nh
        self.eps = float(d["rms_norm_eps"])
        self.theta = float(d["rope_theta"])
        self.mrope = list(d["rope_scaling"]["mrope_section"])
        self.tied = bool(d.get("tie_word_embeddings", False))
        self.image_token = d["image_token_id"]
        self.vision_start = d["vision_start_token_id"]
        self.banned = [d["image_token_id"], d["video_token_id"], d["vision_start_token_id"], d["vision_end_token_id"]]
        v = d["vision_config"]
        self.vdepth = v["depth"]
        self.vD = v["hidden_size"]
        self.vnh = v["num_heads"]
        self.vhd = self.vD // self.vnh
        self.vI = v["intermediate_size"]
        self.patch = v.get("patch_size", v.get("spatial_patch_size", 14))
        self.merge = v.get("spatial_merge_size", 2)
        self.window = v.get("window_size", 112)
        self.full_blocks = set(v.get("fullatt_block_indexes", []))
        assert v.get("hidden_act", "silu") == "silu" and d.get("hidden_act", "silu") == "silu"


# ----------------------------------------------------------------------------------------------------------
def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model:
    def __init__(self, cfg, t, train):
        self.cfg = cfg
        c = cfg
        P = {}
        P["embed"] = t["model.embed_tokens.weight"]
        P["lm_head"] = P["embed"] if c.tied else t["lm_head.weight"]
        P["norm"] = t["model.norm.weight"]
        self.layers = []
        for i in range(c.layers):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            self.layers.append({
                "ln1": t[p + "input_layernorm.weight"],
                "wqkv": torch.cat([t[a + "q_proj.weight"], t[a + "k_proj.weight"], t[a + "v_proj.weight"]], 0).contiguous(),
                "bqkv": torch.cat([t[a + "q_proj.bias"], t[a + "k_proj.bias"], t[a + "v_proj.bias"]], 0).contiguous(),
                "wo": t[a + "o_proj.weight"],
                "ln2": t[p + "post_attention_layernorm.weight"],
                "wgu": torch.cat([t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"]], 0).contiguous(),
                "wd": t[p + "mlp.down_proj.weight"],
            })
        self.vis = {"patch": t["visual.patch_embed.proj.weight"].reshape(c.vD, -1).contiguous(), "blocks": []}
        for i in range(c.vdepth):
            p = f"visual.blocks.{i}."
            self.vis["blocks"].append({
                "n1": t[p + "norm1.weight"], "wqkv": t[p + "attn.qkv.weight"], "bqkv": t[p + "attn.qkv.bias"],
                "wo": t[p + "attn.proj.weight"], "bo": t[p + "attn.proj.bias"], "n2": t[p + "norm2.weight"],
                "wgu": torch.cat([t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"]], 0).contiguous(),
                "bgu": torch.cat([t[p + "mlp.gate_proj.bias"], t[p + "mlp.up_proj.bias"]], 0).contiguous(),
                "wd": t[p + "mlp.down_proj.weight"], "bd": t[p + "mlp.down_proj.bias"],
            })
        m = "visual.merger."
        self.vis.update({"lnq": t[m + "ln_q.weight"], "w0": t[m + "mlp.0.weight"], "b0": t[m + "mlp.0.bias"],
                         "w2": t[m + "mlp.2.weight"], "b2": t[m + "mlp.2.bias"]})
        self.P = P
        self.params = self._leaves()
        for x in self.params:
            x.requires_grad_(train)
        self.inv_freq = 1.0 / (c.theta ** (torch.arange(0, c.hd, 2, dtype=torch.float32) / c.hd))
        self.sel = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(c.mrope)])
        self._masks = {}

    def _leaves(self):
        seen, out = set(), []
        vals = list(self.P.values())
        for l in self.layers:
            vals += list(l.values())
        for b in self.vis["blocks"]:
            vals += list(b.values())
        vals += [v for k, v in self.vis.items() if k != "blocks"]
        for v in vals:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    # ---------------------------------------------------------------- positions
    def rope_index(self, ids, images):
        """M-RoPE position ids [3, B, L] for rows of ids (LongTensor [B, L]); images: list of (row, (t, h, w))."""
        c = self.cfg
        B, L = ids.shape
        pos = torch.arange(L).view(1, 1, L).expand(3, B, L).clone()
        by_row = {}
        for r, g in images:
            by_row.setdefault(r, []).append(g)
        for r, grids in by_row.items():
            row = ids[r].tolist()
            cols, nxt, st = [], 0, 0
            for (gt, gh, gw) in grids:
                ed = row.index(c.image_token, st)
                cols += [(nxt + j,) * 3 for j in range(ed - st)]
                base = nxt + (ed - st)
                lh, lw = gh // c.merge, gw // c.merge
                mx = base
                for _t in range(gt):
                    for y in range(lh):
                        for x in range(lw):
                            cols.append((base, base + y, base + x))   # images: temporal index 0
                            mx = max(mx, base + y, base + x)
                nxt = mx + 1
                st = ed + gt * lh * lw
            cols += [(nxt + j,) * 3 for j in range(L - st)]
            pos[:, r] = torch.tensor(cols, dtype=torch.long).t()
        return pos

    def cos_sin(self, pos):
        """pos [3, B, L] -> cos, sin [B, L, 1, hd] (channel j of each half uses axis sel[j])."""
        half = pos[self.sel].permute(1, 2, 0).to(torch.float32) * self.inv_freq
        emb = torch.cat([half, half], -1)
        return emb.cos().unsqueeze(2), emb.sin().unsqueeze(2)

    def causal_mask(self, L, rep):
        key = (L, rep)
        if key not in self._masks:
            m = torch.full((L, L), float("-inf")).triu_(1)
            self._masks[key] = m.repeat(rep, 1).contiguous()       # rows: (group member, query position)
        return self._masks[key]

    # ---------------------------------------------------------------- vision
    def vision(self, pixels, grids):
        c, V = self.cfg, self.vis
        D, nh, hd, M = c.vD, c.vnh, c.vhd, c.merge
        unit = M * M
        N = pixels.shape[0]
        x = pixels @ V["patch"].t()
        # (row, col) of every patch in processor order: t, block row, block col, row in block, col in block
        pos = []
        for (t, h, w) in grids:
            n = torch.arange(h * w)
            blk = n // unit
            rows = (blk // (w // M)) * M + (n // M) % M
            cols = (blk % (w // M)) * M + n % M
            pos.append(torch.stack([rows, cols], -1).repeat(t, 1))
        pos = torch.cat(pos, 0).to(torch.float32)
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd // 2, 2, dtype=torch.float32) / (hd // 2)))
        ang = torch.cat([pos[:, :1] * inv, pos[:, 1:] * inv], -1)
        # window order over merge units (window side in units = window_size / merge / patch)
        ws = c.window // M // c.patch
        widx, cu_win, cu_full, off = [], [0], [0], 0
        for (t, h, w) in grids:
            lh, lw = h // M, w // M
            for tt in range(t):
                for r0 in range(0, lh, ws):
                    for c0 in range(0, lw, ws):
                        mem = [off + tt * lh * lw + r * lw + q for r in range(r0, min(r0 + ws, lh)) for q in range(c0, min(c0 + ws, lw))]
                        widx += mem
                        cu_win.append(cu_win[-1] + len(mem) * unit)
                cu_full.append(cu_full[-1] + h * w)
            off += t * lh * lw
        widx = torch.tensor(widx, dtype=torch.long)
        x = x.view(N // unit, unit, D)[widx].reshape(N, D)
        ang = ang.view(N // unit, unit, -1)[widx].reshape(N, -1)
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)      # [N, 1, hd]
        scale = hd ** -0.5
        for i, b in enumerate(V["blocks"]):
            cu = cu_full if i in c.full_blocks else cu_win
            h = rms_norm(x, b["n1"], 1e-6)
            qkv = F.linear(h, b["wqkv"], b["bqkv"]).view(N, 3, nh, hd)
            q = qkv[:, 0] * cos + rotate_half(qkv[:, 0]) * sin
            k = qkv[:, 1] * cos + rotate_half(qkv[:, 1]) * sin
            v = qkv[:, 2]
            lens = [e - s for s, e in zip(cu[:-1], cu[1:])]
            if all(n == lens[0] for n in lens):                        # equal windows: one batched call
                S, n = len(lens), lens[0]
                qs = q.reshape(S, n, nh, hd).transpose(1, 2).reshape(S * nh, n, hd)
                ks = k.reshape(S, n, nh, hd).permute(0, 2, 3, 1).reshape(S * nh, hd, n)
                vs = v.reshape(S, n, nh, hd).transpose(1, 2).reshape(S * nh, n, hd)
                p = torch.softmax(torch.bmm(qs, ks) * scale, -1)
                o = torch.bmm(p, vs).view(S, nh, n, hd).transpose(1, 2).reshape(N, D)
            else:
                outs = []
                for s, e in zip(cu[:-1], cu[1:]):
                    qs, ks, vs = (z[s:e].transpose(0, 1) for z in (q, k, v))
                    p = torch.softmax(torch.matmul(qs, ks.transpose(1, 2)) * scale, -1)
                    outs.append(torch.matmul(p, vs).transpose(0, 1))
                o = torch.cat(outs, 0).reshape(N, D)
            x = x + F.linear(o, b["wo"], b["bo"])
            h = rms_norm(x, b["n2"], 1e-6)
            g, u = F.linear(h, b["wgu"], b["bgu"]).chunk(2, -1)
            x = x + F.linear(F.silu(g) * u, b["wd"], b["bd"])
        h = rms_norm(x, V["lnq"], 1e-6).reshape(N // unit, unit * D)
        y = F.linear(F.gelu(F.linear(h, V["w0"], V["b0"])), V["w2"], V["b2"])
        return y[torch.argsort(widx)]

    # ---------------------------------------------------------------- decoder
    def layer(self, x, l, cos, sin, mask):
        """Causal self-attention + MLP over equal-length rows x [B, L, H]; returns (x, k, v) with k, v [B, L, nkv, hd]."""
        c = self.cfg
        B, L, H = x.shape
        nh, nkv, hd = c.nh, c.nkv, c.hd
        rep, qd, kvd = nh // nkv, nh * hd, nkv * hd
        h = rms_norm(x, l["ln1"], c.eps)
        qkv = F.linear(h, l["wqkv"], l["bqkv"])
        q = qkv[..., :qd].view(B, L, nh, hd)
        k = qkv[..., qd:qd + kvd].view(B, L, nkv, hd)
        v = qkv[..., qd + kvd:].view(B, L, nkv, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        qg = q.view(B, L, nkv, rep, hd).permute(0, 2, 3, 1, 4).reshape(B * nkv, rep * L, hd)
        kg = k.permute(0, 2, 3, 1).reshape(B * nkv, hd, L)
        vg = v.permute(0, 2, 1, 3).reshape(B * nkv, L, hd)
        p = torch.softmax(torch.baddbmm(mask, qg, kg, alpha=hd ** -0.5), -1)
        o = torch.bmm(p, vg).view(B, nkv, rep, L, hd).permute(0, 3, 1, 2, 4).reshape(B, L, qd)
        x = x + F.linear(o, l["wo"])
        h = rms_norm(x, l["ln2"], c.eps)
        g, u = F.linear(h, l["wgu"]).chunk(2, -1)
        x = x + F.linear(F.silu(g) * u, l["wd"])
        return x, k, v

    def embed(self, ids, pixels=None, grids=None, image_rows=None):
        x = F.embedding(ids, self.P["embed"])
        images = []
        if pixels is not None and len(grids):
            feats = self.vision(pixels, grids)
            mask = ids == self.cfg.image_token
            x = x.masked_scatter(mask.unsqueeze(-1), feats)
            images = list(zip(image_rows, grids))
        return x, images

    def hidden(self, ids, pixels=None, grids=None, image_rows=None, cache=None):
        """Final-normed hidden states [B, L, H]; fills cache (k, v tensors) when given."""
        c = self.cfg
        B, L = ids.shape
        x, images = self.embed(ids, pixels, grids, image_rows)
        cos, sin = self.cos_sin(self.rope_index(ids, images))
        mask = self.causal_mask(L, c.nh // c.nkv)
        for i, l in enumerate(self.layers):
            x, k, v = self.layer(x, l, cos, sin, mask)
            if cache is not None:
                cache[0][i, :, :, :L] = k.transpose(1, 2)
                cache[1][i, :, :, :L] = v.transpose(1, 2)
        return rms_norm(x, self.P["norm"], c.eps)

    def loss(self, ids, pixels=None, grids=None, image_rows=None):
        """-sum over rows and positions t < L-1 of log p(ids[t+1] | ids[<=t])."""
        h = self.hidden(ids, pixels, grids, image_rows)
        B, L, H = h.shape
        logits = F.linear(h[:, :-1].reshape(-1, H), self.P["lm_head"])
        return F.cross_entropy(logits, ids[:, 1:].reshape(-1), reduction="sum")

    # ---------------------------------------------------------------- generation
    @torch.inference_mode()
    def generate(self, ids, new_tokens, timings=None):
        """Greedy KV-cached generation for equal-length prompts ids [B, P]; returns (tokens [B, T], logprobs [B, T])."""
        c = self.cfg
        B, Pn = ids.shape
        T = Pn + new_tokens
        nh, nkv, hd = c.nh, c.nkv, c.hd
        rep, qd, kvd = nh // nkv, nh * hd, nkv * hd
        scale = hd ** -0.5
        kc = torch.empty(c.layers, B, nkv, T, hd)
        vc = torch.empty(c.layers, B, nkv, T, hd)
        t0 = time.perf_counter()
        h = self.hidden(ids, cache=(kc, vc))[:, -1]
        # rotary tables of every decode position, once (text only: the three axes coincide)
        pos = torch.arange(T).view(1, 1, T).expand(3, 1, T)
        cos_all, sin_all = self.cos_sin(pos)                       # [1, T, 1, hd]
        banned = torch.tensor(c.banned, dtype=torch.long)
        toks = torch.empty(B, new_tokens, dtype=torch.long)
        lps = torch.empty(B, new_tokens)
        t_prefill = None
        for step in range(new_tokens):
            logits = F.linear(h, self.P["lm_head"])
            lse = torch.logsumexp(logits, -1)          # log-probs over the whole vocabulary, as training computes them
            logits.index_fill_(1, banned, float("-inf"))  # the vision special tokens are never generated
            tok = logits.argmax(-1)
            toks[:, step] = tok
            lps[:, step] = logits.gather(1, tok.view(-1, 1)).view(-1) - lse
            if step == 0:
                t_prefill = time.perf_counter() - t0
            if step + 1 == new_tokens:
                break
            p = Pn + step
            cos, sin = cos_all[:, p:p + 1], sin_all[:, p:p + 1]
            x = F.embedding(tok.view(B, 1), self.P["embed"])
            for i, l in enumerate(self.layers):
                hn = rms_norm(x, l["ln1"], c.eps)
                qkv = F.linear(hn, l["wqkv"], l["bqkv"])
                q = qkv[..., :qd].view(B, 1, nh, hd)
                k = qkv[..., qd:qd + kvd].view(B, 1, nkv, hd)
                q = q * cos + rotate_half(q) * sin
                k = k * cos + rotate_half(k) * sin
                kc[i, :, :, p] = k[:, 0]
                vc[i, :, :, p] = qkv[..., qd + kvd:].view(B, nkv, hd)
                K = kc[i, :, :, :p + 1]                             # [B, nkv, p+1, hd]
                Vv = vc[i, :, :, :p + 1]
                s = torch.matmul(q.view(B, nkv, rep, hd), K.transpose(-1, -2)) * scale
                o = torch.matmul(torch.softmax(s, -1), Vv).reshape(B, 1, qd)
                x = x + F.linear(o, l["wo"])
                hn = rms_norm(x, l["ln2"], c.eps)
                g, u = F.linear(hn, l["wgu"]).chunk(2, -1)
                x = x + F.linear(F.silu(g) * u, l["wd"])
            h = rms_norm(x[:, 0], self.P["norm"], c.eps)
        if timings is not None:
            timings["prefill_ms"] = 1e3 * t_prefill
        return toks, lps


# ----------------------------------------------------------------------------------------------------------
def blas_libraries():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(p)
                if "blas" in base or "lapack" in base:
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    return sorted(libs)


def matmul_gflops(n=1024, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def load(args, train):
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = Cfg(json.load(f))
    return Model(cfg, read_safetensors(os.path.join(args.model, "model.safetensors")), train)


def image_inputs(inp):
    grids = [tuple(int(v) for v in g) for g in inp["trainimg.grid"].tolist()]
    return inp["trainimg.pixels"], grids, [int(r) for r in inp["trainimg.rows"].tolist()]


def main():
    args = ARGS
    if args.mode == "check":
        gf = matmul_gflops()
        print(json.dumps({
            "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_libraries(),
            "matmul_1024_gflops": gf, "python": sys.version.split()[0],
        }))
        return
    inp = read_safetensors(args.inputs)
    pixels, grids, rows = image_inputs(inp)
    train_ids = inp["train.ids"].long()
    img_ids = inp["trainimg.ids"].long()
    gen_ids = inp["gen.ids"].long()

    if args.mode == "sanity":
        m = load(args, train=True)
        out = {}
        with torch.no_grad():
            h = m.hidden(train_ids[:1])
            out["logits.text"] = F.linear(h[0], m.P["lm_head"])
            r0 = [i for i, r in enumerate(rows) if r == 0]
            n0 = sum(grids[i][0] * grids[i][1] * grids[i][2] for i in r0)
            h = m.hidden(img_ids[:1], pixels[:n0], [grids[i] for i in r0], [0] * len(r0))
            out["logits.image"] = F.linear(h[0], m.P["lm_head"])
        loss = m.loss(img_ids, pixels, grids, rows)
        loss.backward()
        gsq = sum(float((p.grad.double() ** 2).sum()) for p in m.params if p.grad is not None)
        toks, lps = m.generate(gen_ids, args.new_tokens)
        out["gen.tokens"] = toks.to(torch.int32)
        out["gen.logprobs"] = lps
        write_safetensors(args.out, out)
        print(json.dumps({"loss": float(loss), "grad_norm": math.sqrt(gsq)}))
        return

    # serve: one measured iteration per command line read from stdin, one JSON line back per command
    m = load(args, train=True)
    tokens = {"train_text": int(train_ids.numel()), "train_image": int(img_ids.numel())}

    def train(ids, *img):
        for p in m.params:
            p.grad = None
        t0 = time.perf_counter()
        loss = m.loss(ids, *img)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        return {"fwd_ms": 1e3 * (t1 - t0), "bwd_ms": 1e3 * (t2 - t1), "total_ms": 1e3 * (t2 - t0)}

    print(json.dumps({"ready": True, "threads": torch.get_num_threads(), "tokens": tokens}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "train_text":
            res = train(train_ids)
        elif cmd == "train_image":
            res = train(img_ids, pixels, grids, rows)
        elif cmd == "generate":
            res = {}
            t0 = time.perf_counter()
            m.generate(gen_ids, args.new_tokens, res)
            res["total_ms"] = 1e3 * (time.perf_counter() - t0)
            res["new_tokens"] = int(gen_ids.shape[0] * args.new_tokens)
        elif cmd in ("quit", ""):
            break
        else:
            res = {"error": f"unknown command {cmd!r} (train_text, train_image, generate, quit)"}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
