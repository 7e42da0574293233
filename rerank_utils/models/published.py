"""The published reranker of an artifacts folder: :func:`publish_reranker` copies a trained model to
``artifacts/<name>/models/reranker`` with a note of where it came from; :func:`published_reranker` is the model
that notebooks 04, 05 and ``rerank-utils evaluate | export | serve`` use.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rerank_utils.paths import artifacts_dir

DEFAULT_RERANKER_FILE = "DEFAULT_RERANKER.json"


def publish_reranker(profile: str, source: str | Path, architecture: str, reason: str = "") -> Path:
    """Make the model saved in ``source`` the profile's reranker: copied to ``artifacts/<profile>/models/reranker``,
    the folder later notebooks (evaluation, deployment) load, with a note saying which model it is and why.

    Introduced in notebook ``03_fine_tuning``."""
    source = Path(source)
    if not ((source / "modules.json").is_file() or (source / "config.json").is_file()):
        raise FileNotFoundError(f"{source} holds no saved model (no modules.json or config.json)")
    target = artifacts_dir(profile, "models", "reranker")
    if source.resolve() != target.resolve():
        shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))
    note = {"architecture": architecture, "copied_from": str(source), "reason": reason}
    (target / DEFAULT_RERANKER_FILE).write_text(json.dumps(note, indent=2), encoding="utf-8")
    return target


def published_reranker(profile: str) -> dict[str, Any] | None:
    """What :func:`publish_reranker` wrote for ``profile`` (architecture, source, reason), or ``None``."""
    path = artifacts_dir(profile, "models", "reranker", create=False) / DEFAULT_RERANKER_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
