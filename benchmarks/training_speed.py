"""Training throughput and peak memory: our recipe (`fine_tune`, CrossEncoderTrainer) against the guide's
style of loop (`CrossEncoder.fit` with its defaults), on the same training pairs, one epoch each.

Each variant runs in its own process so that its peak resident memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/training_speed.py --rows 640
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "training_speed.json"
VARIANTS = {
    "ours: fine_tune, BCE, batch 16, max_length 128": "ours",
    "guide style: CrossEncoder.fit, batch 16, max_length 512 (model default), warmup 100": "fit",
}


def rows_for_benchmark(n: int) -> list[dict]:
    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.training.mining import MiningConfig, mine_negatives
    from rerank_utils.training.samples import training_rows

    train = prepare_splits("cpu", "faq-en", seed=42)["train"]
    mined = mine_negatives(train, MiningConfig("random", num_negatives=4, seed=42))
    return training_rows(train, mined.negatives, "bce")[:n]


def child(kind: str, n: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = rows_for_benchmark(n)
    t0 = time.perf_counter()
    if kind == "ours":
        from rerank_utils.training.arguments import TrainingConfig
        from rerank_utils.training.trainer import fine_tune

        r = fine_tune("default", rows, "/tmp/training_speed/ours", TrainingConfig(epochs=1, batch_size=16, max_length=128),
                      device="cpu", show_progress=False)
        seconds = r.train_seconds
    else:
        from sentence_transformers import InputExample
        from torch.utils.data import DataLoader

        from rerank_utils.models.loading import load_cross_encoder

        model = load_cross_encoder("default", device="cpu")  # max_length None: the model's 512
        examples = [InputExample(texts=[r["query"], r["passage"]], label=r["label"]) for r in rows]
        t0 = time.perf_counter()
        model.fit(DataLoader(examples, shuffle=True, batch_size=16), epochs=1, warmup_steps=100, show_progress_bar=False)
        seconds = time.perf_counter() - t0
    return {"pairs": len(rows), "seconds": seconds, "pairs_per_s": len(rows) / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=640, help="training pairs (1 epoch)")
    ap.add_argument("--child", choices=["ours", "fit"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.rows)))
        return
    results = {}
    for name, kind in VARIANTS.items():
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(args.rows)], capture_output=True, text=True)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        results[name] = json.loads(line[7:])
        print(name, results[name], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"rows": args.rows, "results": results}, indent=1))
    print("| variant | pairs | seconds | pairs/s | peak RSS MB |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['pairs']} | {r['seconds']:.1f} | {r['pairs_per_s']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
