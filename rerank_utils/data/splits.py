"""Leak-free splits: :func:`split_dataset` / :func:`split_triples` keep every query with its positives on one side
(and, with a group key, every group), and :func:`check_leakage` / :func:`assert_no_leakage` prove no query or
positive is shared between splits. Notebook ``01_data_preparation``.
"""

from __future__ import annotations

import collections
import json
import math
import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rerank_utils.data.beir import BEIR_SPLIT
from rerank_utils.data.records import (
    DEFAULT_FRACTIONS,
    POSITIVE_THRESHOLD,
    RetrievalDataset,
    _as_record_list,
    _preview,
)


def split_dataset(
    ds: RetrievalDataset,
    fractions: Mapping[str, float] | None = None,
    seed: int = 42,
    group_key: str | None = None,
) -> dict[str, RetrievalDataset]:
    """Split a dataset by query into ``fractions`` (default train 0.7, val 0.1, test 0.2; normalised).

    Queries linked by the same text, a shared positive (the same doc id or the same positive text) or,
    with ``group_key``, the same ``ds.query_meta[qid][group_key]`` value land on the same side, so the
    splits pass :func:`check_leakage` pairwise. The groups of linked queries are shuffled with ``seed``
    and dealt out largest first, each to the split furthest below its share of queries. Every split
    gets at least one group; fewer groups than splits is a ValueError. Each split shares ``ds``'s corpus.
    """
    names, weights = _normalised_fractions(fractions)
    qids = list(ds.queries)
    links: dict[tuple, list[int]] = collections.defaultdict(list)
    for n, qid in enumerate(qids):
        links[("query", ds.queries[qid].strip())].append(n)
        for doc_id in ds.positives(qid):
            links[("doc", doc_id)].append(n)
            if doc_id in ds.corpus:
                links[("text", ds.corpus[doc_id].strip())].append(n)
        if group_key is not None:
            meta = ds.query_meta.get(qid, {})
            if group_key not in meta:
                raise KeyError(
                    f"query {qid!r} ({_preview(ds.queries[qid])}) has no {group_key!r} in query_meta; "
                    "give every query that key or split without group_key"
                )
            links[("group", _hashable(meta[group_key]))].append(n)
    side_of = _assign_components(_components(len(qids), links.values()), weights, seed, group_key)
    return {
        name: ds.subset([q for n, q in enumerate(qids) if side_of[n] == k], name=f"{ds.name}-{name}" if ds.name else name)
        for k, name in enumerate(names)
    }


def published_splits(ds: RetrievalDataset) -> dict[str, list[str]] | None:
    """The query ids of each split a BEIR folder published (``query_meta[q]["beir_split"]``, as
    ``read_beir(..., split="all")`` tags them): ``{"train", "val" (from dev.tsv or val.tsv, when there is one),
    "test"}``; ``None`` when the dataset has no such tags or no train and test splits among them."""
    tags = {q: ds.query_meta.get(q, {}).get(BEIR_SPLIT) for q in ds.queries}
    if not tags or any(t is None for t in tags.values()):
        return None
    by_split: dict[str, list[str]] = collections.defaultdict(list)
    for q, t in tags.items():
        by_split[{"dev": "val", "validation": "val"}.get(t, t)].append(q)
    if "train" not in by_split or "test" not in by_split:
        return None
    return {name: by_split[name] for name in ("train", "val", "test") if name in by_split}


def make_splits(
    ds: RetrievalDataset,
    fractions: Mapping[str, float] | None = None,
    seed: int = 42,
    group_key: str | None = None,
    resplit: bool = False,
    log: Any = print,
) -> tuple[dict[str, RetrievalDataset], str]:
    """``(splits, how they were made)``: a BEIR folder's own train / val / test when it published them (read with
    ``split="all"``: qrels/train.tsv, dev.tsv or val.tsv, test.tsv) unless ``resplit``, else :func:`split_dataset`.
    A published train without a dev split gives up part of its queries to val (``fractions``' val share of
    train + val, by :func:`split_dataset`, so linked queries stay on one side); test is always the published one.
    ``log`` gets one line saying which was done and why. Introduced in notebook ``01_data_preparation``."""
    published = published_splits(ds)
    tags = {ds.query_meta.get(q, {}).get(BEIR_SPLIT) for q in ds.queries} - {None}
    if published is None or resplit:
        if published is not None:
            how = f"re-split {_shares(fractions)} by query (resplit: true), ignoring the folder's own {', '.join(sorted(tags))} qrels"
        elif tags:
            how = f"re-split {_shares(fractions)} by query: the folder publishes only {', '.join(sorted(tags))} qrels (no qrels/train.tsv)"
        else:
            how = f"split {_shares(fractions)} by query (seed {seed})"
        log(how)
        return split_dataset(ds, fractions=fractions, seed=seed, group_key=group_key), how
    name = f"{ds.name}-" if ds.name else ""
    splits = {split: ds.subset(qids, name=f"{name}{split}") for split, qids in published.items()}
    how = f"the folder's own splits: train {len(published['train'])} queries (qrels/train.tsv)"
    if "val" not in splits:
        names, weights = _normalised_fractions(fractions)
        shares = dict(zip(names, weights))
        carved = split_dataset(splits["train"], {"train": shares.get("train", 0.7), "val": shares.get("val", 0.1)}, seed=seed, group_key=group_key)
        splits = {"train": carved["train"], "val": carved["val"], "test": splits["test"]}
        how = (f"the folder's own splits, test from qrels/test.tsv; it has no dev.tsv, so val is {len(splits['val'])} of the "
               f"{len(published['train'])} qrels/train.tsv queries, train the other {len(splits['train'])}")
    else:
        how += f", val {len(published['val'])} (its dev/val qrels), test {len(published['test'])} (qrels/test.tsv)"
    log(f"{how}; set resplit: true (notebook 01's `resplit`) to re-split instead")
    return {"train": splits["train"], "val": splits["val"], "test": splits["test"]}, how


def _shares(fractions: Mapping[str, float] | None) -> str:
    names, weights = _normalised_fractions(fractions)
    return "/".join(f"{w * 100:.0f}" for w in weights) + f" ({'/'.join(names)})"


def split_triples(
    records: Iterable[dict],
    fractions: Mapping[str, float] | None = None,
    seed: int = 42,
    group_key: str | None = None,
) -> dict[str, list[dict]]:
    """Split triples by query, as :func:`split_dataset` does: all records of a query text go to one side,
    and queries sharing a positive passage text (score >= 0.5) or a ``record[group_key]`` value (an
    allowed extra field) go together. Fractions count queries; records keep their input order."""
    records = _as_record_list(records)
    names, weights = _normalised_fractions(fractions)
    node_of: dict[str, int] = {}
    links: dict[tuple, list[int]] = collections.defaultdict(list)
    for i, record in enumerate(records):
        query = record["query"].strip()
        n = node_of.setdefault(query, len(node_of))
        if float(record["score"]) >= POSITIVE_THRESHOLD:
            links[("text", record["passage"].strip())].append(n)
        if group_key is not None:
            if group_key not in record:
                raise KeyError(
                    f"record {i} (query {_preview(query)}) has no field {group_key!r}; "
                    "give every record that field or split without group_key"
                )
            links[("group", _hashable(record[group_key]))].append(n)
    side_of = _assign_components(_components(len(node_of), links.values()), weights, seed, group_key)
    splits: dict[str, list[dict]] = {name: [] for name in names}
    for record in records:
        splits[names[side_of[node_of[record["query"].strip()]]]].append(record)
    return splits


def _normalised_fractions(fractions: Mapping[str, float] | None) -> tuple[list[str], list[float]]:
    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    if not isinstance(fractions, Mapping) or not fractions:
        raise ValueError(
            f"fractions must be a non-empty dict of split name -> fraction, e.g. {dict(DEFAULT_FRACTIONS)}"
        )
    for name, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"the fraction for split {name!r} is {value!r}; every fraction must be a number > 0")
    total = float(sum(fractions.values()))
    return list(fractions), [float(value) / total for value in fractions.values()]


def _hashable(value: Any) -> Any:
    """``value`` if it can key a dict, else its JSON text (lists and dicts as group values)."""
    try:
        hash(value)
        return value
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str)


def _components(n: int, groups: Iterable[list[int]]) -> list[list[int]]:
    """Connected components (union-find) of nodes ``0..n-1`` where each group's nodes are linked;
    components ordered by their first node, nodes ascending."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        root = find(group[0])
        for other in group[1:]:
            other_root = find(other)
            if other_root != root:
                parent[other_root] = root
    by_root: dict[int, list[int]] = {}
    for node in range(n):
        by_root.setdefault(find(node), []).append(node)
    return list(by_root.values())


def _assign_components(components: list[list[int]], weights: list[float], seed: int, group_key: str | None) -> dict[int, int]:
    """The split index of each node, component by component: the components are shuffled with ``seed``, then dealt
    out largest first, each to the split furthest below its target size; the last ones go to splits still empty."""
    sizes = [len(c) for c in components]
    k = len(weights)
    if len(sizes) < k:
        linked_by = "a positive passage" + (f" or the same {group_key!r} value" if group_key else "")
        raise ValueError(
            f"cannot make {k} non-empty splits from {len(sizes)} group(s) of queries (queries sharing "
            f"{linked_by} stay together); use fewer splits or more data"
        )
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda c: -sizes[c])  # stable: equal sizes keep the seeded order
    targets = [w * sum(sizes) for w in weights]
    filled = [0] * k
    sides = [0] * len(sizes)
    for position, component in enumerate(order):
        empty = [s for s in range(k) if filled[s] == 0]
        candidates = empty if len(order) - position <= len(empty) else range(k)
        side = max(candidates, key=lambda s: (targets[s] - filled[s], -s))
        sides[component] = side
        filled[side] += sizes[component]
    return {node: sides[c] for c, component in enumerate(components) for node in component}


@dataclass
class LeakageReport:
    """Query texts and positive passage texts found on both sides (stripped, in the first side's order)."""
    shared_queries: list[str] = field(default_factory=list)
    shared_positives: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.shared_queries and not self.shared_positives

    def __str__(self) -> str:
        if self.ok:
            return "no leakage: no query and no positive passage on both sides"
        return "leakage: " + "; ".join(self._parts())

    def _parts(self, n_examples: int = 3) -> list[str]:
        parts = []
        for label, items in (("queries", self.shared_queries), ("positive passages", self.shared_positives)):
            if items:
                examples = ", ".join(_preview(text) for text in items[:n_examples])
                more = ", ..." if len(items) > n_examples else ""
                parts.append(f"{len(items)} {label} on both sides ({examples}{more})")
        return parts


class LeakageError(ValueError):
    """Raised by :func:`assert_no_leakage`; ``report`` is the :class:`LeakageReport`."""
    def __init__(self, report: LeakageReport, names: Sequence[str] = ("a", "b")):
        self.report = report
        self.names = tuple(names)
        super().__init__(
            f"{names[0]} and {names[1]} leak: "
            + "; ".join(report._parts(n_examples=5))
            + ". Split whole queries with split_dataset() or split_triples(), which keep linked queries together"
        )


def check_leakage(a: Any, b: Any) -> LeakageReport:
    """Query texts and positive passage texts that occur in both ``a`` and ``b``.

    Each side is a :class:`~rerank_utils.data.records.RetrievalDataset` (positives: ``corpus[doc]`` with qrels grade > 0), a list
    of triples (positives: score >= 0.5) or a list of grouped records (positives: ``pos``). Texts are
    compared after ``.strip()``.
    """
    queries_a, positives_a = _leakage_view(a)
    queries_b, positives_b = _leakage_view(b)
    return LeakageReport(
        shared_queries=[q for q in queries_a if q in queries_b],
        shared_positives=[p for p in positives_a if p in positives_b],
    )


def check_splits(splits: Mapping[str, Any]) -> dict[str, "LeakageReport"]:
    """:func:`check_leakage` on every pair of ``splits`` (``{"train": ..., "val": ..., "test": ...}``),
    keyed ``"train vs val"`` and so on. Introduced in notebook ``01_data_preparation``."""
    names = list(splits)
    return {
        f"{a} vs {b}": check_leakage(splits[a], splits[b]) for i, a in enumerate(names) for b in names[i + 1 :]
    }


def assert_no_leakage(a: Any, b: Any, names: Sequence[str] = ("a", "b")) -> None:
    """Raise :class:`LeakageError` naming the first shared queries and positives, if there are any."""
    report = check_leakage(a, b)
    if not report.ok:
        raise LeakageError(report, names)


def _leakage_view(side: Any) -> tuple[dict[str, None], dict[str, None]]:
    """(query texts, positive texts) of one side, as ordered sets."""
    queries: dict[str, None] = {}
    positives: dict[str, None] = {}
    if isinstance(side, RetrievalDataset):
        for qid, text in side.queries.items():
            queries[text.strip()] = None
            positives.update((side.corpus[d].strip(), None) for d in side.positives(qid) if d in side.corpus)
        return queries, positives
    if not isinstance(side, (list, tuple)):
        raise TypeError(f"check_leakage takes a RetrievalDataset or a list of records, not {type(side).__name__}")
    for i, record in enumerate(side):
        if not isinstance(record, dict) or "query" not in record or not ("pos" in record or "passage" in record):
            raise TypeError(f"record {i} is neither a triple (query, passage, score) nor a grouped record (query, pos)")
        queries[record["query"].strip()] = None
        if "pos" in record:
            positives.update((text.strip(), None) for text in record["pos"])
        elif float(record["score"]) >= POSITIVE_THRESHOLD:
            positives[record["passage"].strip()] = None
    return queries, positives
