"""Builders that turn a source into records: the packaged FAQ (offline default), QASPER, MS MARCO,
any BEIR folder and any file in the guide's triples format.

Introduced in notebook ``01_data_preparation``.
"""

from __future__ import annotations

from collections import defaultdict

from .data import RetrievalDataset

FAQ_ATTRIBUTION = (
    "Swedish Construction FAQ by Zaragoza AB, CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/), DOI 10.5281/zenodo.19630803, "
    "via the PyPI package zaragoza-construction-faq."
)


def load_faq(lang: str = "en") -> RetrievalDataset:
    """The packaged Swedish construction FAQ as a retrieval dataset (the offline default).

    corpus = the 503 answers (doc id = the FAQ id, e.g. ``bygglov-001``); queries = the questions;
    qrels = each question's own answer. A few questions occur twice with different answers: each such
    text becomes ONE query (id of its first occurrence, prefixed ``q-``) with every answer it has as
    relevant, so no query appears twice and no correct answer is counted as a miss.
    ``query_meta[qid]`` holds ``category``, ``faq_ids`` and ``n_answers``; ``doc_meta[doc_id]`` holds
    ``category``, ``sources``, ``question`` and ``related_service``.

    Licence: CC BY 4.0, attribution required: see :data:`FAQ_ATTRIBUTION`.
    """
    if lang not in ("en", "sv"):
        raise ValueError(f"lang must be 'en' or 'sv', got {lang!r}")
    import zaragoza_construction_faq as zcf

    records = zcf.load(lang=lang)
    corpus: dict[str, str] = {}
    doc_meta: dict[str, dict] = {}
    by_question: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        corpus[rec["id"]] = rec["a"].strip()
        doc_meta[rec["id"]] = {
            "category": rec["category"],
            "sources": list(rec.get("sources") or []),
            "question": rec["q"].strip(),
            "related_service": rec.get("related_service"),
        }
        by_question[rec["q"].strip()].append(rec)

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    query_meta: dict[str, dict] = {}
    for text, recs in by_question.items():  # dicts keep first-occurrence order
        qid = f"q-{recs[0]['id']}"
        queries[qid] = text
        qrels[qid] = {r["id"]: 1.0 for r in recs}
        query_meta[qid] = {
            "category": recs[0]["category"],
            "faq_ids": [r["id"] for r in recs],
            "n_answers": len(recs),
        }
    return RetrievalDataset(corpus, queries, qrels, doc_meta, query_meta, name=f"faq-{lang}")


# ---------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------

import json
import logging
import os
import random
import re
import socket
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

_OFFLINE_TRUE = {"1", "true", "yes", "on"}


class HubDatasetUnavailable(ConnectionError):
    """A dataset was asked for by its Hugging Face hub id, but the hub cannot be reached."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub accepts a TCP connection, decided within about ``timeout`` seconds.

    ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set to a true value -> ``False`` at once. Otherwise one
    TCP connection to the host of ``$HF_ENDPOINT`` (default ``https://huggingface.co``) is tried in a
    daemon thread, so that a slow DNS lookup cannot hold the caller longer than ``timeout`` + 1 s.
    """
    if any(os.environ.get(v, "").strip().lower() in _OFFLINE_TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False
    parsed = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    result: list[bool] = []

    def _try() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=_try, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])


def _offline_reason() -> str:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _OFFLINE_TRUE:
            return f"offline mode is on ({var}={os.environ[var]})"
    return "the Hugging Face hub cannot be reached"


def _looks_like_hub_id(text: str) -> bool:
    """``owner/name`` (or ``name``) that is not an existing path and has no file extension."""
    if Path(text).expanduser().exists() or text.startswith((".", "/", "~")):
        return False
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", text)) and not re.search(
        r"\.(parquet|jsonl?|csv|tsv)$", text
    )


def _data_error(problems: list[tuple[str, str, str]], what: str) -> Exception:
    """A :class:`~rerank_utils.data.DataValidationError` when ``data`` provides one, else ``ValueError``.

    ``problems`` are ``(source, location, reason)`` triples; the message lists them (first 20).
    """
    lines = [f"  {src}:{loc}: {reason}" for src, loc, reason in problems[:20]]
    if len(problems) > 20:
        lines.append(f"  ... and {len(problems) - 20} more")
    message = f"{what}: {len(problems)} problem(s)\n" + "\n".join(lines)
    try:
        from . import data as _data

        return _data.DataValidationError.from_problems(problems, message)  # type: ignore[attr-defined]
    except Exception:  # the data module's error type may not offer that constructor
        return ValueError(message)
