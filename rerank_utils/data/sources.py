""":func:`build_dataset`: any source, by name or path, as a :class:`~rerank_utils.data.records.RetrievalDataset`: the
packaged FAQ (offline default), QASPER, MS MARCO, any BEIR folder and any file in the guide's triples format.
The sources themselves are :mod:`~rerank_utils.data.faq`, :mod:`~rerank_utils.data.qasper` and
:mod:`~rerank_utils.data.msmarco`; this module adds :func:`load_beir_folder` and :func:`load_triples_file`.

Introduced in notebook ``01_data_preparation``.

Builders, their sources and licences:

* :func:`~rerank_utils.data.faq.load_faq`: the packaged Swedish construction FAQ (PyPI ``zaragoza-construction-faq``),
  CC BY 4.0, attribution required (:data:`~rerank_utils.data.faq.FAQ_ATTRIBUTION`).
* :func:`~rerank_utils.data.qasper.load_qasper_papers`, :func:`~rerank_utils.data.qasper.qasper_to_triples`, :func:`~rerank_utils.data.qasper.qasper_to_dataset`: QASPER, from the
  hub's parquet conversion or a local copy; CC BY 4.0, attribution required (:data:`~rerank_utils.data.qasper.QASPER_ATTRIBUTION`).
* :func:`~rerank_utils.data.msmarco.load_msmarco_triples`, :func:`~rerank_utils.data.msmarco.load_msmarco_dataset`: MS MARCO TSV files you downloaded;
  non-commercial research only (:data:`~rerank_utils.data.msmarco.MSMARCO_TERMS`).
* :func:`load_beir_folder`: any BEIR-format folder (the dataset's own licence).
* :func:`load_triples_file`: any file in the guide's triples format (yours).
* :func:`build_dataset`: any of the above by name or path, as a ``RetrievalDataset``.

Triples are ``{"query", "passage", "score"}`` records (the guide's format); a
:class:`~rerank_utils.data.records.RetrievalDataset` is a corpus, queries and qrels. Only the FAQ works
offline out of the box; a hub dataset asked for offline fails within seconds with a message naming
the ``gpu`` profile and the local-copy alternative.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from rerank_utils.data.beir import read_beir
from rerank_utils.data.convert import triples_to_dataset
from rerank_utils.data.faq import load_faq
from rerank_utils.data.msmarco import load_msmarco_dataset, load_msmarco_triples
from rerank_utils.data.qasper import (
    QASPER_HUB_ID,
    load_qasper_papers,
    qasper_to_dataset,
)
from rerank_utils.data.records import RetrievalDataset, ValidationReport
from rerank_utils.data.triples import read_triples
from rerank_utils.paths import resolve_path

logger = logging.getLogger(__name__)


def load_beir_folder(folder: str | os.PathLike, split: str = "test", mode: str = "strict"):
    """Any BEIR-format folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Source: your own data, or any BEIR dataset you downloaded (each has its own licence; check it).
    A thin wrapper over :func:`rerank_utils.data.beir.read_beir`: returns ``(RetrievalDataset,
    ValidationReport)``; ``mode="strict"`` stops at bad records (file and line named), ``"drop"`` drops
    and counts them in the report.
    """
    return read_beir(folder, split=split, mode=mode)


def load_triples_file(path: str | os.PathLike, mode: str = "strict", require_positive: bool = True):
    """Any file in the guide's triples format ``{"query", "passage", "score"}`` (JSON array, JSONL, CSV).

    Source: your own labelled pairs, or the Chinese sample ``data/zh_legal_sample.jsonl`` (written for
    this repository). A thin wrapper over :func:`rerank_utils.data.triples.read_triples`: returns
    ``(records, ValidationReport)``; ``require_positive`` makes a query without a positive a problem.
    """
    return read_triples(path, mode=mode, require_positive=require_positive)


BUILD_SOURCES = (
    "'faq' / 'faq-en' / 'faq-sv' (the packaged Swedish construction FAQ)",
    "'qasper' (kwargs: split, qasper_source=<local copy>, ...)",
    "a BEIR folder (with corpus.jsonl; kwargs: split (default: every qrels/*.tsv), mode)",
    "an MS MARCO folder (with collection.tsv; kwargs: split='dev.small' picks queries.<split>.tsv and "
    "qrels.<split>.tsv, limit_queries)",
    "a triples file: .json / .jsonl / .csv in the guide's format (kwargs: mode, require_positive)",
    "an MS MARCO triples .tsv file (kwargs: limit)",
)


def build_dataset(source: str | os.PathLike, **kw) -> RetrievalDataset:
    """One entry point for every source, as the notebooks' ``data_source`` parameter names it.

    Returns a :class:`~rerank_utils.data.records.RetrievalDataset` for each: ``"faq"``/``"faq-en"``/``"faq-sv"`` -> :func:`~rerank_utils.data.faq.load_faq`;
    ``"qasper"`` -> :func:`~rerank_utils.data.qasper.load_qasper_papers` + :func:`~rerank_utils.data.qasper.qasper_to_dataset`; a folder with
    ``corpus.jsonl`` -> :func:`load_beir_folder` (every ``qrels/*.tsv`` unless ``split`` names one; each query's
    ``query_meta["beir_split"]`` says which, so :func:`~rerank_utils.data.splits.make_splits` keeps the folder's own
    train / dev / test); a folder with ``collection.tsv`` ->
    :func:`~rerank_utils.data.msmarco.load_msmarco_dataset`; a ``.json``/``.jsonl``/``.csv`` file -> :func:`load_triples_file` +
    :func:`rerank_utils.data.convert.triples_to_dataset` (ids from the text; score-0 pairs stay in the qrels as
    judged non-relevant); a ``.tsv`` file -> :func:`~rerank_utils.data.msmarco.load_msmarco_triples` + the same conversion.

    Relative paths are tried from the working directory, then from the repository root (so
    ``data/zh_legal_sample.jsonl`` works from ``notebooks/``). Keyword arguments go to the builder
    (none for the FAQ). In ``mode="drop"`` what validation dropped is logged as a warning with its
    counts. Anything else: a ``ValueError`` listing the accepted sources.
    """
    text = str(source).strip()
    key = text.lower()
    if key in ("faq", "faq-en", "faq-sv"):
        if kw:
            raise TypeError(f"build_dataset({text!r}) takes no keyword arguments, got {sorted(kw)}")
        return load_faq("sv" if key == "faq-sv" else "en")
    if key == "qasper":
        split = kw.pop("split", "train")
        papers = load_qasper_papers(split=split, source=kw.pop("qasper_source", QASPER_HUB_ID), **kw)
        return qasper_to_dataset(papers, name=f"qasper-{split}")
    path = resolve_path(text)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            kw.setdefault("split", "all")  # every qrels file, each query tagged with its split (data.splits.make_splits)
            dataset, report = load_beir_folder(path, **kw)
            _log_report(report, path)
            return dataset
        if (path / "collection.tsv").is_file() or (path / "collection.tsv.gz").is_file():
            split = kw.pop("split", "dev.small")
            files = [_first_existing(path, name) for name in ("collection.tsv", f"queries.{split}.tsv", f"qrels.{split}.tsv")]
            return load_msmarco_dataset(*files, **kw)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".json", ".jsonl", ".csv"):
            records, report = load_triples_file(path, **kw)
            _log_report(report, path)
            return triples_to_dataset(records, name=path.stem)
        if suffix == ".tsv" or path.name.lower().endswith(".tsv.gz"):
            return triples_to_dataset(load_msmarco_triples(path, **kw), name=path.name.split(".")[0])
    elif re.search(r"\.(json|jsonl|csv|tsv|tsv\.gz)$", key):
        raise FileNotFoundError(f"data file {text!r} not found (looked in the working directory and the repository root)")
    raise ValueError(f"cannot build a dataset from {text!r}; accepted sources:\n  - " + "\n  - ".join(BUILD_SOURCES))


def _first_existing(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder / name} not found")


def _log_report(report: ValidationReport, source: Path) -> None:
    """Say what validation dropped (mode="drop"); nothing is dropped without a count."""
    if report.n_dropped:
        logger.warning("%s: %s", source, report)
