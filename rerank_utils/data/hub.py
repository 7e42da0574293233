"""The Hugging Face hub, which is often unreachable here: a quick reachability check, the offline environment
variables, and :class:`HubDatasetUnavailable` whose message says what to do instead (a local copy).
"""

from __future__ import annotations

import collections
import gzip
import os
import re
from pathlib import Path

from rerank_utils.data.records import DataValidationError, Problem, ValidationReport
from rerank_utils.models.resolve import hub_reachable, offline_env_var


class HubDatasetUnavailable(ConnectionError):
    """A dataset was asked for by its Hugging Face hub id, but the hub cannot be reached."""


_DATASET_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """:func:`rerank_utils.models.resolve.hub_reachable`, also honouring ``HF_DATASETS_OFFLINE``."""
    return hub_reachable(timeout, offline_vars=_DATASET_OFFLINE_VARS)


def _hub_unavailable_message(dataset: str, split: str, detail: str = "") -> str:
    var = offline_env_var(_DATASET_OFFLINE_VARS)
    reason = f"offline mode is on ({var}={os.environ[var]})" if var else "the Hugging Face hub cannot be reached"
    return (
        f"QASPER split {split!r} was asked for by its hub id {dataset!r}, but {reason}{detail}. "
        "Loading it from the hub needs a network connection: it belongs to the `gpu` profile, which needs "
        "the hub.\n"
        "To use a local copy instead, pass the folder (or file) that holds it, e.g.\n"
        "  load_qasper_papers(split='train', source='/path/to/qasper')   # or build_dataset('qasper', "
        "qasper_source=...)\n"
        "where the folder holds the parquet files of the hub's conversion (qasper/train/0000.parquet, ...; "
        "download them once where the hub is reachable, e.g. `hf download allenai/qasper "
        "--repo-type dataset --revision refs/convert/parquet --local-dir qasper`), JSON Lines files with one "
        "paper per line, or the original release's qasper-{train,dev,test}-v0.3.json. "
        "Offline, the `cpu` and `smoke` profiles use the packaged FAQ instead."
    )


def _looks_like_hub_id(text: str) -> bool:
    """``owner/name`` (or a bare ``name``) with no file extension, that is not an existing path."""
    if text.startswith((".", "/", "~", "\\")) or Path(text).expanduser().exists():
        return False
    if re.search(r"\.(parquet|jsonl|json|csv|tsv|gz)$", text, re.IGNORECASE):
        return False
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", text) is not None


def _data_error(problems: list[tuple[str, str, str, str]], source: str, n_input: int, hint: str) -> DataValidationError:
    """A :class:`~rerank_utils.data.records.DataValidationError` listing every ``(source, location, reason,
    message)`` problem (``reason`` one of :data:`rerank_utils.data.records.REASONS`), with ``hint`` at the end."""
    first_reason: dict[tuple[str, str], str] = {}  # one dropped record per location, counted by its first reason
    for src, location, reason, _ in problems:
        first_reason.setdefault((src, location), reason)
    report = ValidationReport(source, n_input, n_input - len(first_reason), collections.Counter(first_reason.values()),
                              [Problem(*problem) for problem in problems])
    return DataValidationError(report, hint=hint)


def _open_text(path: Path):
    """Open a UTF-8 text file for reading, transparently decompressing ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist or is not a file")
    return p
