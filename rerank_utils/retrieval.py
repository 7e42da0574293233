"""First-stage retrievers: BM25 (lexical, via ``bm25s``) and exact dense search over an embedding model.

Introduced in notebook ``00_concepts``.

Both retrievers return the same shape: ``{query id: {doc id: score}}``, each inner dict holding at
most ``top_k`` docs in ranked order (score descending; equal scores ordered by doc id descending,
the rule :func:`rerank_utils.evaluation.rank` and trec_eval use). Such a dict is a *run* that
:func:`rerank_utils.evaluation.evaluate_run` scores directly, and the candidate list a reranker
re-orders.

Tokenisation for BM25 (:func:`tokenize`):

* ``"en"``: the ``bm25s`` tokenizer (lower-cased words of 2+ word characters) without English stopwords.
* ``"zh"``: ``jieba.lcut`` (precise mode); tokens made only of whitespace or punctuation/symbols are
  dropped, Latin tokens are lower-cased, and stopwords are removed (``bm25s``'s Chinese list plus
  its English one, for mixed text; pass ``stopwords=False`` to keep them).
* ``"auto"``: ``"zh"`` if any text of the batch contains a CJK character, else ``"en"``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from .data import RetrievalDataset

Queries = Union[Mapping[str, str], Sequence[str]]
RunDict = dict[str, dict[str, float]]

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "detect_lang",
    "first_stage_run",
    "tokenize",
]

LANGS = ("en", "zh", "auto")

# CJK Unified Ideographs (+ extension A, compatibility ideographs); enough to tell Chinese text apart
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_lang(texts: str | Sequence[str]) -> str:
    """``"zh"`` if any of ``texts`` contains a CJK ideograph, else ``"en"``."""
    if isinstance(texts, str):
        texts = [texts]
    return "zh" if any(_CJK_RE.search(t) for t in texts) else "en"


def _resolve_lang(lang: str, texts: Sequence[str]) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return detect_lang(texts) if lang == "auto" else lang


_jieba = None


def _get_jieba():
    """Import jieba once, with its "Building prefix dict ..." messages silenced."""
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        _jieba = jieba
    return _jieba


def _zh_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN

    return frozenset(STOPWORDS_CHINESE) | frozenset(STOPWORDS_EN)


def tokenize(texts: str | Sequence[str], lang: str = "en", stopwords: bool = True) -> list[list[str]]:
    """Split ``texts`` into BM25 tokens: one list of string tokens per text.

    ``lang`` is ``"en"`` (bm25s tokenizer), ``"zh"`` (jieba) or ``"auto"`` (``"zh"`` if any text has
    CJK characters); see the module docstring. ``stopwords=False`` keeps stopwords.
    A text may yield no token at all (e.g. only stopwords): its list is then empty.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    lang = _resolve_lang(lang, texts)
    if not texts:
        return []
    if lang == "en":
        import bm25s

        return bm25s.tokenize(
            texts, stopwords="en" if stopwords else None, return_ids=False, show_progress=False
        )
    jieba = _get_jieba()
    stop = _zh_stopwords() if stopwords else frozenset()
    out = []
    for text in texts:
        toks = []
        for tok in jieba.lcut(text):
            tok = tok.strip().lower()
            # drop whitespace and tokens without any letter/digit/ideograph (punctuation, symbols)
            if not tok or not any(ch.isalnum() for ch in tok) or tok in stop:
                continue
            toks.append(tok)
        out.append(toks)
    return out


def _as_query_dict(queries: Queries) -> dict[str, str]:
    """A dict query id -> text; a list gets the ids "0", "1", ..."""
    if isinstance(queries, Mapping):
        return dict(queries)
    if isinstance(queries, str):
        raise TypeError("queries must be a dict qid -> text or a list of texts, not a single string")
    return {str(i): q for i, q in enumerate(queries)}


def _check_top_k(top_k: Any) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")


def _ordered(doc_ids: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
    """doc id -> score as a dict in ranked order: score descending, ties by doc id descending."""
    pairs = sorted(zip(scores, doc_ids), reverse=True)
    return {d: float(s) for s, d in pairs}


class BM25Retriever:
    """BM25 over a corpus, with ``bm25s`` (Lucene's BM25 variant: ``idf = log(1 + (N - df + .5)/(df + .5))``).

    Args:
        corpus: doc id -> text.
        lang: ``"en"``, ``"zh"`` or ``"auto"`` (decided once from the corpus and then used for the
            queries too, so both sides are tokenised the same way). The resolved value is ``self.lang``.
        k1, b: the BM25 parameters.
        stopwords: remove the language's stopwords (see :func:`tokenize`).

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
        import bm25s

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


class DenseRetriever:
    """Exact (brute-force) dense retrieval: cosine similarity (``normalize=True``) or dot product.

    Args:
        corpus: doc id -> text.
        model: an encoder with ``encode(list[str], batch_size=..., convert_to_numpy=True,
            normalize_embeddings=...) -> np.ndarray`` (a ``sentence_transformers.SentenceTransformer``),
            or a path / model name, loaded with ``SentenceTransformer``.
        batch_size: encoding batch size.
        normalize: L2-normalise the embeddings (also done here, whatever the encoder does), so that
            the dot product is the cosine similarity.
        query_prompt: a string prepended to every query before encoding (what SentenceTransformer's
            ``prompt=`` does), e.g. ``"query: "`` for E5 models. Documents get no prompt.

        backend: ``"exact"`` (numpy, chunked; the default) or ``"faiss"`` for large corpora (needs the
            ``faiss-cpu`` package: ``pip install "rerank-finetune[faiss]"``).
        faiss_index: with ``backend="faiss"``: ``"flat"`` (exact inner product, FAISS's BLAS kernels) or
            ``"hnsw"`` (approximate, a graph index: much faster search on millions of documents, at a
            small loss of recall).

    The corpus is encoded once, into ``self.doc_embeddings`` (float32, ``n_docs x dim``); the time it
    took is ``self.encode_seconds``. With FAISS, documents tied on score may come back in another order
    than the exact backend's trec_eval tie rule (FAISS does not promise one).
    """

    def __init__(
        self,
        corpus: Mapping[str, str],
        model: Any,
        batch_size: int = 64,
        normalize: bool = True,
        query_prompt: str | None = None,
        backend: str = "exact",
        faiss_index: str = "flat",
    ):
        if not corpus:
            raise ValueError("empty corpus")
        if backend not in ("exact", "faiss"):
            raise ValueError(f"backend must be 'exact' or 'faiss', got {backend!r}")
        if faiss_index not in ("flat", "hnsw"):
            raise ValueError(f"faiss_index must be 'flat' or 'hnsw', got {faiss_index!r}")
        self.backend = backend
        self.faiss_index = faiss_index
        if isinstance(model, (str, Path)):
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(model))
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.query_prompt = query_prompt
        self.doc_ids: list[str] = list(corpus)
        # position of each doc in doc-id-descending order: the tie-break key (smaller = ranked first)
        order = sorted(range(len(self.doc_ids)), key=lambda i: self.doc_ids[i], reverse=True)
        self._tie_rank = np.empty(len(order), dtype=np.int64)
        self._tie_rank[order] = np.arange(len(order))
        t0 = time.perf_counter()
        self.doc_embeddings = self._encode([corpus[d] for d in self.doc_ids])
        self.encode_seconds = time.perf_counter() - t0
        self._index = self._build_faiss_index() if backend == "faiss" else None

    def _build_faiss_index(self):
        try:
            import faiss
        except ImportError as exc:
            raise ModuleNotFoundError(
                'backend="faiss" needs the faiss-cpu package: pip install "rerank-finetune[faiss]" (or faiss-cpu)'
            ) from exc
        dim = self.doc_embeddings.shape[1]
        if self.faiss_index == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 128
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(self.doc_embeddings)
        return index

    def __len__(self) -> int:
        return len(self.doc_ids)

    def __repr__(self) -> str:
        return (
            f"DenseRetriever(n_docs={len(self)}, dim={self.doc_embeddings.shape[1]}, "
            f"normalize={self.normalize}, query_prompt={self.query_prompt!r}, backend={self.backend!r})"
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        emb = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=self.normalize
        )
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise ValueError(f"the encoder returned shape {emb.shape} for {len(texts)} texts")
        if self.normalize:
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query embeddings (float32, ``len(texts) x dim``), with ``query_prompt`` prepended."""
        texts = list(texts)
        if self.query_prompt:
            texts = [self.query_prompt + t for t in texts]
        if not texts:
            return np.zeros((0, self.doc_embeddings.shape[1]), dtype=np.float32)
        return self._encode(texts)

    def search(self, queries: Queries, top_k: int = 100, chunk_size: int = 1024) -> RunDict:
        """Exact top ``top_k`` docs per query: ``{qid: {doc id: score}}`` in ranked order.

        Scores are ``query_emb @ doc_emb`` (cosine when normalised). Queries are scored
        ``chunk_size`` at a time, so at most a ``chunk_size x n_docs`` score matrix exists at once;
        the top k of each row is found with ``np.argpartition`` and then sorted. Ties are resolved
        exactly as a full sort by (score descending, doc id descending) would, also at the cut-off.
        ``top_k`` larger than the corpus is clamped. Every query gets exactly ``min(top_k, n_docs)``
        docs.
        """
        _check_top_k(top_k)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        qdict = _as_query_dict(queries)
        qids = list(qdict)
        k = min(int(top_k), len(self.doc_ids))
        run: RunDict = {}
        for start in range(0, len(qids), chunk_size):
            chunk = qids[start : start + chunk_size]
            q_emb = self.encode_queries([qdict[q] for q in chunk])
            if self._index is not None:
                dist, ids = self._index.search(q_emb, k)
                for qid, drow, irow in zip(chunk, dist, ids):
                    run[qid] = {self.doc_ids[i]: float(d) for d, i in zip(drow, irow) if i >= 0}
                continue
            scores = q_emb @ self.doc_embeddings.T  # (len(chunk), n_docs), float32
            for qid, row in zip(chunk, scores):
                idx = self._top_k_indices(row, k)
                run[qid] = {self.doc_ids[i]: float(row[i]) for i in idx}
        return run

    def _top_k_indices(self, row: np.ndarray, k: int) -> np.ndarray:
        """Indices of the k best docs of one score row, in ranked order (score desc, doc id desc)."""
        n = row.shape[0]
        if k < n:
            part = np.argpartition(-row, k - 1)[:k]
            threshold = row[part].min()
            above = np.flatnonzero(row > threshold)
            tied = np.flatnonzero(row == threshold)
            # of the docs tied at the cut-off, keep those the tie rule ranks first
            tied = tied[np.argsort(self._tie_rank[tied], kind="stable")][: k - above.size]
            cand = np.concatenate([above, tied])
        else:
            cand = np.arange(n)
        # lexsort: last key is primary -> score descending, then tie rank ascending
        order = np.lexsort((self._tie_rank[cand], -row[cand]))
        return cand[order]


def first_stage_run(retriever: BM25Retriever | DenseRetriever, ds: RetrievalDataset, top_k: int = 100) -> RunDict:
    """Retrieve the top ``top_k`` candidates for every query of ``ds``: ``retriever.search(ds.queries, top_k)``."""
    return retriever.search(ds.queries, top_k=top_k)
