"""Scoring pairs in batches sorted by TOKEN count (``rerank_utils.models.scores.raw_scores``) against
``CrossEncoder.predict``'s own batches (sorted by characters), side by side in one run, for the models a ``cpu`` run
of notebook 03 trained (the standard cross-encoder and the bridge). The pairs are validation questions' top-20 from
the packaged bi-encoder: what every validation pass during training and every evaluation scores. Each is timed
``--passes`` times after a warm-up, alternating the two ways; the scores of the two are compared. The machine is
recorded.

    RERANK_ARTIFACTS_DIR=/tmp/cpu_prof .venv/bin/python benchmarks/token_sorted_scoring.py   # about 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rerank_utils.data.saved_splits import prepare_splits
from rerank_utils.models.export import calibration_pairs
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.models.precision import machine_summary
from rerank_utils.models.scores import raw_scores

from notebook03_models import notebook03_rerankers  # this folder

OUT = Path(__file__).parent / "results" / "token_sorted_scoring.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="whose notebook-03 models to load (artifacts/<profile>/models)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    val = prepare_splits(args.profile, "faq-en", seed=42)["val"]
    pairs = calibration_pairs(val, load_bi_encoder("default"), queries=len(val.queries), top_k=20)  # every question's top-20
    rows = {}
    for name, model in notebook03_rerankers(args.profile):
        ways = {
            "CrossEncoder.predict (sorted by characters)": lambda: np.asarray(model.predict(
                pairs, batch_size=args.batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False), dtype=np.float64),
            "raw_scores (sorted by tokens)": lambda: raw_scores(model, pairs, batch_size=args.batch_size),
        }
        for way in ways.values():
            way()  # warm-up
        seconds = {label: [] for label in ways}
        scores = {}
        for _ in range(args.passes):
            for label, way in ways.items():
                start = time.perf_counter()
                scores[label] = way()
                seconds[label].append(time.perf_counter() - start)
        base, token = (statistics.median(s) for s in seconds.values())
        rows[name] = {"pairs": len(pairs), "seconds": seconds, "speed_up": base / token,
                      "max_abs_difference": float(np.abs(np.subtract(*scores.values())).max())}
        print(f"{name}: {len(pairs)} pairs, predict {base:.1f} s, token-sorted {token:.1f} s: {base / token:.2f}x, "
              f"scores within {rows[name]['max_abs_difference']:.1e}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"_run": {"machine": machine_summary(), "batch_size": args.batch_size, "passes": args.passes},
                                    **rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
