"""Statistics of a dataset: sizes, labels per query, categories, lengths in tokens against max_length.

Introduced in notebook ``01_data_preparation``.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from rerank_utils.data.records import RetrievalDataset


def dataset_summary(ds: RetrievalDataset, category_key: str = "category") -> dict:
    """Counts a reader should see before training: documents, queries, positives per query, categories."""
    pos_per_query = [len(ds.positives(q)) for q in ds.queries]
    judged = {d for q in ds.queries for d in ds.positives(q)}
    categories = Counter(ds.query_meta.get(q, {}).get(category_key) for q in ds.queries)
    categories.pop(None, None)
    return {
        "documents": len(ds.corpus),
        "queries": len(ds.queries),
        "judged_positive_pairs": int(sum(pos_per_query)),
        "queries_with_several_positives": int(sum(n > 1 for n in pos_per_query)),
        "queries_without_positive": int(sum(n == 0 for n in pos_per_query)),
        "documents_never_positive": len(ds.corpus) - len(judged),
        "categories": len(categories),
        "largest_categories": dict(categories.most_common(5)),
    }


def category_counts(splits: dict[str, RetrievalDataset], key: str = "category") -> dict[str, dict[str, int]]:
    """Queries per split and per ``query_meta[key]`` (``"(none)"`` where a query lacks the key)."""
    return {
        name: dict(Counter(split.query_meta.get(q, {}).get(key, "(none)") for q in split.queries))
        for name, split in splits.items()
    }


def token_lengths(tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[int]:
    """Length of each text in tokens, special tokens included, without truncation."""
    out: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i : i + batch_size]), add_special_tokens=True, truncation=False)
        out.extend(len(ids) for ids in enc["input_ids"])
    return out


def pair_token_lengths(tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 256) -> list[int]:
    """Length in tokens of each (query, passage) pair as a cross-encoder sees it: ``[CLS] q [SEP] p [SEP]``."""
    out: list[int] = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        enc = tokenizer([q for q, _ in chunk], [p for _, p in chunk], add_special_tokens=True, truncation=False)
        out.extend(len(ids) for ids in enc["input_ids"])
    return out


def length_report(lengths: Sequence[int], max_length: int) -> dict:
    """Percentiles of ``lengths`` and how many exceed ``max_length`` (they would be truncated)."""
    arr = np.asarray(lengths)
    if arr.size == 0:
        raise ValueError("no lengths to summarise")
    return {
        "n": int(arr.size),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "max": int(arr.max()),
        "over_max_length": int((arr > max_length).sum()),
        "share_over_max_length": float((arr > max_length).mean()),
    }
