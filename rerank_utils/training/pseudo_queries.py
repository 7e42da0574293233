"""Pseudo-queries cut from the corpus's own passages (inverse cloze task; Lee, Chang & Toutanova, 2019): more
training signal than the labelled questions, with no labels at all (issue 12).

Each passage of two or more sentences gives one pseudo-query: a sentence drawn at random (seeded) becomes the
query, and the passage *without that sentence* becomes its positive, so the pair must be matched by meaning
rather than by the copied words (the original keeps the sentence in 10 % of pairs; ``keep_rate``). The
pseudo-positives are new corpus entries (``<doc id>#ict``) beside the real passages, which stay as they are and
serve as the in-batch and mined negatives.

Hand-written (a sentence split and a draw) because no installed library cuts ICT pairs from an arbitrary corpus;
the sentence split is a punctuation rule, good for the FAQ's prose and said to be rough for abbreviations.
"""

from __future__ import annotations

import random
import re

from rerank_utils.data.records import RetrievalDataset

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9¿¡\"'(])")


def sentences(text: str) -> list[str]:
    """``text`` cut after ``.``, ``!`` or ``?`` followed by a space and a capital, digit or opening mark."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def inverse_cloze(corpus: dict[str, str], seed: int = 42, min_words: int = 4, keep_rate: float = 0.1,
                  exclude: set[str] | None = None, name: str = "ict") -> RetrievalDataset:
    """One pseudo-query per passage with at least two sentences of which one has ``min_words`` words or more:
    ``queries[ict:<doc>] = the sentence``, its positive ``<doc>#ict`` = the passage without it (with it, for a
    share ``keep_rate`` of the pairs). ``exclude``: doc ids to leave out (e.g. the validation and test queries'
    relevant passages, so pseudo-queries never rehearse what is measured). The corpus of the returned dataset is
    ``corpus`` plus the pseudo-positives; ``query_meta[qid]["source"]`` names the passage a query was cut from."""
    if not 0.0 <= keep_rate <= 1.0:
        raise ValueError(f"inverse_cloze: keep_rate must be in [0, 1], got {keep_rate!r}")
    rng = random.Random(seed)
    exclude = exclude or set()
    queries, qrels, extra, meta = {}, {}, {}, {}
    for doc_id, text in corpus.items():
        if doc_id in exclude:
            continue
        sents = sentences(text)
        candidates = [i for i, s in enumerate(sents) if len(s.split()) >= min_words]
        if len(sents) < 2 or not candidates:
            continue
        i = rng.choice(candidates)
        keep = rng.random() < keep_rate
        rest = sents if keep else sents[:i] + sents[i + 1:]
        qid, pid = f"ict:{doc_id}", f"{doc_id}#ict"
        queries[qid], extra[pid], qrels[qid], meta[qid] = sents[i], " ".join(rest), {pid: 1}, {"source": doc_id}
    if not queries:
        raise ValueError(f"inverse_cloze: no passage of the {len(corpus)} has two sentences with one of {min_words}+ words")
    return RetrievalDataset(corpus={**corpus, **extra}, queries=queries, qrels=qrels, query_meta=meta, name=name)


def without_sources(ds: RetrievalDataset, negatives: dict[str, list[str]]) -> dict[str, list[str]]:
    """Mined negatives minus each pseudo-query's source passage (``query_meta[qid]["source"]``): the whole
    passage still holds the query sentence, so it is relevant, never a negative."""
    return {q: [d for d in negs if d != ds.query_meta.get(q, {}).get("source")] for q, negs in negatives.items()}
