"""QASPER (allenai/qasper, CC BY 4.0): papers read from the hub's parquet conversion or a local copy, normalised,
and turned into the guide's triples or a :class:`~rerank_utils.data.records.RetrievalDataset` (evidence
paragraphs are the positives). Notebook ``10_qasper_case_study``.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from datasets import load_dataset

from rerank_utils.data.hub import (
    HubDatasetUnavailable,
    _hub_reachable,
    _hub_unavailable_message,
    _looks_like_hub_id,
)
from rerank_utils.data.records import RetrievalDataset

QASPER_HUB_ID = "allenai/qasper"


_ANSWER_DEFAULTS: dict[str, Any] = {
    "unanswerable": False,
    "extractive_spans": [],
    "yes_no": None,
    "free_form_answer": "",
    "evidence": [],
    "highlighted_evidence": [],
}

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
      or with the hub unreachable this fails within seconds with :class:`~rerank_utils.data.hub.HubDatasetUnavailable`,
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
    by_suffix = (sorted(p for p in path.rglob(f"*{ext}") if p.is_file()) for ext in (".parquet", ".jsonl", ".json"))
    found = next((files for files in by_suffix if files), [])  # the first suffix that has files
    if not found:
        raise FileNotFoundError(f"no .parquet, .jsonl or .json files under {path}")

    def tokens(p: Path) -> set[str]:  # the lower-cased folder names and the parts of the file name
        return {s.lower() for s in p.relative_to(path).parts[:-1]} | set(re.split(r"[-_.\s]+", p.stem.lower()))

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
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data"):
            return None
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _dict_of_lists(items: Sequence[dict]) -> dict[str, list]:
    keys = dict.fromkeys(k for item in items for k in item)  # every item's keys, first-seen order
    return {k: [item.get(k) for item in items] for k in keys}


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
    if paper.get("id") in (None, ""):
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
    stats = dict.fromkeys(("n_papers", "n_questions", "n_duplicate_questions_merged", "n_with_evidence",
                           "n_skipped_no_evidence", "n_unanswerable", "n_float_evidence_skipped", "n_evidence_not_found",
                           "n_positives", "n_negatives", "n_short_of_negatives", "n_duplicate_pairs_skipped"), 0)
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
