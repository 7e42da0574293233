""":class:`DenseRetriever`: the bi-encoder first stage (sentence-transformers embeddings, exact dot-product search in
numpy, or FAISS for a large corpus), returning runs ranked as :mod:`rerank_utils.retrieval.queries` defines.
Introduced in notebook ``00_concepts``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sentence_transformers import SentenceTransformer

from rerank_utils.retrieval.embedding_cache import cached_embeddings
from rerank_utils.retrieval.queries import Queries, RunDict, _as_query_dict, _check_top_k


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
        cache_dir: a folder of corpus embeddings to read back instead of encoding again
            (:mod:`rerank_utils.retrieval.embedding_cache`, keyed by the model's weights and the texts); default
            ``$RERANK_EMBEDDING_CACHE``, which ``rerank-utils run-notebooks`` sets; unset, nothing is cached.

    The corpus is encoded once, into ``self.doc_embeddings`` (float32, ``n_docs x dim``); the time it
    took is ``self.encode_seconds`` (reading them back, when ``self.from_cache``). With FAISS, documents tied on score may come back in another order
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
        cache_dir: str | Path | None = None,
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
            model = SentenceTransformer(str(model))
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.query_prompt = query_prompt
        self.doc_ids: list[str] = list(corpus)
        # position of each doc in doc-id-descending order: the tie-break key (smaller = ranked first)
        order = sorted(range(len(self.doc_ids)), key=lambda i: self.doc_ids[i], reverse=True)
        self._tie_rank = np.argsort(order)  # the inverse permutation of order
        t0 = time.perf_counter()
        self.doc_embeddings, self.from_cache = cached_embeddings(
            model, [corpus[d] for d in self.doc_ids], f"batch_size={batch_size} normalize={normalize}", self._encode, cache_dir)
        self.encode_seconds = time.perf_counter() - t0
        self._index = self._build_faiss_index() if backend == "faiss" else None

    def _build_faiss_index(self):
        try:
            import faiss  # local: faiss-cpu is the optional [faiss] extra
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
        _check_top_k(chunk_size, "chunk_size")
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
