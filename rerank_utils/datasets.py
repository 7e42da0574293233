"""Builders that turn a source into records: the packaged FAQ (offline default), QASPER, MS MARCO,
any BEIR folder and any file in the guide's triples format.

Introduced in notebook ``01_data_preparation``.

Builders, their sources and licences:

* :func:`load_faq`: the packaged Swedish construction FAQ (PyPI ``zaragoza-construction-faq``),
  CC BY 4.0, attribution required (:data:`FAQ_ATTRIBUTION`).
* :func:`load_qasper_papers`, :func:`qasper_to_triples`, :func:`qasper_to_dataset`: QASPER, from the
  hub's parquet conversion or a local copy; CC BY 4.0, attribution required (:data:`QASPER_ATTRIBUTION`).
* :func:`load_msmarco_triples`, :func:`load_msmarco_dataset`: MS MARCO TSV files you downloaded;
  non-commercial research only (:data:`MSMARCO_TERMS`).
* :func:`load_beir_folder`: any BEIR-format folder (the dataset's own licence).
* :func:`load_triples_file`: any file in the guide's triples format (yours).
* :func:`build_dataset`: any of the above by name or path, as a ``RetrievalDataset``.

Triples are ``{"query", "passage", "score"}`` records (the guide's format); a
:class:`~rerank_utils.data.RetrievalDataset` is a corpus, queries and qrels. Only the FAQ works
offline out of the box; a hub dataset asked for offline fails within seconds with a message naming
the ``gpu`` profile and the local-copy alternative.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from .config import resolve_path
from .models import hub_reachable, offline_env_var
from .data import (
    DataValidationError,
    Problem,
    RetrievalDataset,
    ValidationReport,
    read_beir,
    read_triples,
    triples_to_dataset,
)

logger = logging.getLogger(__name__)

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
# Shared helpers: the hub check, errors that name file and line, paths
# ---------------------------------------------------------------------------------------------------

class HubDatasetUnavailable(ConnectionError):
    """A dataset was asked for by its Hugging Face hub id, but the hub cannot be reached."""


_DATASET_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """:func:`rerank_utils.models.hub_reachable`, also honouring ``HF_DATASETS_OFFLINE``."""
    return hub_reachable(timeout, offline_vars=_DATASET_OFFLINE_VARS)


def _offline_env_var() -> str | None:
    return offline_env_var(_DATASET_OFFLINE_VARS)


def _hub_unavailable_message(dataset: str, split: str, detail: str = "") -> str:
    var = _offline_env_var()
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
    """A :class:`~rerank_utils.data.DataValidationError` listing every ``(source, location, reason,
    message)`` problem (``reason`` one of :data:`rerank_utils.data.REASONS`), with ``hint`` at the end."""
    report = ValidationReport(source=source, n_input=n_input, n_kept=n_input)
    bad_locations: dict[tuple[str, str], str] = {}
    for src, location, reason, message in problems:
        report.problems.append(Problem(src, location, reason, message))
        bad_locations.setdefault((src, location), reason)
    report.dropped.update(bad_locations.values())
    report.n_kept = n_input - len(bad_locations)
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


# ---------------------------------------------------------------------------------------------------
# QASPER: the guide's case study
# ---------------------------------------------------------------------------------------------------

QASPER_HUB_ID = "allenai/qasper"
#: The hub's automatic parquet conversion of QASPER; the repository's main branch only holds a loading
#: script, which ``datasets`` >= 4 no longer runs ("Dataset scripts are no longer supported").
QASPER_PARQUET_REVISION = "refs/convert/parquet"
#: The config name of that conversion: its files are ``qasper/{train,validation,test}/0000.parquet``.
QASPER_CONFIG = "qasper"
QASPER_ATTRIBUTION = (
    "QASPER: Dasigi et al. (2021), 'A Dataset of Information-Seeking Questions and Answers Anchored in "
    "Research Papers', NAACL; Allen Institute for AI; CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/); https://huggingface.co/datasets/allenai/qasper."
)
_QASPER_SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "dev", "valid", "val"),
    "test": ("test",),
}
_ALL_SPLIT_TOKENS = {t for aliases in _QASPER_SPLIT_ALIASES.values() for t in aliases}
_ANSWER_DEFAULTS: dict[str, Any] = {
    "unanswerable": False,
    "extractive_spans": [],
    "yes_no": None,
    "free_form_answer": "",
    "evidence": [],
    "highlighted_evidence": [],
}


def load_qasper_papers(
    split: str = "train",
    source: str | os.PathLike = QASPER_HUB_ID,
    revision: str = QASPER_PARQUET_REVISION,
    data_files: Any = None,
    cache_dir: str | os.PathLike | None = None,
    config: str = QASPER_CONFIG,
    hub_timeout: float = 3.0,
) -> list[dict]:
    """QASPER's papers for one split, as a list of dicts in QASPER's (Hugging Face) schema.

    Source: QASPER (Dasigi et al., 2021; Allen Institute for AI), 1,585 NLP papers with 5,049 questions
    written from title and abstract and answered from the full text, each answer with the paragraphs that
    support it (``evidence``). Licence CC BY 4.0, attribution required: see :data:`QASPER_ATTRIBUTION`.
    Nothing of it ships with this repository.

    Routes:

    * a hub id (default ``allenai/qasper``): ``datasets.load_dataset(source, revision=revision, ...)``
      on the hub's parquet conversion (``refs/convert/parquet``; files ``<config>/<split>/*.parquet``,
      config ``qasper``), because ``load_dataset("allenai/qasper")`` fails on ``datasets`` >= 4 (loading
      scripts were dropped). ``data_files`` overrides the file pattern. Offline (``HF_HUB_OFFLINE=1``)
      or with the hub unreachable this fails within seconds with :class:`HubDatasetUnavailable`,
      which names the ``gpu`` profile and how to pass a local copy.
    * a local folder or file: ``.parquet`` files (e.g. a downloaded copy of the conversion) through
      ``load_dataset("parquet", data_files=...)``; JSON Lines (``.jsonl``, one paper per line) through
      ``load_dataset("json", ...)``; the original release's ``qasper-{train,dev,test}-v0.3.json``
      (one object keyed by paper id) is read directly. In a folder whose file or folder names carry
      split names (``train``, ``validation``/``dev``, ``test``) only ``split``'s files are read; a folder
      without split names is read whole.

    Every paper is returned in the hub schema: ``id``, ``title``, ``abstract``,
    ``full_text = {"section_name": [...], "paragraphs": [[...], ...]}``,
    ``qas = {"question": [...], "question_id": [...], "answers": [{"answer": [{...}], "annotation_id":
    [...], "worker_id": [...]}, ...], ...}`` and ``figures_and_tables``, whichever layout the files had.
    """
    if split not in _QASPER_SPLIT_ALIASES:
        raise ValueError(f"split must be one of {sorted(_QASPER_SPLIT_ALIASES)}, got {split!r}")
    text = str(source)
    local = Path(text).expanduser()
    if local.exists():
        rows = _load_local_qasper(local, split, cache_dir)
    elif _looks_like_hub_id(text):
        rows = _load_hub_qasper(text, split, revision, data_files, cache_dir, config, hub_timeout)
    else:
        raise FileNotFoundError(f"QASPER source {text!r} is neither an existing file or folder nor a hub id")
    return [_normalize_qasper_paper(row) for row in rows]


def _load_hub_qasper(
    dataset: str, split: str, revision: str, data_files: Any, cache_dir: Any, config: str, timeout: float
) -> list[dict]:
    if not _hub_reachable(timeout):
        raise HubDatasetUnavailable(_hub_unavailable_message(dataset, split))
    from datasets import load_dataset

    if data_files is None and revision == QASPER_PARQUET_REVISION:
        data_files = {split: f"{config}/{split}/*.parquet"}
    try:
        ds = load_dataset(
            dataset,
            revision=revision,
            data_files=data_files,
            split=split,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except ConnectionError as exc:  # the hub went away between the check and the download
        raise HubDatasetUnavailable(_hub_unavailable_message(dataset, split, f" ({exc})")) from exc
    return list(ds)


def _load_local_qasper(path: Path, split: str, cache_dir: Any) -> list[dict]:
    files = _qasper_local_files(path, split)
    parquet = [f for f in files if f.suffix == ".parquet"]
    jsonl = [f for f in files if f.suffix == ".jsonl"]
    rows: list[dict] = []
    for f in (f for f in files if f.suffix == ".json"):
        whole = _read_whole_json(f)
        if whole is None:  # JSON Lines under a .json name
            jsonl.append(f)
        elif isinstance(whole, list):
            rows.extend(whole)
        elif isinstance(whole, dict) and "qas" not in whole and all(
            isinstance(v, dict) and "qas" in v for v in whole.values()
        ):  # the original release: {paper_id: paper}
            rows.extend({"id": pid, **paper} for pid, paper in whole.items())
        elif isinstance(whole, dict):
            rows.append(whole)
        else:
            raise ValueError(f"{f}: expected QASPER papers (an object or an array of objects)")
    from datasets import load_dataset

    cache = None if cache_dir is None else str(cache_dir)
    for builder, group in (("parquet", parquet), ("json", jsonl)):
        if group:
            ds = load_dataset(builder, data_files=[str(f) for f in sorted(group)], split="train", cache_dir=cache)
            rows.extend(ds)
    return rows


def _qasper_local_files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        if path.suffix not in (".parquet", ".jsonl", ".json"):
            raise ValueError(f"{path}: QASPER files must be .parquet, .jsonl or .json")
        return [path]
    found: list[Path] = []
    for ext in (".parquet", ".jsonl", ".json"):
        found = sorted(p for p in path.rglob(f"*{ext}") if p.is_file())
        if found:
            break
    if not found:
        raise FileNotFoundError(f"no .parquet, .jsonl or .json files under {path}")

    def tokens(p: Path) -> set[str]:
        rel = p.relative_to(path)
        parts = [s.lower() for s in rel.parts[:-1]] + re.split(r"[-_.\s]+", p.stem.lower())
        return set(parts)

    named = [p for p in found if tokens(p) & _ALL_SPLIT_TOKENS]
    if not named:
        return found  # no split names: the folder is the split
    wanted = [p for p in found if tokens(p) & set(_QASPER_SPLIT_ALIASES[split])]
    if not wanted:
        have = sorted({s for p in named for s in tokens(p) & _ALL_SPLIT_TOKENS})
        raise FileNotFoundError(f"no files for split {split!r} under {path} (split names found: {have})")
    return wanted


def _read_whole_json(path: Path) -> Any:
    """The parsed document, or ``None`` when the file is JSON Lines (more than one document)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data"):
            return None
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _dict_of_lists(items: Sequence[dict] | None) -> dict[str, list]:
    keys: list[str] = []
    for item in items or []:
        keys.extend(k for k in item if k not in keys)
    return {k: [item.get(k) for item in items or []] for k in keys}


def _list_of_dicts(columns: Any) -> list[dict]:
    """Rows of a "sequence of dicts", stored either as a list of dicts or as a dict of lists."""
    if columns is None:
        return []
    if isinstance(columns, dict):
        keys = list(columns)
        n = max((len(columns[k] or []) for k in keys), default=0)
        return [{k: (columns[k][i] if columns[k] is not None and i < len(columns[k]) else None) for k in keys} for i in range(n)]
    return [dict(item) for item in columns]


def _normalize_answer_group(group: Any) -> dict:
    """One question's answers as ``{"answer": [...], "annotation_id": [...], "worker_id": [...]}``."""
    if isinstance(group, dict) and isinstance(group.get("answer"), list):
        entries = [
            {"answer": a, "annotation_id": aid, "worker_id": wid}
            for a, aid, wid in zip(
                group["answer"],
                group.get("annotation_id") or [None] * len(group["answer"]),
                group.get("worker_id") or [None] * len(group["answer"]),
            )
        ]
    elif isinstance(group, dict) and isinstance(group.get("answer"), dict):  # a single answer entry
        entries = [group]
    else:  # the release's list of {"answer": {...}, "annotation_id", "worker_id"}
        entries = [dict(e) for e in group or []]
    answers = []
    for e in entries:
        raw = dict(e.get("answer") or {})
        answer = {k: raw.get(k, v) for k, v in _ANSWER_DEFAULTS.items()}
        for k in ("extractive_spans", "evidence", "highlighted_evidence"):
            answer[k] = list(answer[k] or [])
        answer["free_form_answer"] = answer["free_form_answer"] or ""
        answer["unanswerable"] = bool(answer["unanswerable"])
        answer.update({k: v for k, v in raw.items() if k not in answer})
        answers.append(answer)
    return {
        "answer": answers,
        "annotation_id": [e.get("annotation_id") for e in entries],
        "worker_id": [e.get("worker_id") for e in entries],
    }


def _normalize_qasper_paper(paper: dict) -> dict:
    """A paper in the hub schema, from the hub schema, a list-of-dicts variant or the original release."""
    if "id" not in paper or paper["id"] in (None, ""):
        raise ValueError(f"QASPER paper without an 'id' (title: {paper.get('title')!r})")
    sections = _list_of_dicts(paper.get("full_text"))
    full_text = {
        "section_name": [s.get("section_name") or "" for s in sections],
        "paragraphs": [list(s.get("paragraphs") or []) for s in sections],
    }
    questions = _list_of_dicts(paper.get("qas"))
    for q in questions:
        q["answers"] = _normalize_answer_group(q.get("answers"))
        q["question"] = q.get("question") or ""
    qas = _dict_of_lists(questions)
    for key in ("question", "question_id", "answers"):
        qas.setdefault(key, [])
    out = {k: v for k, v in paper.items() if k not in ("full_text", "qas")}
    out.update(
        id=str(paper["id"]),
        title=paper.get("title") or "",
        abstract=paper.get("abstract") or "",
        full_text=full_text,
        qas=qas,
        figures_and_tables=paper.get("figures_and_tables"),
    )
    return out


def _norm_text(text: str) -> str:
    return " ".join(str(text).split())


def _is_float_evidence(text: str) -> bool:
    return str(text).lstrip().upper().startswith("FLOAT SELECTED")


def _qasper_paragraphs(paper: dict) -> list[tuple[str, int, int, str, str]]:
    """``(doc_id, section_idx, para_idx, section_name, text)`` of every non-empty paragraph."""
    out = []
    ft = paper["full_text"]
    for si, (name, paras) in enumerate(zip(ft["section_name"], ft["paragraphs"])):
        for pj, text in enumerate(paras or []):
            if text is not None and str(text).strip():
                out.append((f"{paper['id']}/{si}/{pj}", si, pj, name or "", str(text).strip()))
    return out


def _qasper_questions(paper: dict, para_norms: set[str], stats: dict[str, int]) -> list[dict]:
    """The paper's questions with their paragraph evidence; equal question texts merged into one.

    Each item: ``question``, ``question_ids``, ``evidence`` (normalised paragraph texts found in the paper,
    first-seen order, from all annotators), ``highlighted`` (normalised highlighted spans) and
    ``unanswerable`` (every annotator said so). Counts FLOAT SELECTED and unmatched evidence in ``stats``.
    """
    merged: dict[str, dict] = {}
    qas = paper["qas"]
    for i, text in enumerate(qas["question"]):
        stats["n_questions"] += 1
        question = _norm_text(text)
        qid = str(qas["question_id"][i]) if i < len(qas["question_id"]) else f"{paper['id']}/q{i}"
        group = qas["answers"][i] if i < len(qas["answers"]) else {"answer": []}
        answers = group.get("answer") or []
        item = merged.get(question)
        if item is None:
            item = merged[question] = {
                "question": question,
                "question_ids": [],
                "evidence": [],
                "highlighted": [],
                "unanswerable": True,
                "float": set(),
                "missing": set(),
            }
        else:
            stats["n_duplicate_questions_merged"] += 1
        item["question_ids"].append(qid)
        for answer in answers:
            if not answer.get("unanswerable"):
                item["unanswerable"] = False
            for ev in answer.get("evidence") or []:
                norm = _norm_text(ev)
                if not norm:
                    continue
                if _is_float_evidence(ev):
                    item["float"].add(norm)
                elif norm in para_norms:
                    if norm not in item["evidence"]:
                        item["evidence"].append(norm)
                else:
                    item["missing"].add(norm)
            for hl in answer.get("highlighted_evidence") or []:
                norm = _norm_text(hl)
                if norm and not _is_float_evidence(hl) and norm not in item["highlighted"]:
                    item["highlighted"].append(norm)
    for item in merged.values():
        stats["n_float_evidence_skipped"] += len(item.pop("float"))
        stats["n_evidence_not_found"] += len(item.pop("missing"))
    return list(merged.values())


def qasper_to_triples(
    papers: Iterable[dict],
    negatives_per_positive: int = 3,
    seed: int = 42,
    min_paragraph_chars: int = 50,
) -> tuple[list[dict], dict[str, int]]:
    """Training triples from QASPER, the guide's recipe: positives from the evidence, negatives from the
    same paper.

    Source: QASPER papers as :func:`load_qasper_papers` returns them (CC BY 4.0, see
    :data:`QASPER_ATTRIBUTION`). Builds records ``{"query", "passage", "score", "paper_id"}``:

    * positives (score 1): each question with each distinct paragraph of its paper that some annotator
      gave as evidence (all annotators together);
    * negatives (score 0): ``negatives_per_positive`` x (number of positives) other paragraphs of the
      SAME paper (as many as there are, if fewer), sampled with a generator seeded by ``seed``, the paper
      id and the question id: never an evidence paragraph of that question, never one that contains a
      span an annotator highlighted for it, never shorter than ``min_paragraph_chars`` (section stubs);
    * skipped and counted: questions without paragraph evidence (unanswerable, or answered from a table
      or figure only), evidence strings that are not paragraphs of the paper (``FLOAT SELECTED: ...``
      tables and figures; other strings that match no paragraph).

    Equal question texts within one paper are merged into one question (their evidence joined), so the
    same pair never gets two labels. Deterministic for a seed, whatever other papers are in the list.

    Returns ``(records, stats)``; ``stats`` has ``n_papers``, ``n_questions`` (as in the data),
    ``n_duplicate_questions_merged``, ``n_with_evidence``, ``n_skipped_no_evidence`` (of which
    ``n_unanswerable``: every annotator said unanswerable), ``n_float_evidence_skipped``,
    ``n_evidence_not_found``, ``n_positives``, ``n_negatives``, ``n_short_of_negatives`` (questions whose
    paper had fewer candidates than asked) and ``n_duplicate_pairs_skipped``.
    ``n_with_evidence + n_skipped_no_evidence == n_questions - n_duplicate_questions_merged``.
    """
    if negatives_per_positive < 0:
        raise ValueError(f"negatives_per_positive must be >= 0, got {negatives_per_positive}")
    stats = dict.fromkeys(
        (
            "n_papers", "n_questions", "n_duplicate_questions_merged", "n_with_evidence",
            "n_skipped_no_evidence", "n_unanswerable", "n_float_evidence_skipped", "n_evidence_not_found",
            "n_positives", "n_negatives", "n_short_of_negatives", "n_duplicate_pairs_skipped",
        ),
        0,
    )
    records: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for raw in papers:
        paper = _normalize_qasper_paper(raw)
        stats["n_papers"] += 1
        paragraphs = _qasper_paragraphs(paper)
        text_by_norm: dict[str, str] = {}
        for _, _, _, _, text in paragraphs:
            text_by_norm.setdefault(_norm_text(text), text)
        for q in _qasper_questions(paper, set(text_by_norm), stats):
            if not q["evidence"]:
                stats["n_skipped_no_evidence"] += 1
                stats["n_unanswerable"] += int(q["unanswerable"])
                continue
            stats["n_with_evidence"] += 1
            evidence = set(q["evidence"])
            highlighted = [h for h in q["highlighted"] if len(h) >= 20]
            candidates = [
                norm
                for norm in text_by_norm  # paper order, each text once
                if norm not in evidence
                and len(norm) >= min_paragraph_chars
                and not any(h in norm for h in highlighted)
            ]
            wanted = negatives_per_positive * len(q["evidence"])
            if len(candidates) < wanted:
                stats["n_short_of_negatives"] += 1
            rng = random.Random(f"{seed}/{paper['id']}/{q['question_ids'][0]}")
            chosen = set(rng.sample(candidates, min(wanted, len(candidates))))
            negatives = [norm for norm in candidates if norm in chosen]
            for norms, score, key in ((q["evidence"], 1, "n_positives"), (negatives, 0, "n_negatives")):
                for norm in norms:
                    pair = (q["question"], text_by_norm[norm])
                    if pair in seen:
                        stats["n_duplicate_pairs_skipped"] += 1
                        continue
                    seen.add(pair)
                    records.append({"query": pair[0], "passage": pair[1], "score": score, "paper_id": paper["id"]})
                    stats[key] += 1
    return records, stats


def qasper_to_dataset(papers: Iterable[dict], name: str = "qasper") -> RetrievalDataset:
    """QASPER as a retrieval dataset: find each question's evidence among the paragraphs.

    Source: QASPER papers as :func:`load_qasper_papers` returns them (CC BY 4.0, see
    :data:`QASPER_ATTRIBUTION`). Builds:

    * corpus: every non-empty paragraph of every paper, id ``<paper_id>/<section_idx>/<para_idx>``;
      ``doc_meta[doc_id]`` = ``paper_id``, ``section`` (its name), ``section_idx``, ``para_idx``;
    * queries: the questions with paragraph evidence (id = ``question_id``; equal question texts within a
      paper merged under the first id); ``query_meta[qid]`` = ``paper_id``, ``paper_title``,
      ``question_ids``, ``n_evidence``;
    * qrels: each evidence paragraph (every copy of its text in the paper) with grade 1.

    ``query_meta[...]["paper_id"]`` lets splits keep a paper's questions together, and
    ``doc_meta[...]["paper_id"]`` restricts retrieval to one paper, as the guide's case study does.
    """
    corpus: dict[str, str] = {}
    doc_meta: dict[str, dict] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    query_meta: dict[str, dict] = {}
    stats: dict[str, int] = defaultdict(int)
    for raw in papers:
        paper = _normalize_qasper_paper(raw)
        paragraphs = _qasper_paragraphs(paper)
        ids_by_norm: dict[str, list[str]] = defaultdict(list)
        for doc_id, si, pj, section, text in paragraphs:
            corpus[doc_id] = text
            doc_meta[doc_id] = {"paper_id": paper["id"], "section": section, "section_idx": si, "para_idx": pj}
            ids_by_norm[_norm_text(text)].append(doc_id)
        for q in _qasper_questions(paper, set(ids_by_norm), stats):
            if not q["evidence"]:
                continue
            qid = q["question_ids"][0]
            if qid in queries:
                raise ValueError(f"duplicate QASPER question id {qid!r} (paper {paper['id']})")
            queries[qid] = q["question"]
            qrels[qid] = {doc_id: 1.0 for norm in q["evidence"] for doc_id in ids_by_norm[norm]}
            query_meta[qid] = {
                "paper_id": paper["id"],
                "paper_title": paper["title"],
                "question_ids": list(q["question_ids"]),
                "n_evidence": len(q["evidence"]),
            }
    return RetrievalDataset(corpus, queries, qrels, doc_meta, query_meta, name=name)


# ---------------------------------------------------------------------------------------------------
# MS MARCO passage ranking
# ---------------------------------------------------------------------------------------------------

MSMARCO_TERMS = (
    "MS MARCO (Microsoft): free for non-commercial research purposes only, under Microsoft's terms "
    "(https://microsoft.github.io/msmarco/). Nothing of it ships with this repository."
)


def load_msmarco_triples(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Triples in the guide's format from MS MARCO's classic training triples TSV.

    Source: MS MARCO passage ranking (e.g. ``triples.train.small.tsv``, optionally ``.gz``): one line per
    ``query<TAB>positive passage<TAB>negative passage``. Terms: see :data:`MSMARCO_TERMS`; download it
    yourself. ``limit`` reads at most that many lines (the small file has about 40 million).

    Each line gives a positive ``{"query", "passage", "score": 1}`` and a negative (score 0). A query
    repeats its positive on every line, so positives (and any repeated pair) are kept once, first
    occurrence first. A passage that is a negative of a query on one line and its positive on another
    (MS MARCO's collection holds duplicate texts) is kept as a positive only, and the number of such
    cases is logged as a warning. Bad lines (not three fields, an empty field, the same text as positive
    and negative) are collected and raised together in one
    :class:`~rerank_utils.data.DataValidationError` (a ``ValueError``) naming the file and each line.
    """
    p = _existing_file(path, "MS MARCO triples file")
    problems: list[tuple[str, str, str, str]] = []
    records: list[dict] = []
    index: dict[tuple[str, str], int] = {}  # (query, passage) -> position in records
    conflicts = 0
    n_lines = 0
    with _open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and lineno > limit:
                break
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            n_lines += 1
            where = (str(p), f"line {lineno}")
            parts = line.split("\t")
            if len(parts) != 3:
                problems.append((*where, "invalid_row",
                                 f"expected 3 tab-separated fields (query, positive, negative), found {len(parts)}"))
                continue
            query, pos, neg = (s.strip() for s in parts)
            empty = [n for n, s in zip(("query", "positive", "negative"), (query, pos, neg)) if not s]
            if empty:
                problems.append((*where, "empty_text", f"empty field(s): {', '.join(empty)}"))
                continue
            if pos == neg:
                problems.append((*where, "conflicting_labels", "the positive and the negative passage are the same text"))
                continue
            for passage, score in ((pos, 1), (neg, 0)):
                at = index.get((query, passage))
                if at is None:
                    index[(query, passage)] = len(records)
                    records.append({"query": query, "passage": passage, "score": score})
                elif records[at]["score"] != score:
                    conflicts += 1
                    records[at]["score"] = 1
    if problems:
        raise _data_error(problems, str(p), n_lines, "fix or remove these lines (or read fewer with limit=)")
    if conflicts:
        logger.warning("%s: %d passage(s) were both a negative and a positive of one query; kept as positives",
                       p, conflicts)
    return records


def _read_id_text_tsv(path: Path, what: str, problems: list[tuple[str, str, str, str]]) -> tuple[dict[str, str], int]:
    out: dict[str, str] = {}
    n_lines = 0
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            n_lines += 1
            where = (str(path), f"line {lineno}")
            ident, sep, text = line.partition("\t")
            ident, text = ident.strip(), text.strip()
            if not sep or not ident:
                problems.append((*where, "invalid_row", f"expected '<{what} id><TAB><text>'"))
            elif not text:
                problems.append((*where, "empty_text", f"empty text for {what} id {ident!r}"))
            elif ident in out:
                problems.append((*where, "duplicate_id", f"duplicate {what} id {ident!r} (first kept)"))
            else:
                out[ident] = text
    return out, n_lines


def load_msmarco_dataset(
    collection_tsv: str | os.PathLike,
    queries_tsv: str | os.PathLike,
    qrels_path: str | os.PathLike,
    limit_queries: int | None = None,
) -> RetrievalDataset:
    """MS MARCO passage ranking as a retrieval dataset.

    Source: MS MARCO's ``collection.tsv`` (``pid<TAB>passage``), a ``queries.*.tsv`` (``qid<TAB>query``)
    and the matching qrels (``qid 0 pid 1``, TREC format, space or tab separated; three columns
    ``qid pid grade`` and a BEIR-style header line are accepted too). ``.gz`` files are read as they
    are. Terms: see :data:`MSMARCO_TERMS`.

    Builds corpus = the whole collection, queries = the queries with at least one relevant passage, in
    file order (the others are left out and their number logged), qrels = the grades.
    ``limit_queries`` keeps the first that many judged queries (the corpus stays whole). A qrels line
    naming a query or passage id that the other files lack, or a bad line anywhere, is a
    :class:`~rerank_utils.data.DataValidationError` (a ``ValueError``) naming the file and line.
    """
    cpath = _existing_file(collection_tsv, "MS MARCO collection")
    qpath = _existing_file(queries_tsv, "MS MARCO queries file")
    rpath = _existing_file(qrels_path, "MS MARCO qrels file")
    problems: list[tuple[str, str, str, str]] = []
    corpus, n_docs = _read_id_text_tsv(cpath, "passage", problems)
    all_queries, n_queries = _read_id_text_tsv(qpath, "query", problems)
    qrels: dict[str, dict[str, float]] = defaultdict(dict)
    n_rows = 0
    with _open_text(rpath) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            where = (str(rpath), f"line {lineno}")
            if len(parts) == 3 and lineno == 1 and not _is_number(parts[2]):
                continue  # a header such as "query-id corpus-id score"
            n_rows += 1
            if len(parts) == 4:
                qid, _, pid, grade = parts
            elif len(parts) == 3:
                qid, pid, grade = parts
            else:
                problems.append((*where, "invalid_row", f"expected 'qid 0 pid grade', found {len(parts)} fields"))
                continue
            if not _is_number(grade):
                problems.append((*where, "invalid_row", f"grade {grade!r} is not a number"))
            elif qid not in all_queries:
                problems.append((*where, "unknown_query_id", f"query id {qid!r} is not in {qpath}"))
            elif pid not in corpus:
                problems.append((*where, "unknown_doc_id", f"passage id {pid!r} is not in {cpath}"))
            else:
                qrels[qid][pid] = float(grade)
    if problems:
        raise _data_error(
            problems,
            f"{cpath} + {qpath} + {rpath}",
            n_docs + n_queries + n_rows,
            "check that the three files belong together (e.g. qrels.dev.small.tsv with queries.dev.small.tsv)",
        )
    judged = [q for q in all_queries if any(g > 0 for g in qrels.get(q, {}).values())]
    if len(judged) < len(all_queries):
        logger.info("%s: %d of %d queries have no relevant passage in %s and are left out",
                    qpath, len(all_queries) - len(judged), len(all_queries), rpath)
    if limit_queries is not None:
        judged = judged[:limit_queries]
    stem = qpath.name.removesuffix(".gz").removesuffix(".tsv").removeprefix("queries.")
    return RetrievalDataset(
        corpus=corpus,
        queries={q: all_queries[q] for q in judged},
        qrels={q: dict(qrels[q]) for q in judged},
        name=f"msmarco-{stem}",
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Any BEIR folder, any triples file, and the dispatcher
# ---------------------------------------------------------------------------------------------------


def load_beir_folder(folder: str | os.PathLike, split: str = "test", mode: str = "strict"):
    """Any BEIR-format folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Source: your own data, or any BEIR dataset you downloaded (each has its own licence; check it).
    A thin wrapper over :func:`rerank_utils.data.read_beir`: returns ``(RetrievalDataset,
    ValidationReport)``; ``mode="strict"`` stops at bad records (file and line named), ``"drop"`` drops
    and counts them in the report.
    """
    return read_beir(folder, split=split, mode=mode)


def load_triples_file(path: str | os.PathLike, mode: str = "strict", require_positive: bool = True):
    """Any file in the guide's triples format ``{"query", "passage", "score"}`` (JSON array, JSONL, CSV).

    Source: your own labelled pairs, or the Chinese sample ``data/zh_legal_sample.jsonl`` (written for
    this repository). A thin wrapper over :func:`rerank_utils.data.read_triples`: returns
    ``(records, ValidationReport)``; ``require_positive`` makes a query without a positive a problem.
    """
    return read_triples(path, mode=mode, require_positive=require_positive)


BUILD_SOURCES = (
    "'faq' / 'faq-en' / 'faq-sv' (the packaged Swedish construction FAQ)",
    "'qasper' (kwargs: split, qasper_source=<local copy>, ...)",
    "a BEIR folder (with corpus.jsonl; kwargs: split, mode)",
    "an MS MARCO folder (with collection.tsv; kwargs: split='dev.small' picks queries.<split>.tsv and "
    "qrels.<split>.tsv, limit_queries)",
    "a triples file: .json / .jsonl / .csv in the guide's format (kwargs: mode, require_positive)",
    "an MS MARCO triples .tsv file (kwargs: limit)",
)


def build_dataset(source: str | os.PathLike, **kw) -> RetrievalDataset:
    """One entry point for every source, as the notebooks' ``data_source`` parameter names it.

    Returns a :class:`RetrievalDataset` for each: ``"faq"``/``"faq-en"``/``"faq-sv"`` -> :func:`load_faq`;
    ``"qasper"`` -> :func:`load_qasper_papers` + :func:`qasper_to_dataset`; a folder with
    ``corpus.jsonl`` -> :func:`load_beir_folder`; a folder with ``collection.tsv`` ->
    :func:`load_msmarco_dataset`; a ``.json``/``.jsonl``/``.csv`` file -> :func:`load_triples_file` +
    :func:`rerank_utils.data.triples_to_dataset` (ids from the text; score-0 pairs stay in the qrels as
    judged non-relevant); a ``.tsv`` file -> :func:`load_msmarco_triples` + the same conversion.

    Relative paths are tried from the working directory, then from the repository root (so
    ``data/zh_legal_sample.jsonl`` works from ``notebooks/``). Keyword arguments go to the builder
    (none for the FAQ). In ``mode="drop"`` what validation dropped is logged as a warning with its
    counts. Anything else: a ``ValueError`` listing the accepted sources.
    """
    text = str(source).strip()
    key = text.lower()
    if key in ("faq", "faq-en", "faq-sv"):
        _no_extra(kw, text)
        return load_faq("sv" if key == "faq-sv" else "en")
    if key == "qasper":
        split = kw.pop("split", "train")
        papers = load_qasper_papers(split=split, source=kw.pop("qasper_source", QASPER_HUB_ID), **kw)
        return qasper_to_dataset(papers, name=f"qasper-{split}")
    path = resolve_path(text)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            dataset, report = load_beir_folder(path, **kw)
            _log_report(report, path)
            return dataset
        if (path / "collection.tsv").is_file() or (path / "collection.tsv.gz").is_file():
            split = kw.pop("split", "dev.small")
            collection = path / "collection.tsv"
            if not collection.is_file():
                collection = path / "collection.tsv.gz"
            return load_msmarco_dataset(
                collection, _first_existing(path, f"queries.{split}.tsv"), _first_existing(path, f"qrels.{split}.tsv"), **kw
            )
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


def _no_extra(kw: dict, source: str) -> None:
    if kw:
        raise TypeError(f"build_dataset({source!r}) takes no keyword arguments, got {sorted(kw)}")


def _first_existing(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder / name} not found")


def _log_report(report: Any, source: Path) -> None:
    """Say what validation dropped (mode="drop"); nothing is dropped without a count."""
    dropped = getattr(report, "n_dropped", None)
    if dropped:
        logger.warning("%s: %s", source, report)
