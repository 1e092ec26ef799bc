#!/usr/bin/env python3
"""Side-by-side table of our kernels (bench_kernels --json) against the PyTorch baselines (baselines.py --json).

  python3 compare.py ours.json torch.json

Rows: the log-prob gather against the plain GEMM of the same size (target: our forward at >= 75% of the GEMM's
speed), our sampler against the sort-based PyTorch top-p at batch 128 (target: >= 5x faster), and our flash
attention against PyTorch SDPA's backends (target: at least the flash backend; stretch: cuDNN).
"""
import json
import sys


def load(path):
    with open(path) as f:
        return {r["name"]: r for r in (json.loads(line) for line in f if line.strip())}


def main():
    ours, torch_ = load(sys.argv[1]), load(sys.argv[2])
    rows = []
    gemm = torch_.get("torch: plain GEMM h@W.T (bf16 [N,V] out)")
    our_gemm = ours.get("logprob: plain GEMM h·W^T (bf16 [N,V] out)")
    if gemm and our_gemm:
        rows.append(("GEMM h·Wᵀ: ours (cuBLAS via loader) vs torch", our_gemm["ms"], gemm["ms"], gemm["ms"] / our_gemm["ms"], "~1.0"))
    for chunk in (4096, 8192, 16384):
        r = ours.get(f"logprob fwd chunk {chunk}")
        if r and gemm:
            rows.append((f"log-prob fwd chunk {chunk} vs torch plain GEMM", r["ms"], gemm["ms"], gemm["ms"] / r["ms"], ">= 0.75"))
    full = torch_.get("torch: log_softmax(h@W.T).gather fwd")
    r = ours.get("logprob fwd chunk 8192")
    if r and full:
        rows.append(("log-prob fwd chunk 8192 vs torch log_softmax path", r["ms"], full["ms"], full["ms"] / r["ms"], "> 1"))
    for case in ("top-p 0.9", "top-k 50 + top-p 0.9"):
        a = ours.get(f"sampler B=128 V=151936 {case}")
        b = torch_.get(f"torch: sort-based sampler B=128 V=151936 {case}")
        if a and b:
            rows.append((f"sampler {case} vs torch sort-based", a["ms"], b["ms"], b["ms"] / a["ms"], ">= 5"))
    print(f"{'comparison':<56} {'ours ms':>10} {'torch ms':>10} {'speed ratio':>12} {'target':>8}")
    for name, a, b, ratio, target in rows:
        print(f"{name:<56} {a:10.3f} {b:10.3f} {ratio:12.2f} {target:>8}")
    # Attention: our TFLOP/s against each SDPA backend on the same shape (FlashAttention FLOP convention).
    att = [(n, r) for n, r in ours.items() if n.startswith("attention ")]
    if att:
        print(f"\n{'attention (TFLOP/s)':<44} {'ours':>8} {'flash':>8} {'cudnn':>8} {'effic.':>8} {'ours/flash':>11}")
        for name, r in att:
            rest = name[len("attention "):]  # "d=128 s=1024 full fwd"
            base = {b: torch_.get(f"torch: sdpa {b} {rest}") for b in ("flash", "cudnn", "efficient")}
            vals = [base[b]["TFLOP/s"] if base[b] else float("nan") for b in ("flash", "cudnn", "efficient")]
            ratio = r["TFLOP/s"] / vals[0] if base["flash"] else float("nan")
            print(f"{rest:<44} {r['TFLOP/s']:8.1f} {vals[0]:8.1f} {vals[1]:8.1f} {vals[2]:8.1f} {ratio:11.2f}")
        print("target: ours/flash >= 1 (SDPA's flash backend), stretch: cuDNN")


if __name__ == "__main__":
    main()
