"""The guide's QASPER case study (its section 6), done so that it runs and can be checked.

* :func:`faq_as_qasper_papers`: the packaged FAQ dressed in QASPER's schema (one "paper" per FAQ
  category, its answers as paragraphs, its questions with their answers as evidence), so the whole case
  study runs offline through the same QASPER loader and builders as the real data.
* :func:`write_qasper_jsonl` / :func:`split_papers`: the fixture on disk (one paper per line, one file
  per split), and a seeded split of papers (a paper's questions never cross splits).
* :func:`within_group_runs`: a first stage restricted to each query's own paper, as the case study ranks
  the paragraphs of one paper for each of its questions.
* :func:`rows_from_triples`: the guide's triples as training rows for any loss of
  :func:`rerank_utils.training.trainer.fine_tune`.

Introduced in notebook ``10_qasper_case_study``.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rerank_utils.data.faq import load_faq
from rerank_utils.data.records import RetrievalDataset
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.arguments import LOSSES


def faq_as_qasper_papers(lang: str = "en") -> list[dict]:
    """The packaged FAQ (CC BY 4.0, see :mod:`rerank_utils.data.faq`) in QASPER's hub schema: one paper per
    category (``id`` ``faq-<category>``, title = the category), one section ``"Answers"`` whose paragraphs
    are the category's answers, and one question per FAQ question with its answers as ``evidence`` and
    ``highlighted_evidence``. A stand-in for QASPER's structure, not for its difficulty: FAQ answers are
    short and each question has one or two evidence paragraphs."""
    ds = load_faq(lang)
    answers: dict[str, list[str]] = defaultdict(list)
    for doc_id in ds.corpus:
        answers[ds.doc_meta[doc_id]["category"]].append(doc_id)
    questions: dict[str, list[str]] = defaultdict(list)
    for qid in ds.queries:
        questions[ds.query_meta[qid]["category"]].append(qid)
    papers = []
    for category in sorted(answers):
        qas: dict[str, list] = {"question": [], "question_id": [], "nlp_background": [], "topic_background": [],
                                "paper_read": [], "search_query": [], "question_writer": [], "answers": []}
        for qid in questions.get(category, []):
            evidence = [ds.corpus[d] for d in ds.qrels[qid] if ds.qrels[qid][d] > 0]
            answer = {"unanswerable": False, "extractive_spans": [], "yes_no": None, "free_form_answer": evidence[0][:200],
                      "evidence": evidence, "highlighted_evidence": evidence}
            for key, value in (("question", ds.queries[qid]), ("question_id", qid), ("nlp_background", ""), ("topic_background", ""),
                               ("paper_read", ""), ("search_query", ""), ("question_writer", "faq")):
                qas[key].append(value)
            qas["answers"].append({"answer": [answer], "annotation_id": [f"{qid}-a"], "worker_id": ["faq"]})
        papers.append({
            "id": f"faq-{category}",
            "title": category,
            "abstract": f"Questions and answers on {category} (Swedish construction law FAQ).",
            "full_text": {"section_name": ["Answers"], "paragraphs": [[ds.corpus[d] for d in answers[category]]]},
            "qas": qas,
            "figures_and_tables": {"caption": [], "file": []},
        })
    return papers


def split_papers(papers: Sequence[dict], n_test: int, n_val: int = 0, seed: int = 42) -> dict[str, list[dict]]:
    """A seeded split of whole papers into ``train`` / ``val`` / ``test`` (``n_test`` and ``n_val`` papers;
    the rest train), so no paper's paragraphs or questions are in two splits."""
    if n_test < 1 or n_val < 0 or n_test + n_val >= len(papers):
        raise ValueError(f"split_papers: n_test={n_test} (>= 1) and n_val={n_val} (>= 0) must leave training papers out of {len(papers)}")
    order = list(range(len(papers)))
    random.Random(seed).shuffle(order)
    pick = lambda idx: [papers[i] for i in sorted(idx)]  # noqa: E731 - keep the papers' own order inside a split
    return {"train": pick(order[n_test + n_val:]), "val": pick(order[n_test:n_test + n_val]), "test": pick(order[:n_test])}


def sample_papers(papers: Sequence[dict], n: int | None, seed: int = 42) -> list[dict]:
    """A seeded sample of ``n`` papers in their original order (all of them when ``n`` is None or not
    smaller than the list), e.g. the guide's 800 training and 80 test papers."""
    if n is None or n >= len(papers):
        return list(papers)
    if n < 1:
        raise ValueError(f"sample_papers: n={n}, must be >= 1 or None")
    keep = set(random.Random(seed).sample(range(len(papers)), n))
    return [p for i, p in enumerate(papers) if i in keep]


def write_qasper_jsonl(splits: dict[str, Sequence[dict]], folder: str | os.PathLike) -> Path:
    """Write ``{split: papers}`` as ``<folder>/<split>.jsonl`` (one paper per line, QASPER's schema), the
    layout :func:`rerank_utils.data.qasper.load_qasper_papers` reads from a local folder (``val`` is written
    as ``validation``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, papers in splits.items():
        name = {"val": "validation"}.get(split, split)
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for paper in papers:
                f.write(json.dumps(paper, ensure_ascii=False) + "\n")
    return folder


def within_group_runs(ds: RetrievalDataset, make_retriever: Callable[[dict[str, str]], Any], top_k: int = 20,
                      group_key: str = "paper_id") -> dict[str, dict[str, float]]:
    """Search each query only among the documents of its own group (``query_meta[q][group_key]`` ==
    ``doc_meta[d][group_key]``, e.g. the paper): ``make_retriever(corpus_of_the_group)`` builds a first
    stage (``BM25Retriever`` or ``DenseRetriever``) per group. Queries or documents without the key are an
    error that names one of them."""
    docs_by_group = _by_group(ds.corpus, ds.doc_meta, group_key, "document", "doc_meta")
    queries_by_group = _by_group(ds.queries, ds.query_meta, group_key, "query", "query_meta")
    run: dict[str, dict[str, float]] = {}
    for group, queries in queries_by_group.items():
        corpus = docs_by_group.get(group)
        if not corpus:
            run.update({q: {} for q in queries})
            continue
        run.update(make_retriever(corpus).search(queries, top_k=min(top_k, len(corpus))))
    return run


def within_paper_first_stages(ds: RetrievalDataset, bi_encoder: Any, top_k: int = 20, group_key: str = "paper_id") -> dict[str, dict]:
    """``{"BM25": run, "bi-encoder": run}``, each query searched only among its own paper's paragraphs
    (:func:`within_group_runs` with ``BM25Retriever`` and ``DenseRetriever(bi_encoder)``)."""
    return {"BM25": within_group_runs(ds, BM25Retriever, top_k=top_k, group_key=group_key),
            "bi-encoder": within_group_runs(ds, lambda c: DenseRetriever(c, bi_encoder), top_k=top_k, group_key=group_key)}


def _by_group(texts: dict[str, str], meta: dict[str, dict], key: str, what: str, field: str) -> dict[Any, dict[str, str]]:
    out: dict[Any, dict[str, str]] = defaultdict(dict)
    for item_id, text in texts.items():
        item_meta = meta.get(item_id) or {}
        if key not in item_meta:
            raise KeyError(f"within_group_runs: {what} {item_id!r} has no {field}[{key!r}]")
        out[item_meta[key]][item_id] = text
    return out


def rows_from_triples(records: Iterable[dict], loss: str = "bce") -> list[dict]:
    """The guide's triples (``{query, passage, score}``) as training rows for ``loss`` (see
    :func:`rerank_utils.training.samples.training_rows`): ``bce`` one row per triple with ``label`` = score;
    ``lambda`` / ``listnet`` / ``softmax`` one list per query (its passages, positives first, and their
    scores). ``mnrl`` needs one positive and fixed negatives per row: use ``training_rows`` for it."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss == "mnrl":
        raise ValueError("rows_from_triples: loss 'mnrl' needs rows of one positive and N negatives; build a RetrievalDataset and use training_rows")
    records = list(records)
    for i, r in enumerate(records):
        missing = [k for k in ("query", "passage", "score") if k not in r]
        if missing:
            raise ValueError(f"rows_from_triples: record {i} lacks {missing}; each needs query, passage and score")
    if loss == "bce":
        return [{"query": r["query"], "passage": r["passage"], "label": float(r["score"])} for r in records]
    grouped: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        grouped[r["query"]].append((r["passage"], float(r["score"])))
    rows, without_positive = [], 0
    for query, items in grouped.items():
        items.sort(key=lambda x: -x[1])  # positives first (stable within a grade)
        if items[0][1] <= 0:
            without_positive += 1  # a list without a positive teaches a listwise loss nothing
            continue
        rows.append({"query": query, "docs": [p for p, _ in items], "labels": [s for _, s in items]})
    if without_positive:
        warnings.warn(f"rows_from_triples(loss={loss!r}): {without_positive} queries skipped (no passage with score > 0)", UserWarning, stacklevel=2)
    return rows
