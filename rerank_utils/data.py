"""Record types, readers, writers and validators for the three data formats, and leak-free splits.

Introduced in notebook ``01_data_preparation``.

Formats (all UTF-8):

1. Triples, the guide's format: ``{"query": str, "passage": str, "score": 0|1}`` (a float in [0, 1]
   is allowed for graded or distilled labels), as a JSON array, JSONL or CSV.
2. Grouped (FlagEmbedding's format): ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.
3. BEIR folder: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``),
   ``qrels/{train,dev,test}.tsv`` (``query-id corpus-id score``, header line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class RetrievalDataset:
    """A corpus, queries and relevance judgements (qrels): what retrieval and reranking are judged on.

    ``qrels[qid][doc_id]`` is a relevance grade; a grade > 0 means relevant.
    ``doc_meta`` / ``query_meta`` keep per-id metadata (category, sources, paper id, ...).
    """

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]
    doc_meta: dict[str, dict] = field(default_factory=dict)
    query_meta: dict[str, dict] = field(default_factory=dict)
    name: str = ""

    def __len__(self) -> int:
        return len(self.queries)

    def positives(self, qid: str) -> list[str]:
        """Doc ids judged relevant (grade > 0) for ``qid``."""
        return [d for d, g in self.qrels.get(qid, {}).items() if g > 0]

    def subset(self, query_ids: Iterable[str], name: str | None = None) -> "RetrievalDataset":
        """The same corpus with only ``query_ids`` (order kept) and their qrels and metadata."""
        ids = [q for q in query_ids]
        missing = [q for q in ids if q not in self.queries]
        if missing:
            raise KeyError(f"unknown query ids in subset(): {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        return RetrievalDataset(
            corpus=self.corpus,
            queries={q: self.queries[q] for q in ids},
            qrels={q: dict(self.qrels.get(q, {})) for q in ids},
            doc_meta=self.doc_meta,
            query_meta={q: self.query_meta[q] for q in ids if q in self.query_meta},
            name=name if name is not None else self.name,
        )
