"""Manual labelling: label your own (query, passage) pairs in the notebook, hardest first, resumable.

Introduced in notebook ``13_labelling_your_own_data`` (the guide's first way of collecting data,
"manual labelling").

The pieces, each usable on its own (this module holds the first; the others are
:mod:`~rerank_utils.labelling.labeller`, :mod:`~rerank_utils.labelling.widget` and
:mod:`~rerank_utils.labelling.store`):

* :func:`propose_candidates` asks a first stage (BM25, or the bi-encoder through
  :class:`rerank_utils.retrieval.dense.DenseRetriever`) for each query's top ``top_k`` passages and orders
  them **hardest first** (:func:`hardest_first`): every query's rank-1 candidate, then every query's
  rank-2 candidate, and so on. Why: the candidates a first stage ranks highest are the ones a reranker
  must get right. When relevant, they are the positives it must keep on top; when not, they are the
  *hard negatives* the guide asks for (similar but not relevant), far more useful than random passages.
  Going rank by rank across queries (not query by query) spreads the labels over all queries, so a
  session stopped early still leaves as many queries as possible with their likeliest positive judged,
  and the label set stays balanced over query types. Within one rank, queries keep their given order
  (first-stage scores are not comparable across queries, BM25's least of all).
* :class:`~rerank_utils.labelling.labeller.Labeller` shows one candidate at a time (:attr:`~rerank_utils.labelling.labeller.Labeller.current`) and records decisions with
  plain methods: :meth:`~rerank_utils.labelling.labeller.Labeller.label`, :meth:`~rerank_utils.labelling.labeller.Labeller.relevant`, :meth:`~rerank_utils.labelling.labeller.Labeller.not_relevant`,
  :meth:`~rerank_utils.labelling.labeller.Labeller.skip`, :meth:`~rerank_utils.labelling.labeller.Labeller.undo`. It reports :meth:`~rerank_utils.labelling.labeller.Labeller.progress` (labelled of
  proposed, skipped, positives, negatives, the positive:negative ratio), :meth:`~rerank_utils.labelling.labeller.Labeller.per_query` and
  :meth:`~rerank_utils.labelling.labeller.Labeller.ratio_advice` (the guide's 1:1 to 1:4).
* :class:`~rerank_utils.labelling.widget.LabellerWidget` (``labeller.widget()``) is a thin ipywidgets layer: its buttons call those
  methods and redraw, so tests drive it headlessly with ``widget.relevant_button.click()``.

Files (see :class:`~rerank_utils.labelling.store.LabelStore`):

* the **labels file**, e.g. ``labels.jsonl``: the guide's triples, one JSON object per line,
  ``{"query": ..., "passage": ..., "score": 1 or 0}``, nothing else. At every moment it validates with
  ``rerank_utils.data.sources.load_triples_file(path, require_positive=False)``. (``require_positive``
  stays off while labelling: a query whose judged candidates were all not relevant has no positive.)
  :meth:`~rerank_utils.labelling.labeller.Labeller.export_training_file` writes the queries that do have a positive, the file to set
  as ``data_source`` in notebook ``01_data_preparation``; it validates with ``load_triples_file(path)``
  as is.
* the **skips file** beside it, ``labels.skipped.jsonl``: ``{"query": ..., "passage": ...}`` per skipped
  pair, so a skip is remembered without putting a fake label in the triples. Delete a line (or the
  file) to see those pairs again.

Nothing is lost if the kernel dies: each decision is appended to its file, flushed and (by default)
fsync'ed before the method returns. A new :class:`~rerank_utils.labelling.labeller.Labeller` on the same files resumes: labelled and
skipped pairs are not proposed again. Pairs are identified by their text (stripped), as the triples
file stores them. One labeller per file at a time; give each person their own file.

A labels or skips file that cannot be read raises :class:`rerank_utils.data.records.DataValidationError`
naming the file, the line and the field of every problem, and nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rerank_utils.data.beir import _beir_items
from rerank_utils.data.files import _read_lines
from rerank_utils.data.records import DataValidationError, ValidationReport, _kind
from rerank_utils.models.loading import load_bi_encoder
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.queries import _check_top_k

FIRST_STAGES = ("bm25", "dense")


Pair = tuple[str, str]


def _pair(query: str, passage: str) -> Pair:
    return (query.strip(), passage.strip())


# ------------------------------------------------------------------------------------------ candidates
@dataclass(frozen=True)
class Candidate:
    """One (query, passage) pair a first stage proposed: ids, texts, its 1-based rank and score."""
    query_id: str
    doc_id: str
    query: str
    passage: str
    rank: int
    first_stage_score: float

    @property
    def pair(self) -> Pair:
        """``(query, passage)``, stripped: how the labels file identifies the pair."""
        return _pair(self.query, self.passage)


def _query_dict(queries: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(queries, str):
        raise TypeError("queries must be a dict id -> text or a list of texts, not a single string")
    items = queries.items() if isinstance(queries, Mapping) else ((str(i), q) for i, q in enumerate(queries))
    out = {}
    for qid, text in items:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"query {qid!r} is {_kind(text)}; every query needs non-empty text")
        out[str(qid)] = text
    return out


def _check_corpus(corpus: Mapping[str, str]) -> None:
    if not corpus:
        raise ValueError("the corpus is empty: give the passages to label as a dict doc id -> text")
    for doc_id, text in corpus.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"document {doc_id!r} is {_kind(text)}; every passage needs non-empty text (remove it)")


def hardest_first(
    run: Mapping[str, Mapping[str, float]], queries: Mapping[str, str], corpus: Mapping[str, str]
) -> list[Candidate]:
    """The candidates of a first-stage ``run`` (``{qid: {doc id: score}}`` in ranked order), hardest first.

    Order: rank 1 of every query (queries in the order of ``queries``), then rank 2 of every query, and
    so on; see the module docstring for why. A pair whose (query, passage) text repeats an earlier one
    (two documents with the same text) is proposed once, at its best rank. Queries absent from ``run``
    (a first stage may return nothing for a query) simply have no candidates.
    """
    per_query = []
    for qid in queries:
        ranked = run.get(qid, {})
        unknown = [d for d in ranked if d not in corpus]
        if unknown:
            raise KeyError(f"the run names doc {unknown[0]!r} (for query {qid!r}) that is not in the corpus")
        per_query.append(
            [Candidate(qid, d, queries[qid], corpus[d], rank, float(score)) for rank, (d, score) in enumerate(ranked.items(), 1)]
        )
    out: list[Candidate] = []
    seen: set[Pair] = set()
    for depth in range(max((len(c) for c in per_query), default=0)):
        for cands in per_query:
            if depth < len(cands) and cands[depth].pair not in seen:
                seen.add(cands[depth].pair)
                out.append(cands[depth])
    return out


def propose_candidates(
    queries: Mapping[str, str] | Sequence[str],
    corpus: Mapping[str, str],
    first_stage: Any = "bm25",
    top_k: int = 10,
    model: Any = "default",
    device: str | None = None,
    lang: str = "auto",
) -> list[Candidate]:
    """Each query's top ``top_k`` passages from a first stage, hardest first (:func:`hardest_first`).

    ``first_stage``: ``"bm25"`` (:class:`rerank_utils.retrieval.bm25.BM25Retriever`, ``lang`` as there),
    ``"dense"`` (:class:`rerank_utils.retrieval.dense.DenseRetriever` over ``model``, a name for
    :func:`rerank_utils.models.loading.load_bi_encoder` such as ``"default"`` or an encoder object), any object
    with ``search(queries, top_k)`` returning ``{qid: {doc id: score}}``, or such a run dict itself.
    ``queries`` is a dict id -> text or a list of texts (ids ``"0"``, ``"1"``, ...).
    """
    _check_top_k(top_k)
    qdict = _query_dict(queries)
    _check_corpus(corpus)
    if isinstance(first_stage, Mapping):
        run = first_stage
    elif hasattr(first_stage, "search"):
        run = first_stage.search(qdict, top_k=top_k)
    elif first_stage == "bm25":
        run = BM25Retriever(corpus, lang=lang).search(qdict, top_k=top_k)
    elif first_stage == "dense":
        if isinstance(model, (str, os.PathLike)):
            model = load_bi_encoder(model, device=device)
        run = DenseRetriever(corpus, model).search(qdict, top_k=top_k)
    else:
        raise ValueError(
            f"first_stage must be one of {', '.join(map(repr, FIRST_STAGES))}, a retriever with search(), "
            f"or a run dict; got {first_stage!r}"
        )
    run = {qid: dict(list(ranked.items())[:top_k]) for qid, ranked in run.items()}
    return hardest_first(run, qdict, corpus)


def load_texts(path: str | os.PathLike, what: str = "document") -> dict[str, str]:
    """Your own queries or passages, as ``{id: text}``, for :func:`propose_candidates`.

    ``.txt``: one text per non-blank line; the id is the line number (``"1"``, ``"2"``, ...).
    ``.jsonl``: one ``{"_id": ..., "text": ...}`` per line, as a BEIR ``corpus.jsonl`` or ``queries.jsonl``
    (a ``title`` is allowed; a document with only a title uses it as its text). Every problem (bytes that
    are not UTF-8, a line that is not JSON, a missing or empty field, a repeated id) raises
    :class:`rerank_utils.data.records.DataValidationError` naming the file, the line and the field.
    ``what`` (``"document"`` or ``"query"``) only words the messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts, problems = {}, []
        for line in _read_lines(path):
            if line.problem is not None:
                problems.append(line.problem)
            elif line.text.strip():
                texts[str(line.number)] = line.text.strip()
        if problems:
            report = ValidationReport(str(path), len(texts) + len(problems), len(texts), problems=problems)
            raise DataValidationError(report, hint="re-save the file as UTF-8")
    elif suffix == ".jsonl":
        texts, meta, report = _beir_items(path, what)
        if report.problems:
            raise DataValidationError(report, hint='fix those lines: each must be {"_id": "...", "text": "..."}')
        texts = {i: t or meta.get(i, {}).get("title", "") for i, t in texts.items()}
    else:
        raise ValueError(f"{path}: use a .txt file (one text per line) or a .jsonl file (_id and text per line)")
    if not texts:
        raise ValueError(f"{path} holds no text")
    return texts
