"""The two rerankers a run of notebook 03 trained (``artifacts/<profile>/models/standard`` and ``.../bridge``), loaded
for the benchmarks that compare ways of scoring them (``token_sorted_scoring.py``, ``fast_reranker.py``), which import
it from this folder (a script's own folder is on its import path)."""

from __future__ import annotations

from typing import Iterator

from sentence_transformers import CrossEncoder

from rerank_utils.models.loading import load_cross_encoder
from rerank_utils.paths import artifacts_dir

ARCHITECTURES = ("standard", "bridge")


def notebook03_rerankers(profile: str) -> Iterator[tuple[str, CrossEncoder]]:
    """``(architecture, model)`` for each of notebook 03's rerankers on ``profile``; a clear exit where 03 has not run."""
    for name in ARCHITECTURES:
        folder = artifacts_dir(profile, "models", name, create=False)
        if not (folder / "training.json").is_file():
            raise SystemExit(f"{folder} holds no trained model: run notebook 03 on profile {profile!r} first")
        yield name, load_cross_encoder(str(folder))
