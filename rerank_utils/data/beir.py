"""BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): read strictly (every problem named to
the file and line) and written. Notebook ``01_data_preparation`` saves its splits in this format.
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import Any

from rerank_utils.data.files import _jsonl_entries, _read_lines, _write_json_records
from rerank_utils.data.records import (
    DataValidationError,
    RetrievalDataset,
    ValidationReport,
    _check_mode,
    _Entry,
    _format_number,
    _Found,
    _kind,
)
from rerank_utils.data.triples import _check_pairs

BEIR_QRELS_HEADER = ("query-id", "corpus-id", "score")
BEIR_SPLIT = "beir_split"  # query_meta key: the qrels file (stem) a query was read from


def read_beir(
    folder: str | Path, split: str = "test", mode: str = "strict"
) -> tuple[RetrievalDataset, ValidationReport]:
    """Read and validate a BEIR folder for one split.

    The dataset holds the whole corpus (text = the ``text`` field; a non-empty ``title`` goes to
    ``doc_meta[id]["title"]``, other fields to ``doc_meta[id]`` too) and only the queries that have a
    positive (grade > 0) in ``qrels/<split>.tsv``; the others are simply not in this split.

    Problems: lines that are not UTF-8, JSON or objects; ``_id``/``text`` missing or not strings; empty
    text; the same ``_id`` twice (``duplicate_id``: the first is kept); qrels rows without three
    tab-separated columns or with a non-numeric score (``invalid_row``), naming an unknown query or
    document (``unknown_query_id``/``unknown_doc_id``), repeated (``duplicate_pair``) or repeated with
    another grade (``conflicting_labels``). The report counts the records of all three files: a query
    outside the split counts as kept (it is valid), though the dataset does not hold it.

    ``split="all"``: every ``qrels/*.tsv`` at once (corpus and queries read once); each query's split is its
    ``query_meta[q]["beir_split"]``, which
    :func:`~rerank_utils.data.splits.make_splits` turns back into the folder's own train / val / test. A query
    with positives in two qrels files is an error naming both.

    Raises FileNotFoundError naming the missing file (for a missing split: the splits present).
    """
    _check_mode(mode)
    folder = Path(folder)
    names = beir_splits(folder) if split == "all" else [split]
    if not names:
        _beir_paths(folder, "test")  # names what is missing
    corpus_path, queries_path, _ = _beir_paths(folder, names[0])

    corpus, doc_meta, doc_report = _beir_items(corpus_path, "document")
    queries, query_meta, query_report = _beir_items(queries_path, "query")
    reports = [doc_report, query_report]
    qrels: dict[str, dict[str, float]] = {}
    split_of: dict[str, str] = {}
    for name in names:
        these, qrels_report = _beir_qrels(_beir_paths(folder, name)[2], queries, corpus)
        reports.append(qrels_report)
        twice = sorted(q for q in these if q in split_of and any(g > 0 for g in these[q].values()))
        if twice:
            raise ValueError(f"{folder}: queries {twice[:5]} ({len(twice)} in all) have judgements in qrels/{split_of[twice[0]]}.tsv and "
                             f"qrels/{name}.tsv; a query belongs to one split: fix the folder, or read one split (split='{name}')")
        for qid, judged in these.items():
            qrels[qid] = judged
            if any(grade > 0 for grade in judged.values()):
                split_of[qid] = name

    in_split = [qid for qid in queries if qid in split_of]
    dataset = RetrievalDataset(
        corpus=corpus,
        queries={qid: queries[qid] for qid in in_split},
        qrels={qid: qrels[qid] for qid in in_split},
        doc_meta=doc_meta,
        query_meta=({qid: {**query_meta.get(qid, {}), BEIR_SPLIT: split_of[qid]} for qid in in_split} if split == "all"
                    else {qid: query_meta[qid] for qid in in_split if qid in query_meta}),
        name=folder.name,
    )
    report = _merge_reports(str(folder), reports)
    if mode == "strict" and report.problems:
        raise DataValidationError(report)
    return dataset, report


def beir_splits(folder: str | Path) -> list[str]:
    """The splits a BEIR folder holds: the stems of ``qrels/*.tsv``, train first, then dev / val, then test, then
    any others by name."""
    qrels = Path(folder) / "qrels"
    found = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
    order = {"train": 0, "dev": 1, "val": 1, "validation": 1, "test": 2}
    return sorted(found, key=lambda name: (order.get(name, 3), name))


def write_beir(ds: RetrievalDataset, folder: str | Path, split: str = "test") -> Path:
    """Write ``ds`` as a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    ``doc_meta["title"]`` becomes the ``title`` field; other metadata is written as further fields (and
    read back into the metadata by :func:`read_beir`). To put several splits in one folder, call this
    once per split: ``queries.jsonl`` keeps the queries already there (a query of ``ds`` replaces the one
    with its id), the corpus is rewritten (splits made by :func:`~rerank_utils.data.splits.split_dataset` share it), and other
    splits' qrels files are left alone. Returns the folder.
    """
    if not split or split != split.strip() or any(sep in split for sep in "/\\"):
        raise ValueError(f"split must be a plain name such as 'train' or 'test', got {split!r}")
    missing = [(q, d) for q in ds.queries for d in ds.qrels.get(q, {}) if d not in ds.corpus]
    if missing:
        raise ValueError(f"qrels name documents that are not in the corpus: {missing[:5]}; fix the dataset first")
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [_beir_row(doc_id, text, ds.doc_meta.get(doc_id, {}), title=True) for doc_id, text in ds.corpus.items()]
    _write_json_records(docs, folder / "corpus.jsonl", array=False)
    queries = [_beir_row(qid, text, ds.query_meta.get(qid, {}), title=False) for qid, text in ds.queries.items()]
    _write_json_records(_merged_by_id(folder / "queries.jsonl", queries), folder / "queries.jsonl", array=False)
    lines = ["\t".join(BEIR_QRELS_HEADER)]
    lines += [f"{qid}\t{doc_id}\t{_format_number(grade)}" for qid in ds.queries for doc_id, grade in ds.qrels.get(qid, {}).items()]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return folder


def _beir_paths(folder: Path, split: str) -> tuple[Path, Path, Path]:
    layout = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; {layout}")
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; {layout}")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        present = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise FileNotFoundError(
            f"{qrels_path} is missing, so there is no {split!r} split; "
            f"splits present: {', '.join(present) if present else 'none (no qrels/*.tsv)'}"
        )
    return corpus_path, queries_path, qrels_path


def _beir_items(path: Path, what: str) -> tuple[dict[str, str], dict[str, dict], ValidationReport]:
    """``{id: text}`` and ``{id: metadata}`` of the valid lines of a corpus or queries JSONL file, and the report."""
    entries = _jsonl_entries(path)
    found = _Found(str(path), entries)
    texts: dict[str, str] = {}
    meta: dict[str, dict] = {}
    first_at: dict[str, int] = {}
    for i, value in found.each_ok():
        if not isinstance(value, dict):
            found.add(i, "not_an_object", f'line is {_kind(value)}, not an object; write {{"_id": "...", "text": "..."}}')
            continue
        if found.add_all(i, _beir_item_issues(value, what)):
            continue
        item_id = value["_id"].strip()
        if item_id in first_at:
            found.add(i, "duplicate_id", f"_id {item_id!r} is also at {entries[first_at[item_id]].location}; give each "
                      f"{what} its own id or remove the repeat", "_id")
            continue
        first_at[item_id] = i
        texts[item_id] = value["text"].strip()
        extra = {key: val for key, val in value.items() if key not in ("_id", "title", "text")}
        title = (value.get("title") or "").strip()
        if title or extra:
            meta[item_id] = ({"title": title} if title else {}) | extra
    return texts, meta, found.report()


def _beir_item_issues(value: dict, what: str) -> list[tuple[str, str, str]]:
    issues = []
    for name in ("_id", "text"):
        if name not in value:
            issues.append(("missing_field", f"field {name!r} is missing; every {what} needs _id and text", name))
        elif not isinstance(value[name], str):
            issues.append(("wrong_type", f"field {name!r} is {_kind(value[name])}; write it as a JSON string", name))
    title = value.get("title")
    if title is not None and not isinstance(title, str):
        issues.append(("wrong_type", f"field 'title' is {_kind(title)}; write it as a JSON string or leave it out", "title"))
    if issues:
        return issues
    if not value["_id"].strip():
        issues.append(("empty_text", f"field '_id' is empty; give every {what} an id", "_id"))
    if not value["text"].strip() and (what == "query" or not (title or "").strip()):
        issues.append(("empty_text", f"field 'text' is empty; write the {what}'s text or remove the line", "text"))
    return issues


def _qrels_entries(path: Path) -> list[_Entry]:
    """One entry per data row of a qrels TSV (cells stripped); the header line is skipped."""
    entries = []
    first = True
    for line in _read_lines(path):
        location = f"line {line.number}"
        if line.problem is not None:
            entries.append(_Entry(location, problem=line.problem))
            continue
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        cells = [cell.strip() for cell in text.split("\t")]
        is_header = first and (
            cells[0].lower() in ("query-id", "query_id", "qid") or (len(cells) == 3 and _parse_number(cells[2]) is None)
        )
        first = False
        if not is_header:
            entries.append(_Entry(location, cells))
    return entries


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _beir_qrels(
    path: Path, queries: dict[str, str], corpus: dict[str, str]
) -> tuple[dict[str, dict[str, float]], ValidationReport]:
    """``qrels[qid][doc_id] = grade`` from the valid rows of a qrels file, and the report."""
    found = _Found(str(path), _qrels_entries(path))
    rows: dict[int, tuple[tuple[str, str], float]] = {}
    layout = "qrels rows are query-id<TAB>corpus-id<TAB>score"
    for i, cells in found.each_ok():
        if len(cells) != 3:
            found.add(i, "invalid_row", f"row has {len(cells)} tab-separated columns, not 3; {layout}")
            continue
        qid, doc_id, raw = cells
        grade = _parse_number(raw)
        if not qid or not doc_id:
            found.add(i, "invalid_row", f"row has an empty id; {layout}")
        elif grade is None:
            found.add(i, "invalid_row", f"score {raw!r} is not a number; write a grade (0, 1, 2, ...) or a float", "score")
        else:
            if qid not in queries:
                found.add(i, "unknown_query_id", f"query-id {qid!r} is not in queries.jsonl (or its line there has a "
                          "problem); add the query or remove the row", "query-id")
            if doc_id not in corpus:
                found.add(i, "unknown_doc_id", f"corpus-id {doc_id!r} is not in corpus.jsonl (or its line there has a "
                          "problem); add the document or remove the row", "corpus-id")
            if found.ok(i):
                rows[i] = ((qid, doc_id), grade)
    _check_pairs(rows, found, "query-id and corpus-id", repeat_field="corpus-id", score_field="score")
    qrels: dict[str, dict[str, float]] = {}
    for i, ((qid, doc_id), grade) in rows.items():
        if found.ok(i):
            qrels.setdefault(qid, {})[doc_id] = grade
    return qrels, found.report()


def _merge_reports(source: str, reports: list[ValidationReport]) -> ValidationReport:
    return ValidationReport(
        source=source,
        n_input=sum(r.n_input for r in reports),
        n_kept=sum(r.n_kept for r in reports),
        dropped=sum((r.dropped for r in reports), collections.Counter()),
        problems=[p for r in reports for p in r.problems],
    )


def _beir_row(item_id: str, text: str, meta: dict, title: bool) -> dict:
    row: dict[str, Any] = {"_id": item_id}
    if title or "title" in meta:
        row["title"] = meta.get("title") or ""
    row["text"] = text
    row.update((key, val) for key, val in meta.items() if key not in ("_id", "title", "text", BEIR_SPLIT))  # the qrels file says the split
    return row


def _merged_by_id(path: Path, rows: list[dict]) -> list[dict]:
    """The rows already in a JSONL file, each replaced by the row of ``rows`` with its ``_id``, then the
    remaining ``rows``. Lines that are not JSON objects with an ``_id`` are not carried over."""
    new = {row["_id"]: row for row in rows}
    merged = []
    seen: set[str] = set()
    if path.is_file():
        for line in path.read_bytes().splitlines():
            try:
                old = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(old, dict) and isinstance(old.get("_id"), str) and old["_id"] not in seen:
                seen.add(old["_id"])
                merged.append(new.pop(old["_id"], old))
    return merged + list(new.values())
