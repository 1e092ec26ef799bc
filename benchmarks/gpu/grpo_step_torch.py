#!/usr/bin/env python3
"""The transformers + PyTorch side of issue 7's end-to-end comparison: one GRPO step on a model with
Qwen2.5-VL-3B's exact config and random weights, on one GPU.

  python3 benchmarks/gpu/grpo_step_torch.py [--prompts 4] [--group 8] [--new-tokens 256] [--image 448]
                                            [--weights DIR] [--save-weights DIR] [--json out.json]

Step, as a GRPO trainer runs it (TRL / verl shape):
  1. generation: `model.generate` on a bf16 copy of the weights, G completions for each of P prompts (one image
     + a short question each; sampling at temperature 1, KV cache, SDPA attention), timed to the last token;
  2. old and reference log-probs: two no-grad bf16 forwards over prompt + completion (the reference model is the
     same weights here: the timing is what matters);
  3. update: forward + backward of the token-mean PPO-clip loss on random advantages, in micro-batches of
     --micro sequences, with fp32 master weights under bf16 autocast (the numerics of our GPU path), gradient
     checkpointing on, then a fused AdamW step.
Printed: tokens/s for generation (new tokens) and for the update (prompt + completion tokens), and the update's
MFU = 6 · N_params · tokens / time / peak, with peak = the measured bf16 GEMM rate on this GPU and 989 TFLOP/s (H100
SXM dense bf16 datasheet). Weights: random (seeded), or --weights DIR (a folder with config.json +
model.safetensors, e.g. the one our side loads); --save-weights DIR writes the random model there so both sides
load the same safetensors. Memory: fp32 weights, gradients and AdamW moments of 3.75 B parameters are 60 GB, plus
a bf16 copy during generation: run it on the nvidia-h200 kind (or lower --prompts / --micro on an H100).
"""
import argparse
import copy
import json
import time

import torch

QWEN25_VL_3B = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
    "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
    "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 11008, "max_position_embeddings": 128000, "max_window_layers": 70,
    "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True, "use_sliding_window": False,
    "vocab_size": 151936, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                      "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14,
                      "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
                      "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "temporal_patch_size": 2},
}
IMAGE_PAD, VISION_START, VISION_END, IM_START, IM_END = 151655, 151652, 151653, 151644, 151645


def gemm_peak():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * 20 / (time.perf_counter() - t)


def build_model(args):
    import transformers

    if args.weights:
        model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(
            args.weights, dtype=torch.float32, attn_implementation="sdpa")
    else:
        cfg = transformers.Qwen2_5_VLConfig(**QWEN25_VL_3B)
        torch.manual_seed(0)
        model = transformers.Qwen2_5_VLForConditionalGeneration(cfg).to(torch.float32)
        if args.save_weights:
            model.save_pretrained(args.save_weights, safe_serialization=True)
    return model.cuda()


def make_prompts(args, grid_side):
    """P prompts: <im_start>user\\n<vision_start><image_pad>×N<vision_end>question<im_end>\\n<im_start>assistant\\n."""
    n_img = (grid_side // 2) ** 2
    g = torch.Generator().manual_seed(1)
    ids = []
    for _ in range(args.prompts):
        q = torch.randint(1000, 100000, (24,), generator=g).tolist()
        ids.append([IM_START, 872, 198, VISION_START] + [IMAGE_PAD] * n_img + [VISION_END] + q + [IM_END, 198, IM_START, 77091, 198])
    patches = grid_side * grid_side
    pixel_values = torch.randn(args.prompts * patches, 3 * 2 * 14 * 14, generator=g)
    grid = torch.tensor([[1, grid_side, grid_side]] * args.prompts)
    return torch.tensor(ids), pixel_values, grid, patches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--image", type=int, default=448, help="image side in pixels (multiple of 28)")
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--save-weights", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    peak_measured = gemm_peak()
    model = build_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}, params {n_params:,}, "
          f"bf16 GEMM peak measured {peak_measured / 1e12:.0f} TFLOP/s")
    grid_side = args.image // 14
    ids, pixels, grid, patches = make_prompts(args, grid_side)
    G, P = args.group, args.prompts
    # Every prompt repeated G times (its image too).
    ids_g = ids.repeat_interleave(G, 0).cuda()
    pix_g = pixels.view(P, patches, -1).repeat_interleave(G, 0).reshape(P * G * patches, -1).cuda()
    grid_g = grid.repeat_interleave(G, 0).cuda()
    out = {}

    # 1. generation from a bf16 copy of the weights (what a rollout engine serves), KV cache.
    model.eval()
    gen_model = copy.deepcopy(model).to(torch.bfloat16)
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        seqs = gen_model.generate(input_ids=ids_g, attention_mask=torch.ones_like(ids_g), pixel_values=pix_g,
                              image_grid_thw=grid_g, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                              do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    torch.cuda.synchronize()
    gen_s = time.perf_counter() - t
    new_tokens = (seqs.shape[1] - ids_g.shape[1]) * seqs.shape[0]
    out["generation_tokens_per_s"] = new_tokens / gen_s
    print(f"generation: {new_tokens} new tokens in {gen_s:.2f} s = {new_tokens / gen_s:.0f} tokens/s")

    L0 = ids_g.shape[1]
    mask = torch.zeros_like(seqs, dtype=torch.float32)
    mask[:, L0:] = 1.0

    def logprobs(m, batch_ids, batch_pix, batch_grid):
        logits = m(input_ids=batch_ids, pixel_values=batch_pix, image_grid_thw=batch_grid).logits[:, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, batch_ids[:, 1:, None]).squeeze(-1)

    def micro_batches():
        for s in range(0, seqs.shape[0], args.micro):
            e = min(seqs.shape[0], s + args.micro)
            yield s, e, seqs[s:e], pix_g[s * patches:e * patches], grid_g[s:e]

    # 2. old and reference log-probs (bf16 weights, no grad).
    torch.cuda.synchronize()
    t = time.perf_counter()
    old = []
    with torch.no_grad():
        for _ in range(2):  # old policy, then reference
            for s, e, b_ids, b_pix, b_grid in micro_batches():
                old.append(logprobs(gen_model, b_ids, b_pix, b_grid))
    torch.cuda.synchronize()
    lp_s = time.perf_counter() - t
    tokens = seqs.numel()
    out["logprob_tokens_per_s"] = 2 * tokens / lp_s
    print(f"old + ref log-probs: {2 * tokens} tokens in {lp_s:.2f} s = {2 * tokens / lp_s:.0f} tokens/s")
    del gen_model
    torch.cuda.empty_cache()

    # 3. update: PPO-clip token-mean loss, fp32 master weights, bf16 autocast, gradient checkpointing, fused AdamW.
    model.train()
    model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    adv = torch.randn(seqs.shape[0], device="cuda")
    ntok = mask[:, 1:].sum()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i, (s, e, b_ids, b_pix, b_grid) in enumerate(micro_batches()):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lp = logprobs(model, b_ids, b_pix, b_grid)
        ratio = torch.exp(lp - old[i])
        a = adv[s:e, None]
        loss = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.28))
        loss = (loss * mask[s:e, 1:]).sum() / ntok
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    upd_s = time.perf_counter() - t
    flops = 6.0 * n_params * tokens
    out.update({"update_tokens_per_s": tokens / upd_s, "update_mfu_measured_peak": flops / upd_s / peak_measured,
                "update_mfu_989": flops / upd_s / 989e12, "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30})
    print(f"update: {tokens} tokens in {upd_s:.2f} s = {tokens / upd_s:.0f} tokens/s, MFU {100 * out['update_mfu_measured_peak']:.1f}% "
          f"of the measured peak ({100 * out['update_mfu_989']:.1f}% of 989 TFLOP/s); peak memory {out['peak_memory_gib']:.1f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
