"""The records every data module shares: :class:`RetrievalDataset` (corpus, queries, qrels), the validation
:class:`Problem` / :class:`ValidationReport` / :class:`DataValidationError`, and the checks of one text or score.
The formats' readers and writers are :mod:`~rerank_utils.data.triples`, :mod:`~rerank_utils.data.grouped` and
:mod:`~rerank_utils.data.beir`; the splits, :mod:`~rerank_utils.data.splits`.

Introduced in notebook ``01_data_preparation``.

Formats (all UTF-8):

1. Triples, the guide's format: ``{"query": str, "passage": str, "score": 0|1}`` (a float in [0, 1]
   is allowed for graded or distilled labels), as a JSON array, JSONL or CSV.
2. Grouped (FlagEmbedding's format): ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.
3. BEIR folder: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``),
   ``qrels/{train,dev,test}.tsv`` (``query-id corpus-id score``, header line).

Every reader validates what it reads. Each bad record becomes a :class:`Problem` that names the file,
the line (or the record index), the field and what to do about it. ``mode="strict"`` (the default)
collects every problem and then raises :class:`DataValidationError` listing them all; ``mode="drop"``
drops the bad records and returns a :class:`ValidationReport` that counts them by reason, so nothing
disappears without a count (``n_input == n_kept + sum(dropped.values())`` always holds).

Line numbers are 1-based physical lines, as an editor shows them; record indexes (``record 3``) are
0-based, so ``records[3]`` is the record meant.

Splits (:mod:`rerank_utils.data.splits`) put whole queries on one side, and keep queries that share a positive
passage or a group value together, so that its leakage check finds nothing.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

#: Why a record was reported or dropped. ``Problem.reason`` and the keys of
#: ``ValidationReport.dropped`` are always one of these.
REASONS: tuple[str, ...] = (
    "invalid_json",  # a line (JSONL) or the file (JSON array) is not valid JSON
    "undecodable",  # bytes that are not UTF-8
    "not_an_array",  # a .json file whose top level is not an array
    "not_an_object",  # a record that is not a JSON object
    "missing_field",
    "extra_field",
    "wrong_type",
    "empty_text",
    "score_not_number",
    "score_out_of_range",
    "duplicate_pair",  # the same (query, passage) twice, or the same query in two grouped records
    "conflicting_labels",  # the same (query, passage) with different scores
    "no_positive",  # a query without any passage scored >= 0.5
    "unknown_query_id",  # BEIR qrels naming a query that queries.jsonl lacks
    "unknown_doc_id",  # BEIR qrels naming a document that corpus.jsonl lacks
    "duplicate_id",  # BEIR: the same _id twice
    "invalid_row",  # CSV/TSV row with the wrong number of columns or an unreadable value
)


MODES: tuple[str, ...] = ("strict", "drop")

#: A score at or above this is a positive (relevant) label; below it, a negative.
POSITIVE_THRESHOLD = 0.5

#: The positive:negative band the guide recommends (section 5): 1:1 to 1:4.
GUIDE_RATIO = (1.0, 4.0)

TRIPLE_FIELDS: tuple[str, ...] = ("query", "passage", "score")
GROUPED_FIELDS: tuple[str, ...] = ("query", "pos", "neg")
TRIPLE_SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".csv")
GROUPED_SUFFIXES: tuple[str, ...] = (".json", ".jsonl")
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}
IN_MEMORY = "<records>"
_MAX_LISTED = 50  # problems listed in a DataValidationError before "... and K more"


@dataclass
class Problem:
    """One thing wrong with one record.

    ``location`` is ``"line 12"`` for JSONL, CSV and TSV files (1-based physical line),
    ``"record 3 (line 7)"`` for JSON arrays and ``"record 3"`` for in-memory records (0-based index).
    ``message`` says what is wrong and what to do about it.
    """
    source: str
    location: str
    reason: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.location}: {self.message}"


@dataclass
class ValidationReport:
    """What validation kept and dropped.

    ``dropped[reason]`` counts RECORDS dropped for ``reason``: one reason per dropped record, the first
    problem found in it. ``problems`` lists every problem (a record may have several).
    ``n_input == n_kept + sum(dropped.values())`` always holds.
    """
    source: str
    n_input: int
    n_kept: int
    dropped: collections.Counter = field(default_factory=collections.Counter)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self, max_examples: int = 5) -> str:
        """A short text: counts on the first line, then the first few problems."""
        head = f"{self.source}: {self.n_input} records, {self.n_kept} kept, {self.n_dropped} dropped"
        if self.dropped:
            head += " (" + ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common()) + ")"
        lines = [head]
        lines += [f"  {p}" for p in self.problems[:max_examples]]
        if len(self.problems) > max_examples:
            lines.append(f"  ... and {len(self.problems) - max_examples} more problems")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class DataValidationError(ValueError):
    """Raised in strict mode (or when a file cannot be read at all) with every problem found."""
    def __init__(self, report: ValidationReport, hint: str | None = None):
        self.report = report
        self.problems = list(report.problems)
        self.hint = hint if hint is not None else "pass mode='drop' to drop them and get a report"
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        lines = [f"{n} problem{'' if n == 1 else 's'} in {self.report.source}:"]
        lines += [f"  {p}" for p in self.problems[:_MAX_LISTED]]
        if n > _MAX_LISTED:
            lines.append(f"  ... and {n - _MAX_LISTED} more")
        lines.append(self.hint)
        return "\n".join(lines)


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
        ids = list(query_ids)
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

    def sample(self, n: int, seed: int = 42) -> "RetrievalDataset":
        """``n`` queries drawn at random (seeded), kept in their original order, over the SAME corpus.

        The corpus stays whole so that a small sample is still a realistic retrieval task (the
        ``smoke`` profile samples 40 queries over all 503 FAQ answers). ``n`` >= the number of queries
        returns every query.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"sample(): n must be a positive integer, got {n!r}")
        ids = list(self.queries)
        if n >= len(ids):
            return self.subset(ids)
        chosen = set(random.Random(seed).sample(ids, n))
        return self.subset([q for q in ids if q in chosen])


@dataclass
class _Entry:
    """One input record and where it came from; ``problem`` is set when it could not even be read."""
    location: str
    value: Any = None
    problem: Problem | None = None


class _Found:
    """Problems per entry, in input order. An entry's first problem is why it is dropped."""
    def __init__(self, source: str, entries: Sequence[_Entry]):
        self.source = source
        self.entries = entries
        self.by_entry = {i: [entry.problem] for i, entry in enumerate(entries) if entry.problem is not None}

    def add(self, i: int, reason: str, message: str, field: str | None = None) -> None:
        assert reason in REASONS, reason
        problem = Problem(self.source, self.entries[i].location, reason, message, field)
        self.by_entry.setdefault(i, []).append(problem)

    def add_all(self, i: int, issues: list[tuple[str, str, str]]) -> bool:
        """Add each ``(reason, message, field)`` of ``issues``; whether there was any."""
        for issue in issues:
            self.add(i, *issue)
        return bool(issues)

    def ok(self, i: int) -> bool:
        return i not in self.by_entry

    def each_ok(self) -> Iterator[tuple[int, Any]]:
        """``(index, value)`` of each entry that has no problem (checked as the loop reaches it)."""
        return ((i, entry.value) for i, entry in enumerate(self.entries) if self.ok(i))

    def report(self) -> ValidationReport:
        bad = sorted(self.by_entry)
        return ValidationReport(
            source=self.source,
            n_input=len(self.entries),
            n_kept=len(self.entries) - len(bad),
            dropped=collections.Counter(self.by_entry[i][0].reason for i in bad),
            problems=[p for i in bad for p in self.by_entry[i]],
        )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")


def _finish(report: ValidationReport, kept: list, mode: str) -> tuple[list, ValidationReport]:
    """Raise in strict mode when there is any problem; otherwise return what was kept."""
    assert report.n_input == report.n_kept + report.n_dropped and report.n_kept == len(kept)
    if mode == "strict" and report.problems:
        raise DataValidationError(report)
    return kept, report


def _preview(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _kind(value: Any) -> str:
    """How a value reads in a message: 'a number (42)', 'null', 'a list', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, numbers.Number):
        return f"a number ({_preview(value)})"
    if isinstance(value, str):
        return f"the string {_preview(value)}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _as_record_list(records: Any) -> list:
    """A list of records from a list, any iterable or a pandas DataFrame (one record per row)."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        return records.to_dict(orient="records")
    return list(records)


def _entries_from_records(records: Any, locations: Sequence[str] | None) -> list[_Entry]:
    records = _as_record_list(records)
    if locations is None:
        locations = [f"record {i}" for i in range(len(records))]
    elif len(locations) != len(records):
        raise ValueError(f"locations has {len(locations)} items but there are {len(records)} records")
    return [_Entry(loc, rec) for loc, rec in zip(locations, records, strict=True)]


def _check_text(value: Any, name: str) -> tuple[str | None, tuple[str, str] | None]:
    """The stripped text, or ``(reason, message)`` when ``value`` is not non-empty text."""
    if not isinstance(value, str):
        return None, ("wrong_type", f"field {name!r} is {_kind(value)}, not text; write it as a JSON string")
    text = value.strip()
    if not text:
        return None, ("empty_text", f"field {name!r} is empty; write the text or remove the record")
    return text, None


def _check_score(value: Any, from_text: bool) -> tuple[float | None, tuple[str, str] | None]:
    """The score as a float in [0, 1], or ``(reason, message)``.

    ``from_text``: the value comes from a CSV cell, so a string such as ``"1"`` is parsed.
    """
    rule = "scores must be numbers in [0, 1] (1 = relevant, 0 = not)"
    if isinstance(value, bool):
        return None, ("wrong_type", f"field 'score' is {_kind(value)}; write 1 for relevant, 0 for not")
    if isinstance(value, str):
        if not from_text:
            return None, ("wrong_type", f"field 'score' is {_kind(value)}; write it as a number without quotes: {rule}")
        if not value.strip():
            return None, ("score_not_number", f"field 'score' is empty; {rule}")
        try:
            value = float(value.strip())
        except ValueError:
            return None, ("score_not_number", f"field 'score' is {_preview(value)}, not a number; {rule}")
    elif not isinstance(value, numbers.Real):
        return None, ("wrong_type", f"field 'score' is {_kind(value)}; {rule}")
    score = float(value)
    if not math.isfinite(score):
        return None, ("score_not_number", f"field 'score' is {score}; {rule}")
    if not 0.0 <= score <= 1.0:
        return None, ("score_out_of_range", f"field 'score' is {_preview(value)}; {rule}")
    return score, None


def _format_number(value: float) -> str:
    """``1.0`` -> ``"1"``, ``0.25`` -> ``"0.25"``: how scores are written to CSV and TSV."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _json_default(obj: Any) -> Any:
    """Let ``json`` write numpy scalars (``np.float64(1.0)`` -> ``1.0``)."""
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def data_fingerprint(*datasets: RetrievalDataset) -> str:
    """SHA-256 of what training reads: each dataset's query ids and texts, qrels and corpus, in order. Two
    splits of the same size but other queries get different fingerprints. A saved model (reranker or retriever) is
    reused only when the fingerprint of the data it was trained on equals this one."""
    h = hashlib.sha256()
    for ds in datasets:
        payload = {"queries": ds.queries, "qrels": ds.qrels, "corpus": ds.corpus}
        h.update(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
