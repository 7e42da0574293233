"""MS MARCO: the official triples file and the collection/queries/qrels folder, read into triples or a
:class:`~rerank_utils.data.records.RetrievalDataset` (the terms of use are printed with it).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

from rerank_utils.data.hub import _data_error, _existing_file, _open_text
from rerank_utils.data.records import RetrievalDataset

logger = logging.getLogger(__name__)


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
    :class:`~rerank_utils.data.records.DataValidationError` (a ``ValueError``) naming the file and each line.
    """
    p = _existing_file(path, "MS MARCO triples file")
    problems: list[tuple[str, str, str, str]] = []
    records: list[dict] = []
    index: dict[tuple[str, str], int] = {}  # (query, passage) -> position in records
    conflicts = 0
    n_lines = 0
    with _open_text(p) as fh:
        for lineno, line in _data_lines(fh):
            if limit is not None and lineno > limit:
                break
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


def _data_lines(fh: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its end)`` of each line that is not blank."""
    return ((lineno, line.rstrip("\r\n")) for lineno, line in enumerate(fh, 1) if line.strip())


def _read_id_text_tsv(path: Path, what: str, problems: list[tuple[str, str, str, str]]) -> tuple[dict[str, str], int]:
    out: dict[str, str] = {}
    n_lines = 0
    with _open_text(path) as fh:
        for lineno, line in _data_lines(fh):
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
    :class:`~rerank_utils.data.records.DataValidationError` (a ``ValueError``) naming the file and line.
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
        for lineno, line in _data_lines(fh):
            parts = line.split()
            where = (str(rpath), f"line {lineno}")
            if len(parts) == 3 and lineno == 1 and not _is_number(parts[2]):
                continue  # a header such as "query-id corpus-id score"
            n_rows += 1
            if len(parts) not in (3, 4):
                problems.append((*where, "invalid_row", f"expected 'qid 0 pid grade', found {len(parts)} fields"))
                continue
            qid, pid, grade = parts[0], parts[-2], parts[-1]  # TREC's "qid 0 pid grade" or "qid pid grade"
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
