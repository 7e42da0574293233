""":class:`BM25Retriever`: the lexical first stage (``bm25s``), the baseline every notebook starts from. Its dense
counterpart is :class:`rerank_utils.retrieval.dense.DenseRetriever`.

Introduced in notebook ``00_concepts``.

Both retrievers return the same shape: ``{query id: {doc id: score}}``, each inner dict holding at
most ``top_k`` docs in ranked order (score descending; equal scores ordered by doc id descending,
the rule :func:`rerank_utils.retrieval.queries.rank` and trec_eval use). Such a dict is a *run* that
:func:`rerank_utils.evaluation.metrics.evaluate_run` scores directly, and the candidate list a reranker
re-orders.

Tokenisation for BM25 (:func:`rerank_utils.retrieval.tokenize.tokenize`):

* ``"en"``: the ``bm25s`` tokenizer (lower-cased words of 2+ word characters) without English stopwords.
* ``"zh"``: ``jieba.lcut`` (precise mode); tokens made only of whitespace or punctuation/symbols are
  dropped, Latin tokens are lower-cased, and stopwords are removed (``bm25s``'s Chinese list plus
  its English one, for mixed text; pass ``stopwords=False`` to keep them).
* ``"auto"``: ``"zh"`` if any text of the batch contains a CJK character, else ``"en"``.
"""

from __future__ import annotations

from typing import Mapping

import bm25s

from rerank_utils.retrieval.queries import Queries, RunDict, _as_query_dict, _check_top_k, _ordered
from rerank_utils.retrieval.tokenize import _resolve_lang, tokenize


class BM25Retriever:
    """BM25 over a corpus, with ``bm25s`` (Lucene's BM25 variant: ``idf = log(1 + (N - df + .5)/(df + .5))``).

    Args:
        corpus: doc id -> text.
        lang: ``"en"``, ``"zh"`` or ``"auto"`` (decided once from the corpus and then used for the
            queries too, so both sides are tokenised the same way). The resolved value is ``self.lang``.
        k1, b: the BM25 parameters.
        stopwords: remove the language's stopwords (see :func:`~rerank_utils.retrieval.tokenize.tokenize`).

    Only documents sharing at least one token with the query get a score > 0, and only those are
    returned: a query made only of stopwords or of words absent from the corpus returns an EMPTY
    dict (no candidates), never an error.
    """
    def __init__(
        self,
        corpus: Mapping[str, str],
        lang: str = "en",
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: bool = True,
    ):
        if not corpus:
            raise ValueError("empty corpus")
        self.doc_ids: list[str] = list(corpus)
        texts = [corpus[d] for d in self.doc_ids]
        self.lang = _resolve_lang(lang, texts)
        self.stopwords = stopwords
        self.k1, self.b = k1, b
        corpus_tokens = tokenize(texts, lang=self.lang, stopwords=stopwords)
        # method="lucene" keeps every score of a doc without a query term at exactly 0
        self.bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.bm25.index(corpus_tokens, show_progress=False)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def __repr__(self) -> str:
        return f"BM25Retriever(n_docs={len(self)}, lang={self.lang!r}, k1={self.k1}, b={self.b})"

    def search(self, queries: Queries, top_k: int = 100) -> RunDict:
        """The top ``top_k`` docs per query: ``{qid: {doc id: score}}`` in ranked order.

        ``queries`` is a dict qid -> text or a list of texts (ids ``"0"``, ``"1"``, ...). ``top_k`` larger
        than the corpus is clamped to its size. Docs with score 0 (no query token) are left out, so a
        query may get fewer than ``top_k`` docs, or none (an empty dict). When several docs tie
        exactly at the cut-off, ``bm25s`` picks which of them are kept (deterministically).
        """
        _check_top_k(top_k)
        qdict = _as_query_dict(queries)
        if not qdict:
            return {}
        qids = list(qdict)
        query_tokens = tokenize([qdict[q] for q in qids], lang=self.lang, stopwords=self.stopwords)
        k = min(int(top_k), len(self.doc_ids))
        docs, scores = self.bm25.retrieve(
            query_tokens, corpus=self.doc_ids, k=k, show_progress=False, return_as="tuple"
        )
        run: RunDict = {}
        for qid, row_docs, row_scores in zip(qids, docs, scores):
            keep = row_scores > 0
            run[qid] = _ordered([str(d) for d in row_docs[keep]], row_scores[keep].tolist())
        return run
