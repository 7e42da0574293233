""":class:`Labeller`: the labelling session of notebook ``13_labelling_your_own_data``: proposes the next pair, records a
judgement (positive, negative, skip, undo) in its :class:`~rerank_utils.labelling.store.LabelStore`, reports
progress and writes the labels as the guide's triples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rerank_utils.data.records import (
    GUIDE_RATIO,
    POSITIVE_THRESHOLD,
    ValidationReport,
    _kind,
    _preview,
)
from rerank_utils.data.sources import load_triples_file
from rerank_utils.data.triples import write_triples
from rerank_utils.labelling.candidates import (
    Candidate,
    Pair,
    _pair,
    propose_candidates,
)
from rerank_utils.labelling.store import LabelStore, _score_value
from rerank_utils.labelling.widget import LabellerWidget


# ------------------------------------------------------------------------------------------ the labeller
class Labeller:
    """Propose candidates hardest first, record decisions in a labels file, resume where it stopped.

    Args:
        candidates: the pairs to propose, in order (:func:`~rerank_utils.labelling.candidates.propose_candidates`); repeats are dropped.
        path: the labels file (``.jsonl``, created when missing; an existing one is read and resumed).
        skips_path: where skips go; default :func:`~rerank_utils.labelling.store.skips_path_for` ``(path)``.
        fsync: see :class:`~rerank_utils.labelling.store.LabelStore`.

    :attr:`current` is the first candidate neither labelled nor skipped (``None`` when all are done).
    Decisions: ``label(pair, value)`` with ``pair`` a :class:`~rerank_utils.labelling.candidates.Candidate`, a ``(query, passage)`` tuple or
    ``None`` (the current candidate); ``relevant()``, ``not_relevant()``, ``skip()`` for the current one;
    ``undo()`` takes back this session's last decision. Each is on disk when the call returns.
    """
    def __init__(
        self,
        candidates: Iterable[Candidate],
        path: str | os.PathLike,
        skips_path: str | os.PathLike | None = None,
        fsync: bool = True,
    ):
        unique: dict[Pair, Candidate] = {}  # the first of each pair
        for cand in candidates:
            if not isinstance(cand, Candidate):
                raise TypeError(f"candidates must be Candidate objects (from propose_candidates), got {_kind(cand)}")
            if not all(isinstance(t, str) and t.strip() for t in (cand.query, cand.passage)):
                raise ValueError(f"candidate ({cand.query_id!r}, {cand.doc_id!r}) has an empty query or passage")
            unique.setdefault(cand.pair, cand)
        self.candidates = list(unique.values())
        self.store = LabelStore(path, skips_path, fsync=fsync)
        self.history: list[tuple[str, Pair]] = []  # this session's decisions: ("label" | "skip", pair)
        self._pos = 0

    @classmethod
    def from_first_stage(
        cls,
        queries: Mapping[str, str] | Sequence[str],
        corpus: Mapping[str, str],
        path: str | os.PathLike,
        first_stage: Any = "bm25",
        top_k: int = 10,
        model: Any = "default",
        device: str | None = None,
        **kwargs: Any,
    ) -> "Labeller":
        """:func:`~rerank_utils.labelling.candidates.propose_candidates` then a :class:`Labeller` on ``path``."""
        return cls(propose_candidates(queries, corpus, first_stage, top_k, model=model, device=device), path, **kwargs)

    def __repr__(self) -> str:
        return f"Labeller({self.store.path}, {self.status_line()})"

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def skips_path(self) -> Path:
        return self.store.skips_path

    # -- what is proposed
    def _sync(self) -> None:
        if self.store.sync():  # another labeller or a hand edit changed the files: start over from the top
            self._pos = 0

    def _decided(self, pair: Pair) -> bool:
        return pair in self.store.labels or pair in self.store.skipped

    @property
    def current(self) -> Candidate | None:
        """The next candidate to judge: the hardest one neither labelled nor skipped; ``None`` when done."""
        self._sync()
        while self._pos < len(self.candidates) and self._decided(self.candidates[self._pos].pair):
            self._pos += 1
        return self.candidates[self._pos] if self._pos < len(self.candidates) else None

    def remaining(self) -> list[Candidate]:
        """Every candidate still to judge, in the order they will be proposed."""
        return [c for c in self.candidates if not self._decided(c.pair)]

    # -- decisions
    def _resolve(self, pair: Any) -> Pair:
        if pair is None:
            cand = self.current
            if cand is None:
                raise ValueError("nothing left to label: every proposed pair is labelled or skipped")
            return cand.pair
        if isinstance(pair, Candidate):
            return pair.pair
        if isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, str) and t.strip() for t in pair):
            return _pair(*pair)
        raise TypeError(f"pair must be a Candidate, a (query, passage) tuple of non-empty texts or None, got {_preview(pair)}")

    def label(self, pair: Any, value: Any) -> Pair:
        """Record ``value`` (1 relevant, 0 not; a float in [0, 1] for a graded label) for ``pair``.

        ``pair`` is a :class:`~rerank_utils.labelling.candidates.Candidate`, a ``(query, passage)`` tuple or ``None`` (the current
        candidate). Labelling a pair again with the same value does nothing; with another value it is an
        error (``undo()`` or ``relabel()`` first). A skipped pair may be labelled: the label replaces the
        skip. Returns the pair.
        """
        key = self._resolve(pair)
        value = _score_value(value)
        self._sync()
        if key in self.store.labels:
            if self.store.labels[key] == float(value):
                return key
            raise ValueError(
                f"this pair is already labelled {self.store.labels[key]:g}; call relabel(pair, {value!r}) to change it"
            )
        self.store.add_label(key[0], key[1], value)
        self.history.append(("label", key))
        return key

    def relevant(self) -> Pair:
        """Label the current candidate relevant (score 1)."""
        return self.label(None, 1)

    def not_relevant(self) -> Pair:
        """Label the current candidate not relevant (score 0)."""
        return self.label(None, 0)

    def skip(self, pair: Any = None) -> Pair:
        """Leave ``pair`` (default: the current candidate) undecided; it is not proposed again."""
        key = self._resolve(pair)
        self._sync()
        if key in self.store.labels:
            raise ValueError(f"this pair is already labelled {self.store.labels[key]:g}; skip() is for undecided pairs")
        if key not in self.store.skipped:
            self.store.add_skip(*key)
            self.history.append(("skip", key))
        return key

    def relabel(self, pair: Any, value: Any) -> Pair:
        """Change the label of an already labelled pair (the labels file is rewritten without the old line)."""
        key = self._resolve(pair)
        _score_value(value)
        self._sync()
        if key in self.store.labels:
            self.store.remove(key)
            self._pos = 0
        return self.label(key, value)

    def undo(self) -> Pair | None:
        """Take back this session's last decision (label or skip), so its pair is proposed again.

        Returns the pair, or ``None`` when this session made no decision. The file is rewritten
        without that line.
        """
        self._sync()
        while self.history:
            kind, key = self.history.pop()
            if (kind == "label" and key in self.store.labels) or (kind == "skip" and key in self.store.skipped):
                self.store.remove(key)
                self._pos = 0
                return key
        return None

    # -- progress
    @property
    def positives(self) -> int:
        """Pairs labelled relevant (score >= 0.5) in the labels file."""
        return sum(1 for s in self.store.labels.values() if s >= POSITIVE_THRESHOLD)

    @property
    def negatives(self) -> int:
        return len(self.store.labels) - self.positives

    def ratio(self) -> float | None:
        """Negatives per positive in the labels file (the guide's 1:x), ``None`` before the first positive."""
        return self.negatives / self.positives if self.positives else None

    def progress(self) -> dict[str, Any]:
        """Where labelling stands.

        Over the proposed candidates: ``proposed``, ``labelled``, ``skipped``, ``remaining`` (``labelled +
        skipped + remaining == proposed``), ``queries`` and ``queries_with_positive``. Over the whole labels
        file (what training will see, including pairs labelled outside this candidate list):
        ``labels_in_file``, ``positives``, ``negatives``, ``negatives_per_positive`` and ``ratio`` as text.
        """
        self._sync()
        rows = self.per_query()
        ratio = self.ratio()
        return {
            "proposed": len(self.candidates),
            **{key: sum(r[key] for r in rows) for key in ("labelled", "skipped", "remaining")},
            "queries": len(rows),
            "queries_with_positive": sum(1 for r in rows if r["positives"]),
            "labels_in_file": len(self.store.labels),
            "positives": self.positives,
            "negatives": self.negatives,
            "negatives_per_positive": ratio,
            "ratio": "—" if ratio is None else f"1:{ratio:.1f}",
        }

    def per_query(self) -> list[dict[str, Any]]:
        """One row per query of the candidates: ``query_id``, ``query``, ``proposed``, ``labelled``,
        ``positives``, ``negatives``, ``skipped``, ``remaining`` (counted over its proposed candidates)."""
        rows: dict[str, dict[str, Any]] = {}
        for c in self.candidates:
            row = rows.setdefault(
                c.query_id,
                {"query_id": c.query_id, "query": c.query, "proposed": 0, "labelled": 0, "positives": 0,
                 "negatives": 0, "skipped": 0, "remaining": 0},
            )
            row["proposed"] += 1
            score = self.store.labels.get(c.pair)
            if score is not None:
                row["labelled"] += 1
                row["positives" if score >= POSITIVE_THRESHOLD else "negatives"] += 1
            elif c.pair in self.store.skipped:
                row["skipped"] += 1
            else:
                row["remaining"] += 1
        return list(rows.values())

    def ratio_advice(self) -> str:
        """The positive:negative ratio against the guide's advice (section 5: between 1:1 and 1:4)."""
        low, high = GUIDE_RATIO
        ratio = self.ratio()
        if not self.store.labels:
            return "no labels yet"
        if ratio is None:
            return "no relevant pair yet: every label is 0, and a query needs a relevant passage to train on"
        text = f"positive:negative is 1:{ratio:.1f}"
        if ratio < low:
            return (
                f"{text}, more positives than negatives: the guide warns the model turns too aggressive; "
                "label deeper candidates for hard negatives"
            )
        if ratio > high:
            return (
                f"{text}, past the guide's 1:{high:g}: too many negatives make the model too conservative; "
                "label other queries' top candidates"
            )
        return f"{text}, within the guide's 1:{low:g} to 1:{high:g}"

    def status_line(self) -> str:
        p = self.progress()
        return (
            f"labelled {p['labelled']} of {p['proposed']} proposed (skipped {p['skipped']}, {p['remaining']} to go); "
            f"{p['positives']} relevant : {p['negatives']} not ({p['ratio']}); "
            f"{p['queries_with_positive']} of {p['queries']} queries have a relevant passage"
        )

    # -- the files
    def validate(self) -> tuple[list[dict], ValidationReport]:
        """Read the labels file back with the project's validator, as training will (``require_positive=False``)."""
        return load_triples_file(self.path, require_positive=False)

    def export_training_file(self, path: str | os.PathLike | None = None) -> dict[str, Any]:
        """Write the labels of the queries that have a relevant passage to ``path`` (default:
        ``<labels>.train.jsonl``), a file that ``load_triples_file(path)`` and ``build_dataset(path)``
        accept as they are. Queries without one are left out and counted. Returns what was written."""
        records, _ = self.validate()
        with_positive = {r["query"] for r in records if r["score"] >= POSITIVE_THRESHOLD}
        kept = [
            {"query": r["query"], "passage": r["passage"], "score": _score_value(r["score"])}
            for r in records if r["query"] in with_positive
        ]
        out = Path(path) if path is not None else self.path.with_name(f"{self.path.stem}.train.jsonl")
        if out.resolve() in (self.path.resolve(), self.skips_path.resolve()):
            raise ValueError(f"{out}: export to another file than the labels and skips files")
        if not kept:
            raise ValueError(f"{self.path}: no query has a relevant passage yet, so there is nothing to train on")
        write_triples(kept, out)
        queries = {r["query"] for r in records}
        return {
            "path": str(out),
            "pairs": len(kept),
            "queries": len(with_positive),
            "queries_left_out": len(queries - with_positive),
            "pairs_left_out": len(records) - len(kept),
        }

    def widget(self, passage_chars: int | None = None) -> "LabellerWidget":
        """The ipywidgets front end (:class:`~rerank_utils.labelling.widget.LabellerWidget`); display it as a cell's last expression."""
        return LabellerWidget(self, passage_chars=passage_chars)
