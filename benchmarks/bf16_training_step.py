"""A training step in bf16 autocast against fp32 on the CPU, side by side in one run, for both architectures over the
packaged all-MiniLM-L6-v2: forward, BCE loss, backward and an AdamW step on one batch of FAQ (query, passage)
pairs, the median of a few steps after a warm-up. bf16 pays only where the CPU computes it natively (AVX512-BF16,
AMX); on one without, it is emulated, and this measures by how much it is slower. The machine is recorded.

    .venv/bin/python benchmarks/bf16_training_step.py            # about 3 min on 2 AVX2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from rerank_utils.data.faq import load_faq
from rerank_utils.models.bridge import build_bridge_reranker, encode_pairs
from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.models.precision import cpu_has_bf16, machine_summary

OUT = Path(__file__).parent / "results" / "bf16_training_step.json"


def batch_pairs(n: int) -> tuple[list[tuple[str, str]], torch.Tensor]:
    ds = load_faq()
    qids, docs = list(ds.queries)[:n], list(ds.corpus)
    pairs, labels = [], []
    for i, q in enumerate(qids):  # alternately its answer and another one
        relevant = next(iter(ds.qrels[q]))
        pairs.append((ds.queries[q], ds.corpus[relevant if i % 2 == 0 else docs[(i * 7) % len(docs)]]))
        labels.append(1.0 if i % 2 == 0 else 0.0)
    return pairs, torch.tensor(labels)


def scorer(architecture: str, max_length: int):
    """``(model, pairs -> logits)`` for a training step."""
    torch.manual_seed(0)
    if architecture == "standard":
        ce = load_cross_encoder("default", max_length=max_length)
        hf, tok = ce.model, ce.tokenizer

        def forward(pairs):
            feats = tok([p[0] for p in pairs], [p[1] for p in pairs], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            return hf(**feats).logits[:, 0]

        return hf, forward
    module = build_bridge_reranker("default", max_seq_length=max_length)[0]

    def forward(pairs):
        return module(encode_pairs(module.tokenizer, pairs, max_length, module.max_segment_length))["scores"].reshape(-1)

    return module, forward


def step_seconds(architecture: str, bf16: bool, pairs, labels, steps: int, max_length: int) -> list[float]:
    model, forward = scorer(architecture, max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    times = []
    for i in range(steps + 1):  # the first is a warm-up
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(pairs)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8, help="pairs per step (default: %(default)s)")
    ap.add_argument("--max-length", type=int, default=128, help="(default: %(default)s)")
    ap.add_argument("--steps", type=int, default=4, help="timed fp32 steps; bf16 gets as many where native, 1 where emulated")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pairs, labels = batch_pairs(args.batch)
    native = cpu_has_bf16()
    results = {"machine": machine_summary(), "at": time.strftime("%Y-%m-%d %H:%M"), "batch": args.batch, "max_length": args.max_length}
    for arch in ("bridge", "standard"):
        fp32 = step_seconds(arch, False, pairs, labels, args.steps, args.max_length)
        bf16 = step_seconds(arch, True, pairs, labels, args.steps if native else 1, args.max_length)
        results[arch] = {"fp32_step_s": statistics.median(fp32), "bf16_step_s": statistics.median(bf16),
                         "bf16_speed_up": statistics.median(fp32) / statistics.median(bf16), "fp32_steps": fp32, "bf16_steps": bf16}
        print(arch, json.dumps(results[arch]), flush=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"| architecture | fp32 step s | bf16 autocast step s | bf16 speed-up |  ({results['machine']})")
    for arch in ("bridge", "standard"):
        r = results[arch]
        print(f"| {arch} | {r['fp32_step_s']:.2f} | {r['bf16_step_s']:.2f} | {r['bf16_speed_up']:.2f}x |")


if __name__ == "__main__":
    main()
