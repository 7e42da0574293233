"""Manual labelling: label your own (query, passage) pairs in the notebook, hardest first, resumable.

Introduced in notebook ``13_labelling_your_own_data`` (the guide's first way of collecting data,
"manual labelling").

The pieces, each usable on its own:

* :func:`propose_candidates` asks a first stage (BM25, or the bi-encoder through
  :class:`rerank_utils.retrieval.DenseRetriever`) for each query's top ``top_k`` passages and orders
  them **hardest first** (:func:`hardest_first`): every query's rank-1 candidate, then every query's
  rank-2 candidate, and so on. Why: the candidates a first stage ranks highest are the ones a reranker
  must get right. When relevant, they are the positives it must keep on top; when not, they are the
  *hard negatives* the guide asks for (similar but not relevant), far more useful than random passages.
  Going rank by rank across queries (not query by query) spreads the labels over all queries, so a
  session stopped early still leaves as many queries as possible with their likeliest positive judged,
  and the label set stays balanced over query types. Within one rank, queries keep their given order
  (first-stage scores are not comparable across queries, BM25's least of all).
* :class:`Labeller` shows one candidate at a time (:attr:`Labeller.current`) and records decisions with
  plain methods: :meth:`Labeller.label`, :meth:`Labeller.relevant`, :meth:`Labeller.not_relevant`,
  :meth:`Labeller.skip`, :meth:`Labeller.undo`. It reports :meth:`Labeller.progress` (labelled of
  proposed, skipped, positives, negatives, the positive:negative ratio), :meth:`Labeller.per_query` and
  :meth:`Labeller.ratio_advice` (the guide's 1:1 to 1:4).
* :class:`LabellerWidget` (``labeller.widget()``) is a thin ipywidgets layer: its buttons call those
  methods and redraw, so tests drive it headlessly with ``widget.relevant_button.click()``.

Files (see :class:`LabelStore`):

* the **labels file**, e.g. ``labels.jsonl``: the guide's triples, one JSON object per line,
  ``{"query": ..., "passage": ..., "score": 1 or 0}``, nothing else. At every moment it validates with
  ``rerank_utils.datasets.load_triples_file(path, require_positive=False)``. (``require_positive``
  stays off while labelling: a query whose judged candidates were all not relevant has no positive.)
  :meth:`Labeller.export_training_file` writes the queries that do have a positive, the file to set
  as ``data_source`` in notebook ``01_data_preparation``; it validates with ``load_triples_file(path)``
  as is.
* the **skips file** beside it, ``labels.skipped.jsonl``: ``{"query": ..., "passage": ...}`` per skipped
  pair, so a skip is remembered without putting a fake label in the triples. Delete a line (or the
  file) to see those pairs again.

Nothing is lost if the kernel dies: each decision is appended to its file, flushed and (by default)
fsync'ed before the method returns. A new :class:`Labeller` on the same files resumes: labelled and
skipped pairs are not proposed again. Pairs are identified by their text (stripped), as the triples
file stores them. One labeller per file at a time; give each person their own file.

A labels or skips file that cannot be read raises :class:`rerank_utils.data.DataValidationError`
naming the file, the line and the field of every problem, and nothing is written.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .data import (
    DataValidationError,
    POSITIVE_THRESHOLD,
    RetrievalDataset,
    ValidationReport,
    _beir_items,
    _Found,
    _jsonl_entries,
    _kind,
    _preview,
    _read_lines,
    read_triples,
    write_triples,
)

__all__ = [
    "Candidate",
    "LabelStore",
    "Labeller",
    "LabellerWidget",
    "auto_label",
    "delete_labels",
    "hardest_first",
    "label_curve",
    "labelling_comparison",
    "load_texts",
    "propose_candidates",
    "qrels_judge",
    "simulate_labelling",
    "skips_path_for",
]

#: The positive:negative band the guide recommends (section 5): 1:1 to 1:4.
GUIDE_RATIO = (1.0, 4.0)
FIRST_STAGES = ("bm25", "dense")

Pair = tuple[str, str]


def _pair(query: str, passage: str) -> Pair:
    return (query.strip(), passage.strip())


# ------------------------------------------------------------------------------------------ candidates
@dataclass(frozen=True)
class Candidate:
    """One (query, passage) pair a first stage proposed: ids, texts, its 1-based rank and score."""

    query_id: str
    doc_id: str
    query: str
    passage: str
    rank: int
    first_stage_score: float

    @property
    def pair(self) -> Pair:
        """``(query, passage)``, stripped: how the labels file identifies the pair."""
        return _pair(self.query, self.passage)


def _query_dict(queries: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(queries, str):
        raise TypeError("queries must be a dict id -> text or a list of texts, not a single string")
    items = queries.items() if isinstance(queries, Mapping) else ((str(i), q) for i, q in enumerate(queries))
    out = {}
    for qid, text in items:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"query {qid!r} is {_kind(text)}; every query needs non-empty text")
        out[str(qid)] = text
    return out


def _check_corpus(corpus: Mapping[str, str]) -> None:
    if not corpus:
        raise ValueError("the corpus is empty: give the passages to label as a dict doc id -> text")
    for doc_id, text in corpus.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"document {doc_id!r} is {_kind(text)}; every passage needs non-empty text (remove it)")


def hardest_first(
    run: Mapping[str, Mapping[str, float]], queries: Mapping[str, str], corpus: Mapping[str, str]
) -> list[Candidate]:
    """The candidates of a first-stage ``run`` (``{qid: {doc id: score}}`` in ranked order), hardest first.

    Order: rank 1 of every query (queries in the order of ``queries``), then rank 2 of every query, and
    so on; see the module docstring for why. A pair whose (query, passage) text repeats an earlier one
    (two documents with the same text) is proposed once, at its best rank. Queries absent from ``run``
    (a first stage may return nothing for a query) simply have no candidates.
    """
    per_query = []
    for qid in queries:
        ranked = run.get(qid, {})
        unknown = [d for d in ranked if d not in corpus]
        if unknown:
            raise KeyError(f"the run names doc {unknown[0]!r} (for query {qid!r}) that is not in the corpus")
        per_query.append(
            [Candidate(qid, d, queries[qid], corpus[d], rank, float(score)) for rank, (d, score) in enumerate(ranked.items(), 1)]
        )
    out: list[Candidate] = []
    seen: set[Pair] = set()
    for depth in range(max((len(c) for c in per_query), default=0)):
        for cands in per_query:
            if depth < len(cands) and cands[depth].pair not in seen:
                seen.add(cands[depth].pair)
                out.append(cands[depth])
    return out


def propose_candidates(
    queries: Mapping[str, str] | Sequence[str],
    corpus: Mapping[str, str],
    first_stage: Any = "bm25",
    top_k: int = 10,
    model: Any = "default",
    device: str | None = None,
    lang: str = "auto",
) -> list[Candidate]:
    """Each query's top ``top_k`` passages from a first stage, hardest first (:func:`hardest_first`).

    ``first_stage``: ``"bm25"`` (:class:`rerank_utils.retrieval.BM25Retriever`, ``lang`` as there),
    ``"dense"`` (:class:`rerank_utils.retrieval.DenseRetriever` over ``model``, a name for
    :func:`rerank_utils.models.load_bi_encoder` such as ``"default"`` or an encoder object), any object
    with ``search(queries, top_k)`` returning ``{qid: {doc id: score}}``, or such a run dict itself.
    ``queries`` is a dict id -> text or a list of texts (ids ``"0"``, ``"1"``, ...).
    """
    from .retrieval import BM25Retriever, DenseRetriever, _check_top_k

    _check_top_k(top_k)
    qdict = _query_dict(queries)
    _check_corpus(corpus)
    if isinstance(first_stage, Mapping):
        run = first_stage
    elif hasattr(first_stage, "search"):
        run = first_stage.search(qdict, top_k=top_k)
    elif first_stage == "bm25":
        run = BM25Retriever(corpus, lang=lang).search(qdict, top_k=top_k)
    elif first_stage == "dense":
        if isinstance(model, (str, os.PathLike)):
            from .models import load_bi_encoder

            model = load_bi_encoder(model, device=device)
        run = DenseRetriever(corpus, model).search(qdict, top_k=top_k)
    else:
        raise ValueError(
            f"first_stage must be one of {', '.join(map(repr, FIRST_STAGES))}, a retriever with search(), "
            f"or a run dict; got {first_stage!r}"
        )
    run = {qid: dict(list(ranked.items())[:top_k]) for qid, ranked in run.items()}
    return hardest_first(run, qdict, corpus)


def load_texts(path: str | os.PathLike, what: str = "document") -> dict[str, str]:
    """Your own queries or passages, as ``{id: text}``, for :func:`propose_candidates`.

    ``.txt``: one text per non-blank line; the id is the line number (``"1"``, ``"2"``, ...).
    ``.jsonl``: one ``{"_id": ..., "text": ...}`` per line, as a BEIR ``corpus.jsonl`` or ``queries.jsonl``
    (a ``title`` is allowed; a document with only a title uses it as its text). Every problem (bytes that
    are not UTF-8, a line that is not JSON, a missing or empty field, a repeated id) raises
    :class:`rerank_utils.data.DataValidationError` naming the file, the line and the field.
    ``what`` (``"document"`` or ``"query"``) only words the messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts, problems = {}, []
        for line in _read_lines(path):
            if line.problem is not None:
                problems.append(line.problem)
            elif line.text.strip():
                texts[str(line.number)] = line.text.strip()
        if problems:
            report = ValidationReport(str(path), len(texts) + len(problems), len(texts), problems=problems)
            raise DataValidationError(report, hint="re-save the file as UTF-8")
    elif suffix == ".jsonl":
        entries = _jsonl_entries(path)
        found = _Found(str(path), entries)
        texts, meta = _beir_items(entries, found, what)
        report = found.report()
        if report.problems:
            raise DataValidationError(report, hint=f'fix those lines: each must be {{"_id": "...", "text": "..."}}')
        texts = {i: t or meta.get(i, {}).get("title", "") for i, t in texts.items()}
    else:
        raise ValueError(f"{path}: use a .txt file (one text per line) or a .jsonl file (_id and text per line)")
    if not texts:
        raise ValueError(f"{path} holds no text")
    return texts


# ------------------------------------------------------------------------------------------ the files
def skips_path_for(path: str | os.PathLike) -> Path:
    """Where the skips of labels file ``path`` go: ``labels.jsonl`` -> ``labels.skipped.jsonl``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.skipped.jsonl")


def delete_labels(path: str | os.PathLike) -> None:
    """Delete a labels file and its skips file (to start a demonstration afresh). Irreversible."""
    for p in (Path(path), skips_path_for(path)):
        p.unlink(missing_ok=True)


def _score_value(value: Any) -> int | float:
    """A label as written: 1 / 0 (``True`` / ``False`` too), or a float in [0, 1] for a graded label."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and 0.0 <= float(value) <= 1.0:
        return int(value) if float(value).is_integer() else float(value)
    raise ValueError(f"a label is 1 (relevant) or 0 (not relevant), got {value!r}; to leave a pair undecided call skip()")


class LabelStore:
    """The labels file (the guide's triples, JSONL) and its skips file, read once and appended to.

    ``labels`` maps each pair to its score, in file order; ``skipped`` holds the skipped pairs (a pair
    labelled later counts as labelled, not skipped). Reading validates both files and raises
    :class:`rerank_utils.data.DataValidationError` naming the file, line and field of each problem.

    ``fsync``: after each appended line, ask the OS to put it on disk too (survives a power cut, not
    only a dead kernel). Each write opens, appends, flushes and closes the file, so no handle stays open.

    Before each write :meth:`sync` re-reads the files if anything else changed them since (a second
    labeller on the same file in this kernel, a hand edit), so a pair is never written twice.
    """

    def __init__(self, path: str | os.PathLike, skips_path: str | os.PathLike | None = None, fsync: bool = True):
        self.path = Path(path)
        if self.path.suffix.lower() != ".jsonl":
            raise ValueError(f"{self.path}: the labels file must be .jsonl (one label appended per line)")
        self.skips_path = Path(skips_path) if skips_path is not None else skips_path_for(self.path)
        if self.skips_path.resolve() == self.path.resolve():
            raise ValueError("the skips file must differ from the labels file")
        self.fsync = fsync
        self._load()

    def _load(self) -> None:
        labels: dict[Pair, float] = {}
        skipped: dict[Pair, None] = {}
        if self.path.exists():
            for rec in self._read_labels():
                labels[_pair(rec["query"], rec["passage"])] = rec["score"]
        if self.skips_path.exists():
            for pair in self._read_skips():
                if pair not in labels:
                    skipped[pair] = None
        self.labels, self.skipped = labels, skipped
        self._stamps = self._current_stamps()

    def _current_stamps(self) -> tuple:
        return (_stamp(self.path), _stamp(self.skips_path))

    def sync(self) -> bool:
        """Re-read both files when something else changed them since this store last read or wrote them.
        Returns whether it re-read them."""
        if self._current_stamps() == self._stamps:
            return False
        self._load()
        return True

    def _read_labels(self) -> list[dict]:
        try:
            records, _ = read_triples(self.path, mode="strict", require_positive=False)
        except DataValidationError as err:
            hint = "fix or delete those lines (one JSON label per line), then create the Labeller again; nothing was written"
            torn = _torn_last_line(self.path)
            if torn:
                hint = (
                    f"line {torn} does not end with a newline: the session probably stopped while writing it; "
                    f"delete that line (its pair will be proposed again), then create the Labeller again"
                )
            raise DataValidationError(err.report, hint=hint) from None
        return records

    def _read_skips(self) -> list[Pair]:
        source = str(self.skips_path)
        entries = _jsonl_entries(self.skips_path)
        found = _Found(source, entries)
        pairs = []
        for i, entry in enumerate(entries):
            if not found.ok(i):
                continue
            value = entry.value
            if not isinstance(value, dict):
                found.add(i, "not_an_object", f'line is {_kind(value)}; write {{"query": "...", "passage": "..."}}')
                continue
            for name in value:
                if name not in ("query", "passage"):
                    found.add(i, "extra_field", f"field {name!r} is not part of a skip (query, passage); remove it", str(name))
            for name in ("query", "passage"):
                if name not in value:
                    found.add(i, "missing_field", f"field {name!r} is missing; a skip needs query and passage", name)
                elif not isinstance(value[name], str) or not value[name].strip():
                    found.add(i, "wrong_type" if not isinstance(value[name], str) else "empty_text",
                              f"field {name!r} is {_kind(value[name])}; write the text as a JSON string", name)
            if found.ok(i):
                pairs.append(_pair(value["query"], value["passage"]))
        report = found.report()
        if report.problems:
            raise DataValidationError(report, hint="fix or delete those lines (or the whole skips file), then create the Labeller again")
        return pairs

    # -- writing
    def _append(self, path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, ensure_ascii=False) + "\n"
        if path.exists() and path.stat().st_size and not _ends_with_newline(path):
            text = "\n" + text  # a hand-edited file without a final newline: never glue two records
        with open(path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        self._stamps = self._current_stamps()

    def _remove(self, path: Path, pair: Pair) -> None:
        """Rewrite ``path`` without the line holding ``pair`` (atomically: a temporary file, then replace)."""
        kept = []
        for raw in path.read_bytes().splitlines(keepends=True):
            try:
                rec = json.loads(raw)
                if _pair(rec["query"], rec["passage"]) == pair:
                    continue
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
            kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(b"".join(kept))
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        self._stamps = self._current_stamps()

    def add_label(self, query: str, passage: str, score: Any) -> None:
        pair = _pair(query, passage)
        value = _score_value(score)
        self.sync()
        if pair in self.labels:
            raise ValueError(f"pair already labelled {self.labels[pair]:g} in {self.path}; remove it first")
        self._append(self.path, {"query": pair[0], "passage": pair[1], "score": value})
        self.labels[pair] = float(value)
        if pair in self.skipped:  # a label replaces a skip
            self._remove(self.skips_path, pair)
            del self.skipped[pair]

    def add_skip(self, query: str, passage: str) -> None:
        pair = _pair(query, passage)
        self.sync()
        if pair in self.labels or pair in self.skipped:
            return
        self._append(self.skips_path, {"query": pair[0], "passage": pair[1]})
        self.skipped[pair] = None

    def remove(self, pair: Pair) -> None:
        """Forget the label or the skip of ``pair`` (the file is rewritten without it)."""
        self.sync()
        if pair in self.labels:
            self._remove(self.path, pair)
            del self.labels[pair]
        elif pair in self.skipped:
            self._remove(self.skips_path, pair)
            del self.skipped[pair]
        else:
            raise KeyError(f"pair {_preview(pair)} is neither labelled nor skipped")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a file's change: inode (a rewrite replaces the file), size and modification time."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _torn_last_line(path: Path) -> int | None:
    """The number of the last line when it is not valid JSON and lacks its newline, else ``None``."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    lines = data.splitlines()
    try:
        json.loads(lines[-1])
        return None
    except ValueError:
        return len(lines)


# ------------------------------------------------------------------------------------------ the labeller
class Labeller:
    """Propose candidates hardest first, record decisions in a labels file, resume where it stopped.

    Args:
        candidates: the pairs to propose, in order (:func:`propose_candidates`); repeats are dropped.
        path: the labels file (``.jsonl``, created when missing; an existing one is read and resumed).
        skips_path: where skips go; default :func:`skips_path_for` ``(path)``.
        fsync: see :class:`LabelStore`.

    :attr:`current` is the first candidate neither labelled nor skipped (``None`` when all are done).
    Decisions: ``label(pair, value)`` with ``pair`` a :class:`Candidate`, a ``(query, passage)`` tuple or
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
        self.candidates: list[Candidate] = []
        seen: set[Pair] = set()
        for cand in candidates:
            if not isinstance(cand, Candidate):
                raise TypeError(f"candidates must be Candidate objects (from propose_candidates), got {_kind(cand)}")
            if not all(isinstance(t, str) and t.strip() for t in (cand.query, cand.passage)):
                raise ValueError(f"candidate ({cand.query_id!r}, {cand.doc_id!r}) has an empty query or passage")
            if cand.pair not in seen:
                seen.add(cand.pair)
                self.candidates.append(cand)
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
        """:func:`propose_candidates` then a :class:`Labeller` on ``path``."""
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

        ``pair`` is a :class:`Candidate`, a ``(query, passage)`` tuple or ``None`` (the current
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
        labelled = sum(1 for c in self.candidates if c.pair in self.store.labels)
        skipped = sum(1 for c in self.candidates if c.pair in self.store.skipped)
        rows = self.per_query()
        ratio = self.ratio()
        return {
            "proposed": len(self.candidates),
            "labelled": labelled,
            "skipped": skipped,
            "remaining": len(self.candidates) - labelled - skipped,
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
        from .datasets import load_triples_file

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
        """The ipywidgets front end (:class:`LabellerWidget`); display it as a cell's last expression."""
        return LabellerWidget(self, passage_chars=passage_chars)


# ------------------------------------------------------------------------------------------ the widget
class LabellerWidget:
    """Query, passage, four buttons and the progress, over a :class:`Labeller`.

    Each button only calls the labeller (``relevant()``, ``not_relevant()``, ``skip()``, ``undo()``) and
    redraws, so everything it does is tested without a browser: ``widget.relevant_button.click()``.
    An error in a callback (a full disk, say) is shown in :attr:`message` and kept in :attr:`last_error`
    instead of vanishing into the front end's log. ``passage_chars`` cuts long passages for display
    (the label is for the whole passage).
    """

    def __init__(self, labeller: Labeller, passage_chars: int | None = None):
        import ipywidgets as w

        self.labeller = labeller
        self.passage_chars = passage_chars
        self.last_error: Exception | None = None
        self.query_html = w.HTML()
        self.passage_html = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px"))
        self.relevant_button = w.Button(description="relevant (1)", button_style="success", icon="check")
        self.not_relevant_button = w.Button(description="not relevant (0)", button_style="danger", icon="times")
        self.skip_button = w.Button(description="skip", icon="forward")
        self.undo_button = w.Button(description="undo", icon="undo")
        self.progress_bar = w.IntProgress(min=0, max=max(1, len(labeller.candidates)), description="decided")
        self.status_html = w.HTML()
        self.message = w.HTML()
        self.relevant_button.on_click(lambda _: self._do(self.labeller.relevant))
        self.not_relevant_button.on_click(lambda _: self._do(self.labeller.not_relevant))
        self.skip_button.on_click(lambda _: self._do(self.labeller.skip))
        self.undo_button.on_click(lambda _: self._do(self.labeller.undo))
        buttons = w.HBox([self.relevant_button, self.not_relevant_button, self.skip_button, self.undo_button])
        self.container = w.VBox([self.query_html, self.passage_html, buttons, self.progress_bar, self.status_html, self.message])
        self.refresh()

    def _do(self, action: Callable[[], Any]) -> None:
        try:
            action()
            self.last_error = None
            self.message.value = ""
        except (OSError, ValueError) as err:
            self.last_error = err
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        self.refresh()

    def refresh(self) -> None:
        """Show the current candidate and the progress."""
        lab = self.labeller
        cand = lab.current
        p = lab.progress()
        self.progress_bar.value = p["labelled"] + p["skipped"]
        done = cand is None
        for button in (self.relevant_button, self.not_relevant_button, self.skip_button):
            button.disabled = done
        self.undo_button.disabled = not lab.history
        if done:
            self.query_html.value = "<b>Done:</b> every proposed pair is labelled or skipped."
            self.passage_html.value = ""
        else:
            row = next(r for r in lab.per_query() if r["query_id"] == cand.query_id)
            passage = cand.passage
            if self.passage_chars and len(passage) > self.passage_chars:
                passage = passage[: self.passage_chars] + " …"
            self.query_html.value = (
                f"<b>Query</b> {html.escape(cand.query)}<br><small>first-stage rank {cand.rank} · "
                f"this query: {row['labelled']} labelled, {row['positives']} relevant, {row['remaining']} to go</small>"
            )
            self.passage_html.value = html.escape(passage).replace("\n", "<br>")
        self.status_html.value = f"<small>{html.escape(lab.status_line())}<br>{html.escape(lab.ratio_advice())}</small>"

    def button_for(self, value: Any):
        """The button a person would press for ``value``: 1 relevant, 0 not relevant, ``None`` skip."""
        if value is None:
            return self.skip_button
        return self.relevant_button if float(_score_value(value)) >= POSITIVE_THRESHOLD else self.not_relevant_button

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.container._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"LabellerWidget({self.labeller!r})"


# ------------------------------------------------------------------------------------------ no human at hand
def qrels_judge(ds: RetrievalDataset) -> Callable[[Candidate], int]:
    """A stand-in for a human where the answers are already known: 1 when ``ds.qrels`` holds the
    candidate's (query id, doc id) with a grade > 0, else 0. For demonstrations and tests; a real team
    has no qrels, which is why it labels."""

    def judge(cand: Candidate) -> int:
        return int(ds.qrels.get(cand.query_id, {}).get(cand.doc_id, 0) > 0)

    return judge


def auto_label(labeller: Labeller, judge: Callable[[Candidate], Any], n: int | None = None) -> dict[str, int]:
    """Let ``judge(candidate)`` decide the next ``n`` candidates (all when ``None``): a value is
    recorded with :meth:`Labeller.label`, ``None`` is a skip. Returns ``{"labelled": ..., "skipped": ...}``."""
    counts = {"labelled": 0, "skipped": 0}
    while n is None or counts["labelled"] + counts["skipped"] < n:
        cand = labeller.current
        if cand is None:
            break
        value = judge(cand)
        if value is None:
            labeller.skip(cand)
            counts["skipped"] += 1
        else:
            labeller.label(cand, value)
            counts["labelled"] += 1
    return counts


def simulate_labelling(
    candidates: Iterable[Candidate], judge: Callable[[Candidate], Any], path: str | os.PathLike, budget: int | None
) -> Labeller:
    """A fresh labels file at ``path`` (an old one and its skips are deleted), ``budget`` decisions by
    ``judge`` (:func:`auto_label`), without fsync (a simulation needs no power-cut safety)."""
    delete_labels(path)
    labeller = Labeller(candidates, path, fsync=False)
    auto_label(labeller, judge, budget)
    return labeller


FIRST_STAGE_NAMES = {"bm25": "BM25", "dense": "bi-encoder"}


def labelling_comparison(
    ds: RetrievalDataset,
    first_stages: Sequence[Any],
    folder: str | os.PathLike,
    budget: int,
    top_k: int = 10,
    model: Any = "default",
    device: str | None = None,
    judge: Callable[[Candidate], Any] | None = None,
    candidates: Mapping[Any, list[Candidate]] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict]]]:
    """The same labelling budget spent on each first stage's candidates, hardest first, by ``judge``
    (default :func:`qrels_judge` ``(ds)``, the known answers standing in for a person).

    Returns ``(table, curves)``: per first stage, a row (pairs labelled, relevant, not relevant,
    negatives per positive, queries with a relevant passage, the share of the known answers found) and
    its :func:`label_curve`. Files go to ``folder/compare_<first stage>.jsonl``. ``candidates`` maps a
    first stage to candidates already proposed for ``ds`` (they are reused instead of retrieved again).
    """
    judge = judge or qrels_judge(ds)
    known = sum(len(ds.positives(q)) for q in ds.queries)
    table, curves = {}, {}
    for fs in first_stages:
        name = FIRST_STAGE_NAMES.get(fs, str(fs)) if isinstance(fs, str) else type(fs).__name__
        cands = (candidates or {}).get(fs) if isinstance(fs, str) else None
        if cands is None:
            cands = propose_candidates(ds.queries, ds.corpus, fs, top_k, model=model, device=device)
        lab = simulate_labelling(cands, judge, Path(folder) / f"compare_{name.replace(' ', '_')}.jsonl", budget)
        p = lab.progress()
        table[name] = {
            "pairs labelled": p["labelled"],
            "relevant": p["positives"],
            "not relevant": p["negatives"],
            "negatives per positive": p["negatives_per_positive"],
            "queries with a relevant passage": p["queries_with_positive"],
            "share of queries": p["queries_with_positive"] / max(1, len(ds.queries)),
            "known answers found": p["positives"] / max(1, known),
        }
        curves[name] = label_curve(lab.path, n_queries=len(ds.queries))
    return table, curves


def label_curve(path: str | os.PathLike, n_queries: int | None = None) -> list[dict[str, Any]]:
    """How a labels file grew, label by label in file order: after each label, ``labels``,
    ``positives``, ``negatives``, ``queries_with_positive`` (and its ``share`` of ``n_queries`` when
    given) and ``negatives_per_positive`` (``None`` before the first positive)."""
    records, _ = read_triples(path, require_positive=False)
    rows, pos, neg, with_pos = [], 0, 0, set()
    for i, rec in enumerate(records, 1):
        if rec["score"] >= POSITIVE_THRESHOLD:
            pos += 1
            with_pos.add(rec["query"])
        else:
            neg += 1
        row = {"labels": i, "positives": pos, "negatives": neg, "queries_with_positive": len(with_pos),
               "negatives_per_positive": neg / pos if pos else None}
        if n_queries:
            row["share_of_queries_with_positive"] = len(with_pos) / n_queries
        rows.append(row)
    return rows
