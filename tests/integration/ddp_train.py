"""Run by tests/integration/test_distributed.py under `torchrun --nproc_per_node 2` (and plainly, as one
process): the package's own fine_tune, unchanged, on a toy dataset. Each process writes a fingerprint of
its weights after training so the test can check that data parallelism kept them identical."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rerank_utils.data.records import RetrievalDataset  # noqa: E402
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.samples import reranking_samples, training_rows  # noqa: E402
from rerank_utils.training.trainer import fine_tune

WORDS = "building permit law contract cost tax house roof water deduction".split()


def main(base: str, out: str, architecture: str = "standard") -> None:
    corpus = {f"d{i}": " ".join([w] * 3) + " the law" for i, w in enumerate(WORDS)}
    queries = {f"q{i}": f"what is the {WORDS[i % len(WORDS)]}" for i in range(16)}
    qrels = {q: {f"d{i % len(WORDS)}": 1.0} for i, q in enumerate(queries)}
    ds = RetrievalDataset(corpus, queries, qrels)
    negatives = {q: [d for d in corpus if d not in qrels[q]][:3] for q in queries}
    rows = training_rows(ds, negatives, "bce")  # 64 rows
    samples = reranking_samples(ds, {q: {d: 1.0 for d in corpus} for q in queries}, top_k=5)
    config = TrainingConfig(loss="bce", epochs=1, batch_size=4, learning_rate=1e-4, max_length=32, early_stopping_patience=None, seed=7)
    if architecture == "bridge":
        from rerank_utils.models.bridge import build_bridge_reranker

        base = build_bridge_reranker(base, bias_start=-4.0, max_seq_length=32)
    result = fine_tune(base, rows, out, config, val_samples=samples, device="cpu", show_progress=False)
    rank = int(os.environ.get("RANK", 0))
    with torch.no_grad():
        fingerprint = float(sum(p.double().sum() for p in result.model.parameters()))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": result.world_size, "steps": result.optimizer_steps, "fingerprint": fingerprint}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
