#!/usr/bin/env python3
"""PyTorch baselines for the GPU kernel benchmark (run on the GPU machine; see README.md).

Times, on the same GPU and with the same sizes as bench_kernels.cpp, with CUDA events (median after warm-up,
random inputs):
  - the plain GEMM h @ W.T that a log-prob gather starts with (N tokens, H = 2048, V = 151,936, bf16), and the
    plain `log_softmax(h @ W.T).gather(targets)` path with its peak memory;
  - a sort-based top-p sampler at batch 128 (sort, softmax, cumsum, mask, multinomial: what HF's TopPLogitsWarper
    plus torch.multinomial do);
  - SDPA attention forward and backward at d = 128 and d = 80, sequence 1k .. 16k, causal and not, in TFLOP/s with
    the FlashAttention convention (forward 4·B·S²·H·D, backward 2.5× forward, causal counted as half), for each
    available backend (flash, cuDNN, efficient).
Writes one JSON object per line to --json FILE (read by compare.py).
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F


def time_ms(fn, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


OUT = []


def record(name, ms, metric_name, metric, extra=""):
    print(f"{name:<52} {ms:10.3f} ms   {metric_name:<10} {metric:10.2f} {extra}", flush=True)
    OUT.append({"name": name, "ms": ms, metric_name: metric})


def bench_logprob(tokens):
    N, H, V = tokens, 2048, 151936
    g = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(N, H, device="cuda", dtype=torch.bfloat16, generator=g)
    W = torch.randn(V, H, device="cuda", dtype=torch.bfloat16, generator=g) * 0.02
    t = torch.randint(0, V, (N,), device="cuda", generator=g)
    flops = 2.0 * N * V * H
    ms = time_ms(lambda: h @ W.T)
    record("torch: plain GEMM h@W.T (bf16 [N,V] out)", ms, "TFLOP/s", flops / (ms * 1e9), f"({N} tokens)")

    def full():
        logits = (h @ W.T).float()
        lp = torch.log_softmax(logits, dim=-1).gather(1, t[:, None])
        return lp

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    ms2 = time_ms(full, 2, 10)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    record("torch: log_softmax(h@W.T).gather fwd", ms2, "GEMM-ratio", ms / ms2, f"(peak extra {peak:.2f} GiB)")


def bench_sampler():
    B, V = 128, 151936
    g = torch.Generator(device="cuda").manual_seed(1)
    logits = torch.randn(B, V, device="cuda", generator=g) * 3.0

    def top_p(p=0.9, k=0):
        x = logits
        if k > 0:
            kth = torch.topk(x, k, dim=-1).values[:, -1:]
            x = x.masked_fill(x < kth, float("-inf"))
        sorted_logits, idx = torch.sort(x, descending=False, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - p)
        remove[:, -1:] = False
        remove = remove.scatter(1, idx, remove)
        x = x.masked_fill(remove, float("-inf"))
        return torch.multinomial(x.softmax(dim=-1), 1)

    for name, fn in [("top-p 0.9", lambda: top_p(0.9)), ("top-k 50 + top-p 0.9", lambda: top_p(0.9, 50))]:
        ms = time_ms(fn)
        record(f"torch: sort-based sampler B=128 V=151936 {name}", ms, "GB/s", B * V * 4.0 / (ms * 1e6))


def attention_flops(b, s, h, d, causal, backward):
    f = 4.0 * b * s * s * h * d
    if backward:
        f *= 2.5
    return f / 2 if causal else f


def bench_sdpa(quick):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    seqs = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
    for d, heads in [(128, 16), (80, 16)]:
        for s in seqs:
            b = max(1, 16384 // s)
            for causal in (False, True):
                q, k, v = (torch.randn(b, heads, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                           for _ in range(3))
                dout = torch.randn(b, heads, s, d, device="cuda", dtype=torch.bfloat16)
                for bname, backend in backends:
                    try:
                        with sdpa_kernel(backend):
                            fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                            ms_f = time_ms(fwd, 2, 10)
                            o = fwd()
                            ms_b = time_ms(lambda: torch.autograd.grad(o, (q, k, v), dout, retain_graph=True), 2, 10)
                    except RuntimeError as e:  # backend not available for this shape / GPU
                        print(f"sdpa {bname} d={d} s={s}: unavailable ({str(e).splitlines()[0][:80]})")
                        continue
                    tag = f"sdpa {bname} d={d} s={s} {'causal' if causal else 'full'}"
                    record(f"torch: {tag} fwd", ms_f, "TFLOP/s", attention_flops(b, s, heads, d, causal, False) / (ms_f * 1e9))
                    record(f"torch: {tag} bwd", ms_b, "TFLOP/s", attention_flops(b, s, heads, d, causal, True) / (ms_b * 1e9))
                del q, k, v, dout
                torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-attention", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}\n")
    tokens = min(args.tokens, 1024) if args.quick else args.tokens
    bench_logprob(tokens)
    bench_sampler()
    if not args.skip_attention:
        bench_sdpa(args.quick)
    if args.json:
        with open(args.json, "w") as f:
            for r in OUT:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
