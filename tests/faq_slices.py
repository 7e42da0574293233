"""Small slices of the packaged FAQ for integration tests: some queries over a smaller corpus.

Encoding the whole corpus (503 answers) costs about 5 s on 2 CPU cores each time a test builds an index with a new
model; a test that checks how two code paths agree needs real FAQ text, not all of it. A slice keeps every
positive of its queries and adds distractors in corpus order, so retrieval is still a real (smaller) task.
"""

from __future__ import annotations

from rerank_utils.data.faq import load_faq
from rerank_utils.data.records import RetrievalDataset


def faq_slice(ds: RetrievalDataset | None = None, documents: int = 160) -> RetrievalDataset:
    """``ds`` (default: the English FAQ) over at most ``documents`` answers: its queries' positives first, then
    the first other answers in corpus order. Raises when the positives alone are more than ``documents``."""
    ds = ds if ds is not None else load_faq("en")
    keep = list(dict.fromkeys(d for q in ds.queries for d in ds.positives(q)))
    if len(keep) > documents:
        raise ValueError(f"faq_slice: the queries have {len(keep)} positives, more than documents={documents}")
    keep += [d for d in ds.corpus if d not in set(keep)][: documents - len(keep)]
    kept = set(keep)
    return RetrievalDataset(
        corpus={d: t for d, t in ds.corpus.items() if d in kept}, queries=dict(ds.queries), qrels=ds.qrels,
        doc_meta={d: m for d, m in ds.doc_meta.items() if d in kept}, query_meta=ds.query_meta, name=f"{ds.name} (slice)",
    )
