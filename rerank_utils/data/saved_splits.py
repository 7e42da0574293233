"""Reading and writing a profile's artifacts, so each notebook can read what the one before wrote
and rebuild it when it is missing.

``artifacts/<profile>/data/splits/`` (written by ``01_data_preparation``) is a BEIR folder with one
qrels file per split (``qrels/train.tsv``, ``qrels/val.tsv``, ``qrels/test.tsv``), the same queries and
positives in the guide's triples format (``triples/<split>.jsonl``), and ``split_meta.json`` with the
parameters that made the split and the metadata of queries and documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rerank_utils.data.beir import read_beir, write_beir
from rerank_utils.data.convert import dataset_to_triples
from rerank_utils.data.records import DEFAULT_FRACTIONS, RetrievalDataset
from rerank_utils.data.sources import build_dataset
from rerank_utils.data.splits import make_splits
from rerank_utils.data.triples import write_triples
from rerank_utils.paths import artifacts_dir

META_FILE = "split_meta.json"


def splits_dir(profile: str) -> Path:
    return artifacts_dir(profile, "data", "splits")


def save_splits(splits: dict[str, RetrievalDataset], folder: str | Path, params: dict[str, Any] | None = None,
                made: str | None = None) -> Path:
    """Write ``splits`` (sharing one corpus) under ``folder``; ``made``: how they were made (recorded); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first = next(iter(splits.values()))
    all_queries = {q: t for s in splits.values() for q, t in s.queries.items()}
    for name, split in splits.items():
        if split.corpus is not first.corpus and split.corpus != first.corpus:
            raise ValueError(f"split {name!r} has a different corpus; splits of one dataset share its corpus")
        write_beir(RetrievalDataset(first.corpus, all_queries, split.qrels, first.doc_meta, name=split.name), folder, split=name)
        write_triples(dataset_to_triples(split), folder / "triples" / f"{name}.jsonl")
    meta = {
        "params": params or {},
        "made": made,
        "name": first.name,
        "splits": {name: list(s.queries) for name, s in splits.items()},
        "doc_meta": first.doc_meta,
        "query_meta": {q: m for s in splits.values() for q, m in s.query_meta.items()},
    }
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def load_splits(folder: str | Path) -> dict[str, RetrievalDataset]:
    """Read what :func:`save_splits` wrote (strict validation), in the saved split order."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing: run notebook 01_data_preparation (or prepare_splits) first")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    out = {}
    for name, qids in meta["splits"].items():
        ds, _ = read_beir(folder, split=name, mode="strict")
        ds = ds.subset(qids, name=f"{meta['name']}:{name}")  # the saved query order
        ds.doc_meta = meta["doc_meta"]
        ds.query_meta = {q: meta["query_meta"][q] for q in qids if q in meta["query_meta"]}
        out[name] = ds
    return out


def saved_split_params(profile: str) -> dict[str, Any] | None:
    path = splits_dir(profile) / META_FILE
    if not path.is_file():
        return None
    return {"resplit": False, **json.loads(path.read_text(encoding="utf-8"))["params"]}  # saved before the key existed: made without it


def split_params(
    data_source: str,
    seed: int = 42,
    fractions: dict[str, float] | None = None,
    group_key: str | None = None,
    max_queries: int | None = None,
    resplit: bool = False,
) -> dict[str, Any]:
    """The parameters that define a split; saved with it so a later notebook knows whether it matches."""
    return {
        "data_source": data_source,
        "seed": seed,
        "fractions": dict(fractions or DEFAULT_FRACTIONS),
        "group_key": group_key,
        "max_queries": max_queries,
        "resplit": resplit,
    }


def prepare_splits(
    profile: str,
    data_source: str,
    seed: int = 42,
    fractions: dict[str, float] | None = None,
    group_key: str | None = None,
    max_queries: int | None = None,
    rebuild: bool = False,
    resplit: bool = False,
    log: Any = print,
) -> dict[str, RetrievalDataset]:
    """The profile's saved splits if they were made with these parameters, else build and save them.

    Notebooks after ``01`` call this with ``fractions=None`` and ``group_key=None``: then any split that
    ``01`` saved for the same ``data_source``, ``seed`` and ``max_queries`` is reused, whatever fractions or
    group key it used; when there is none, the default 70/10/20 split by query is built and saved, so each
    notebook can also run alone. A BEIR folder that publishes its own train (and dev) and test qrels keeps
    them unless ``resplit`` (:func:`~rerank_utils.data.splits.make_splits`; ``log`` says which); how the split was
    made is saved in ``split_meta.json`` (``"made"``).
    """
    params = split_params(data_source, seed, fractions, group_key, max_queries, resplit)
    saved = saved_split_params(profile)
    if not rebuild and saved is not None:
        same_data = all(saved.get(k) == params[k] for k in ("data_source", "seed", "max_queries", "resplit"))
        if saved == params or (same_data and fractions is None and group_key is None):
            return load_splits(splits_dir(profile))
    ds = build_dataset(data_source)
    if max_queries:
        ds = ds.sample(max_queries, seed=seed)
    splits, made = make_splits(ds, fractions=params["fractions"], seed=seed, group_key=group_key, resplit=resplit, log=log)
    save_splits(splits, splits_dir(profile), params, made=made)
    return splits
