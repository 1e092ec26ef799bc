#!/usr/bin/env python3
"""Cross-check of our reference fixtures against transformers' own Qwen2-VL / Qwen2.5-VL classes (issue 7, "first").

The fixtures in shared/fixtures/<cfg>/ were produced by an independent re-implementation (qwen_ref.py). This script
loads each fixture folder with transformers (`Qwen2_5_VLForConditionalGeneration` or `Qwen2VLForConditionalGeneration`,
eager attention, float64, on the CPU) and reports the largest absolute difference against the stored tensors:

  - logits of every case (single, multi, batch, batch_left, text_only), at positions where attention_mask == 1;
  - completion log-probs (log_softmax(logits[s + j - 1])[tok[s + j]]);
  - image embeddings where the case stores them (the model's visual tower output);
  - greedy generation tokens (generate, generate_batch; eos not honoured, as in the fixtures);
  - d(single.loss)/d(param) for every parameter (names mapped from transformers' layout to the hub names).

Any difference above 1e-6 is a finding: report it with the tensor name and the value. The stored tensors are fp32
roundings of float64 results, so ~1e-7 relative is the noise floor.

  python3 benchmarks/gpu/fixture_crosscheck.py [FIXTURES_DIR] [--json out.json]

FIXTURES_DIR defaults to the first of benchmarks/out/fixtures (git-ignored: copy ../shared/fixtures there and carry
`benchmarks/out` to the GPU machine), shared/fixtures, ../shared/fixtures.

Needs torch, transformers and safetensors (the GPU machine has them); no GPU, no network.
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file


def find_fixtures(arg):
    for cand in [arg, "benchmarks/out/fixtures", "shared/fixtures", "../shared/fixtures", "/work/shared/fixtures"]:
        if cand and os.path.isdir(cand):
            return cand
    sys.exit("fixtures folder not found: pass it as the first argument")


def load_model(folder, model_type):
    import transformers

    cls = (transformers.Qwen2_5_VLForConditionalGeneration if model_type == "qwen2_5_vl"
           else transformers.Qwen2VLForConditionalGeneration)
    try:
        model = cls.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager")
    except TypeError:  # older transformers spell it torch_dtype
        model = cls.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation="eager")
    model.eval()
    return model


def hub_name(name):
    """transformers >= 4.52 module names -> the hub checkpoint names the fixtures use."""
    for new, old in (("model.language_model.", "model."), ("model.visual.", "visual."), ("language_model.", "model.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


class Report:
    def __init__(self):
        self.rows = []

    def add(self, cfg, name, got, want, mask=None):
        got = got.detach().to(torch.float64).cpu()
        want = want.to(torch.float64)
        if got.shape != want.shape:
            self.rows.append((cfg, name, float("nan"), f"shape {tuple(got.shape)} vs {tuple(want.shape)}"))
            return
        diff = (got - want).abs()
        if mask is not None:
            diff = diff[mask]
        worst = diff.max().item() if diff.numel() else 0.0
        self.rows.append((cfg, name, worst, f"max |ref| {want.abs().max().item():.3g}"))

    def note(self, cfg, name, text):
        self.rows.append((cfg, name, float("nan"), text))

    def print(self):
        print(f"{'fixture':<10} {'tensor':<44} {'max abs diff':>14}  note")
        for cfg, name, worst, note in self.rows:
            flag = "  <-- FINDING (> 1e-6)" if worst == worst and worst > 1e-6 else ""
            print(f"{cfg:<10} {name:<44} {worst:14.3e}  {note}{flag}")


def completion_logprobs(logits, ids, start, length):
    lp = torch.log_softmax(logits, dim=-1)
    return torch.stack([lp[start + j - 1, ids[start + j]] for j in range(length)])


def run_fixture(folder, cfg, report):
    info = json.load(open(os.path.join(folder, "inputs.json")))
    exp = load_file(os.path.join(folder, "expected.safetensors"))
    model = load_model(folder, info["model_type"])
    cases = info["cases"]

    def forward(prefix, pixel_prefix=None):
        ids = exp[f"{prefix}.input_ids"]
        kw = {"input_ids": ids}
        if f"{prefix}.attention_mask" in exp:
            kw["attention_mask"] = exp[f"{prefix}.attention_mask"]
        pp = pixel_prefix or prefix
        if f"{pp}.pixel_values" in exp:
            kw["pixel_values"] = exp[f"{pp}.pixel_values"].to(torch.float64)
            kw["image_grid_thw"] = exp[f"{pp}.image_grid_thw"]
        return model(**kw).logits, ids, kw

    with torch.no_grad():
        for prefix in ("single", "multi", "text_only"):
            if prefix not in cases or f"{prefix}.logits" not in exp:
                continue
            logits, ids, kw = forward(prefix)
            report.add(cfg, f"{prefix}.logits", logits[0], exp[f"{prefix}.logits"].reshape(logits[0].shape))
            c = cases[prefix]
            lp = completion_logprobs(logits[0], ids[0], c["completion_start"], c["completion_length"])
            report.add(cfg, f"{prefix}.completion_logprobs", lp, exp[f"{prefix}.completion_logprobs"])
            if f"{prefix}.image_embeds" in exp and "pixel_values" in kw:
                try:
                    emb = model.model.get_image_features(kw["pixel_values"], kw["image_grid_thw"])
                    emb = torch.cat(list(emb), 0) if isinstance(emb, (list, tuple)) else emb
                    report.add(cfg, f"{prefix}.image_embeds", emb, exp[f"{prefix}.image_embeds"])
                except Exception as e:  # API differences across transformers versions
                    report.note(cfg, f"{prefix}.image_embeds", f"not compared: {e}")
        for prefix in ("batch", "batch_left"):
            if prefix not in cases:
                continue
            logits, ids, kw = forward(prefix, pixel_prefix="batch")
            mask = kw["attention_mask"].bool()
            report.add(cfg, f"{prefix}.logits (mask == 1)", logits, exp[f"{prefix}.logits"], mask=mask)
            c = cases[prefix]
            for r in range(2):
                lp = completion_logprobs(logits[r], ids[r], c["completion_start"][r], c["completion_length"][r])
                report.add(cfg, f"{prefix}.completion_logprobs_{r}", lp, exp[f"{prefix}.completion_logprobs_{r}"])
        for prefix, pixel_prefix in (("generate", "single"), ("generate_batch", "batch")):
            if prefix not in cases:
                continue
            c = cases[prefix]
            ids = exp[f"{prefix}.input_ids"]
            kw = {"input_ids": ids, "max_new_tokens": c["max_new_tokens"], "do_sample": False,
                  "eos_token_id": None, "pad_token_id": 495}
            if f"{prefix}.attention_mask" in exp:
                kw["attention_mask"] = exp[f"{prefix}.attention_mask"]
            kw["pixel_values"] = exp[f"{pixel_prefix}.pixel_values"].to(torch.float64)
            kw["image_grid_thw"] = exp[f"{pixel_prefix}.image_grid_thw"]
            out = model.generate(**kw)[:, ids.shape[1]:]
            want = torch.tensor(c["tokens"]).reshape(out.shape)
            mismatches = int((out != want).sum())
            report.rows.append((cfg, f"{prefix}.tokens", float(mismatches), "mismatching tokens (want 0)"))

    # Gradients of single.loss = -sum(completion log-probs) w.r.t. every parameter.
    model.zero_grad()
    ids = exp["single.input_ids"]
    out = model(input_ids=ids, pixel_values=exp["single.pixel_values"].to(torch.float64),
                image_grid_thw=exp["single.image_grid_thw"]).logits
    c = cases["single"]
    loss = -completion_logprobs(out[0], ids[0], c["completion_start"], c["completion_length"]).sum()
    report.add(cfg, "single.loss", loss.reshape(1), exp["single.loss"].reshape(1))
    loss.backward()
    worst_name, worst, compared = None, 0.0, 0
    for name, p in model.named_parameters():
        key = f"single.grad.{hub_name(name)}"
        if key not in exp:
            if name.startswith("lm_head") and info.get("tie_word_embeddings"):
                continue  # tied: the gradient is stored once, under the embedding
            report.note(cfg, key, f"no stored gradient for transformers parameter {name}")
            continue
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        d = (g.to(torch.float64) - exp[key].to(torch.float64)).abs().max().item()
        compared += 1
        if d > worst:
            worst, worst_name = d, key
    report.rows.append((cfg, f"single.grad.* ({compared} tensors)", worst, f"worst: {worst_name}"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures", nargs="?", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    root = find_fixtures(args.fixtures)
    import transformers

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, fixtures {root}\n")
    torch.set_grad_enabled(True)
    report = Report()
    for cfg in sorted(os.listdir(root)):
        folder = os.path.join(root, cfg)
        if os.path.isfile(os.path.join(folder, "expected.safetensors")):
            try:
                run_fixture(folder, cfg, report)
            except Exception as e:
                report.note(cfg, "(fixture)", f"failed: {type(e).__name__}: {e}")
    report.print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"fixture": c, "tensor": n, "max_abs_diff": w, "note": t} for c, n, w, t in report.rows], f, indent=1)


if __name__ == "__main__":
    main()
