"""Record types, readers, writers and validators for the three data formats, and leak-free splits.

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

Splits (:func:`split_dataset`, :func:`split_triples`) put whole queries on one side, and keep queries
that share a positive passage or a group value together, so that :func:`check_leakage` finds nothing.
"""

from __future__ import annotations

import bisect
import collections
import csv
import hashlib
import json
import math
import numbers
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NoReturn, Sequence

__all__ = [
    "REASONS",
    "MODES",
    "Problem",
    "ValidationReport",
    "DataValidationError",
    "RetrievalDataset",
    "validate_triples",
    "read_triples",
    "write_triples",
    "validate_grouped",
    "read_grouped",
    "write_grouped",
    "read_beir",
    "write_beir",
    "triples_to_grouped",
    "grouped_to_triples",
    "triples_to_dataset",
    "dataset_to_triples",
    "dataset_to_grouped",
    "split_dataset",
    "split_triples",
    "LeakageReport",
    "LeakageError",
    "check_leakage",
    "assert_no_leakage",
]

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
TRIPLE_FIELDS: tuple[str, ...] = ("query", "passage", "score")
GROUPED_FIELDS: tuple[str, ...] = ("query", "pos", "neg")
TRIPLE_SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".csv")
GROUPED_SUFFIXES: tuple[str, ...] = (".json", ".jsonl")
BEIR_QRELS_HEADER = ("query-id", "corpus-id", "score")
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}
IN_MEMORY = "<records>"
_MAX_LISTED = 50  # problems listed in a DataValidationError before "... and K more"


# --------------------------------------------------------------------------------------------------
# Problems and reports
# --------------------------------------------------------------------------------------------------


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
        ids = [q for q in query_ids]
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
        import random

        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"sample(): n must be a positive integer, got {n!r}")
        ids = list(self.queries)
        if n >= len(ids):
            return self.subset(ids)
        chosen = set(random.Random(seed).sample(ids, n))
        return self.subset([q for q in ids if q in chosen])


# --------------------------------------------------------------------------------------------------
# Small helpers shared by the validators
# --------------------------------------------------------------------------------------------------


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
        self.by_entry: dict[int, list[Problem]] = {}
        for i, entry in enumerate(entries):
            if entry.problem is not None:
                self.by_entry[i] = [entry.problem]

    def add(self, i: int, reason: str, message: str, field: str | None = None) -> None:
        assert reason in REASONS, reason
        problem = Problem(self.source, self.entries[i].location, reason, message, field)
        self.by_entry.setdefault(i, []).append(problem)

    def ok(self, i: int) -> bool:
        return i not in self.by_entry

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


def _suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ValueError(
            f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
            f"use one of {', '.join(allowed)}"
        )
    return suffix


# --------------------------------------------------------------------------------------------------
# Reading files: each line decoded on its own, so one bad line does not hide the rest
# --------------------------------------------------------------------------------------------------


@dataclass
class _Line:
    number: int  # 1-based
    text: str | None  # None when the bytes are not UTF-8
    problem: Problem | None = None


def _read_lines(path: Path) -> list[_Line]:
    """The file's physical lines (line endings kept), each decoded as UTF-8 on its own."""
    source = str(path)
    lines = []
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            lines.append(_Line(number, text))
        except UnicodeDecodeError as err:
            message = (
                f"line is not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                "re-save the file as UTF-8"
            )
            lines.append(_Line(number, None, Problem(source, f"line {number}", "undecodable", message)))
    return lines


def _jsonl_entries(path: Path) -> list[_Entry]:
    """One entry per non-blank line; a line that is not JSON or not UTF-8 is an entry with a problem."""
    source = str(path)
    entries = []
    for line in _read_lines(path):
        location = f"line {line.number}"
        if line.problem is not None:
            entries.append(_Entry(location, problem=line.problem))
        elif line.text.strip():
            try:
                entries.append(_Entry(location, json.loads(line.text)))
            except json.JSONDecodeError as err:
                message = f"not valid JSON ({err.msg}, column {err.colno}); each line must hold one JSON object"
                entries.append(_Entry(location, problem=Problem(source, location, "invalid_json", message)))
    return entries


class _Unreadable(Exception):
    """The whole file cannot be parsed (a broken JSON array, a CSV without header): nothing can be kept."""

    def __init__(self, problems: list[Problem], hint: str):
        super().__init__(hint)
        self.problems = problems
        self.hint = hint


def _raise_unreadable(source: str, err: _Unreadable) -> NoReturn:
    report = ValidationReport(source=source, n_input=0, n_kept=0, problems=err.problems)
    raise DataValidationError(report, hint=err.hint) from None


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _json_array_entries(path: Path) -> list[_Entry]:
    """The records of a JSON array file, each located as ``record i (line n)``.

    The array is walked with ``JSONDecoder.raw_decode`` so every record's starting line is known.
    Raises :class:`_Unreadable` when the file is not UTF-8 or not one valid JSON array.
    """
    source = str(path)
    lines = _read_lines(path)
    undecodable = [line.problem for line in lines if line.problem is not None]
    cannot = "the JSON array can't be parsed, so nothing can be kept; fix the file"
    if undecodable:
        raise _Unreadable(undecodable, f"{cannot} (or save it as JSONL, where one bad line spoils only itself)")
    text = "".join(line.text for line in lines)
    starts = list(_line_starts(lines))

    def where(pos: int) -> tuple[int, int]:
        """(line, column) of a character offset, both 1-based."""
        n = bisect.bisect_right(starts, pos)
        return (n, pos - starts[n - 1] + 1) if n else (1, 1)

    def fail(pos: int, reason: str, message: str) -> NoReturn:
        n, col = where(pos)
        raise _Unreadable([Problem(source, f"line {n}", reason, f"{message} (column {col})")], cannot)

    def skip(pos: int) -> int:
        return _WHITESPACE.match(text, pos).end()

    decoder = json.JSONDecoder()
    pos = skip(0)
    if pos == len(text):
        fail(pos, "invalid_json", "the file is empty; write a JSON array of records: [{...}, {...}]")
    if text[pos] != "[":
        hint = " (one object per line is JSONL: name the file .jsonl)" if text[pos] == "{" else ""
        fail(pos, "not_an_array", f"the file must hold one JSON array of records, [{{...}}, {{...}}]{hint}")
    entries: list[_Entry] = []
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                fail(err.pos, "invalid_json", f"not valid JSON: {err.msg}")
            entries.append(_Entry(f"record {len(entries)} (line {where(pos)[0]})", value))
            pos = skip(end)
            if pos < len(text) and text[pos] == ",":
                pos = skip(pos + 1)
            elif pos < len(text) and text[pos] == "]":
                pos += 1
                break
            else:
                fail(pos, "invalid_json", "not valid JSON: expected ',' or ']' after a record")
    pos = skip(pos)
    if pos != len(text):
        fail(pos, "invalid_json", "not valid JSON: extra data after the closing ']'")
    return entries


def _line_starts(lines: list[_Line]) -> Iterator[int]:
    offset = 0
    for line in lines:
        yield offset
        offset += len(line.text)


def _csv_entries(path: Path, required: tuple[str, ...]) -> list[_Entry]:
    """One entry per CSV data row, as a dict of strings; located by the row's first physical line.

    A row with the wrong number of columns is an ``invalid_row`` entry. Raises :class:`_Unreadable`
    when the header lacks a required column.
    """
    source = str(path)
    lines = _read_lines(path)
    numbered: list[tuple[int, _Entry]] = []  # (first physical line, entry)
    fed: list[int] = []  # physical line number of each line handed to the csv reader

    def good_lines() -> Iterator[str]:
        for line in lines:
            if line.problem is not None:
                numbered.append((line.number, _Entry(f"line {line.number}", problem=line.problem)))
            else:
                fed.append(line.number)
                yield line.text

    reader = csv.reader(good_lines())
    header: list[str] | None = None
    while True:
        before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            number = fed[min(before, len(fed) - 1)] if fed else 1
            location = f"line {number}"
            numbered.append(
                (number, _Entry(location, problem=Problem(source, location, "invalid_row", f"unreadable CSV: {err}")))
            )
            continue
        number = fed[before]
        location = f"line {number}"
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if header is None:
            header = [cell.strip() for cell in row]
            missing = [name for name in required if name not in header]
            if missing:
                message = (
                    f"the header is {','.join(header)!r} but lacks {', '.join(map(repr, missing))}; "
                    f"the first line must name the columns: {','.join(required)}"
                )
                raise _Unreadable(
                    [Problem(source, location, "missing_field", message, missing[0])],
                    "the CSV header is incomplete, so no row can be read; fix the first line",
                )
            continue
        if len(row) != len(header):
            message = (
                f"row has {len(row)} columns but the header has {len(header)}; "
                "put double quotes around text that contains commas"
            )
            numbered.append((number, _Entry(location, problem=Problem(source, location, "invalid_row", message))))
            continue
        numbered.append((number, _Entry(location, dict(zip(header, row, strict=True)))))
    if header is None and not numbered:
        raise _Unreadable(
            [
                Problem(
                    source,
                    "line 1",
                    "missing_field",
                    f"the file is empty; the first line must be the header {','.join(required)}",
                )
            ],
            "nothing to read",
        )
    numbered.sort(key=lambda item: item[0])  # undecodable lines are noted as the reader passes them
    return [entry for _, entry in numbered]


def _file_entries(path: Path, suffix: str, required: tuple[str, ...]) -> list[_Entry]:
    if suffix == ".jsonl":
        return _jsonl_entries(path)
    if suffix == ".json":
        return _json_array_entries(path)
    return _csv_entries(path, required)


def _cell(value: Any) -> str:
    """A value as a CSV cell: text as is, numbers as ``_format_number``, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _format_number(value)
    return _dumps(value)


def _records_for_writing(records: Any, required: tuple[str, ...], what: str) -> list[dict]:
    records = _as_record_list(records)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"record {i} is {_kind(rec)}, not a {what} record (a dict)")
        missing = [name for name in required if name not in rec]
        if missing:
            raise ValueError(
                f"record {i} lacks {', '.join(map(repr, missing))}; {what} records need {', '.join(required)}"
            )
    return records


def _write_json_records(records: list[dict], path: Path, array: bool) -> None:
    """JSON array (one record per line, so errors point at a line) or JSONL."""
    rows = [_dumps(rec) for rec in records]
    if array:
        text = "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"
    else:
        text = "".join(row + "\n" for row in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_csv(records: list[dict], path: Path, required: tuple[str, ...]) -> None:
    columns = list(required)
    for rec in records:
        columns += [name for name in rec if name not in columns]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_cell(rec.get(name)) for name in columns])


# --------------------------------------------------------------------------------------------------
# Triples: {"query": str, "passage": str, "score": float in [0, 1]}
# --------------------------------------------------------------------------------------------------


def validate_triples(
    records: Iterable[dict],
    source: str = IN_MEMORY,
    mode: str = "strict",
    require_positive: bool = True,
    allowed_extra_fields: Iterable[str] = (),
    locations: Sequence[str] | None = None,
) -> tuple[list[dict], ValidationReport]:
    """Check triples and return them normalised, with a report.

    Records (dicts; a pandas DataFrame works too) become ``{"query": str, "passage": str, "score":
    float}`` with the text stripped, plus the fields named in ``allowed_extra_fields``. Problems: not an
    object, a missing or extra field, text that is not a string or is empty, a score that is a boolean,
    not a number or outside [0, 1], the same (query, passage) pair twice (``duplicate_pair``: the first is
    kept) or with different scores (``conflicting_labels``: all of them are bad), and, when
    ``require_positive``, a query with no valid record scored >= 0.5 (``no_positive``).

    ``mode="strict"`` raises :class:`DataValidationError` listing every problem; ``mode="drop"`` drops
    the bad records and counts them in the report. ``source`` and ``locations`` (one per record) say
    where the records came from, for the messages.
    """
    _check_mode(mode)
    entries = _entries_from_records(records, locations)
    return _validate_triple_entries(entries, source, mode, require_positive, allowed_extra_fields, from_text=False)


def read_triples(
    path: str | Path,
    mode: str = "strict",
    require_positive: bool = True,
    allowed_extra_fields: Iterable[str] = (),
) -> tuple[list[dict], ValidationReport]:
    """Read and validate a triples file: ``.json`` (array), ``.jsonl`` or ``.csv`` (header
    ``query,passage,score``). See :func:`validate_triples` for the checks and the modes.

    A JSON array that cannot be parsed at all raises :class:`DataValidationError` in both modes.
    """
    _check_mode(mode)
    path = Path(path)
    suffix = _suffix(path, TRIPLE_SUFFIXES, "triples")
    try:
        entries = _file_entries(path, suffix, TRIPLE_FIELDS)
    except _Unreadable as err:
        _raise_unreadable(str(path), err)
    return _validate_triple_entries(
        entries, str(path), mode, require_positive, allowed_extra_fields, from_text=suffix == ".csv"
    )


def write_triples(records: Iterable[dict], path: str | Path) -> Path:
    """Write triples as ``.json`` (an array, one record per line), ``.jsonl`` or ``.csv``.

    UTF-8, non-ASCII text kept as is; parent folders are created. Extra fields are written too (as
    further CSV columns). Returns the path.
    """
    path = Path(path)
    suffix = _suffix(path, TRIPLE_SUFFIXES, "triples")
    records = _records_for_writing(records, TRIPLE_FIELDS, "triples")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        _write_csv(records, path, TRIPLE_FIELDS)
    else:
        _write_json_records(records, path, array=suffix == ".json")
    return path


def _validate_triple_entries(
    entries: list[_Entry],
    source: str,
    mode: str,
    require_positive: bool,
    allowed_extra_fields: Iterable[str],
    from_text: bool,
) -> tuple[list[dict], ValidationReport]:
    found = _Found(source, entries)
    allowed = tuple(allowed_extra_fields)
    normalised: dict[int, dict] = {}
    for i, entry in enumerate(entries):
        if found.ok(i):
            record = _check_triple(entry.value, allowed, from_text, found, i)
            if record is not None:
                normalised[i] = record
    pairs = {i: ((r["query"], r["passage"]), r["score"]) for i, r in normalised.items()}
    _check_pairs(pairs, found, "query and passage", repeat_field="passage", score_field="score")
    if require_positive:
        _check_has_positive(normalised, found)
    kept = [record for i, record in normalised.items() if found.ok(i)]
    return _finish(found.report(), kept, mode)


def _check_triple(value: Any, allowed: tuple[str, ...], from_text: bool, found: _Found, i: int) -> dict | None:
    """The normalised triple, or None after adding its problems to ``found``."""
    if not isinstance(value, dict):
        found.add(
            i,
            "not_an_object",
            f'record is {_kind(value)}, not an object; write it as {{"query": ..., "passage": ..., "score": ...}}',
        )
        return None
    issues: list[tuple[str, str, str]] = []  # (reason, message, field)
    for name in TRIPLE_FIELDS:
        if name not in value:
            issues.append(
                ("missing_field", f"field {name!r} is missing; every record needs query, passage and score", name)
            )
    issues += _extra_field_issues(value, TRIPLE_FIELDS, allowed, "triples")
    record: dict[str, Any] = {}
    for name in ("query", "passage"):
        if name in value:
            record[name], issue = _check_text(value[name], name)
            if issue:
                issues.append((*issue, name))
    if "score" in value:
        record["score"], issue = _check_score(value["score"], from_text)
        if issue:
            issues.append((*issue, "score"))
    for reason, message, name in issues:
        found.add(i, reason, message, name)
    if issues:
        return None
    record.update((name, value[name]) for name in value if name in allowed)
    return record


def _extra_field_issues(
    value: dict, known: tuple[str, ...], allowed: tuple[str, ...], what: str
) -> list[tuple[str, str, str]]:
    return [
        (
            "extra_field",
            f"field {name!r} is not part of the {what} format ({', '.join(known)}); "
            f"remove it or pass allowed_extra_fields=({name!r},)",
            str(name),
        )
        for name in value
        if name not in known and name not in allowed
    ]


def _check_pairs(
    labelled: dict[int, tuple[Any, float]], found: _Found, what: str, repeat_field: str, score_field: str
) -> None:
    """The same key (e.g. a (query, passage) pair) twice: later repeats with the same score are
    ``duplicate_pair`` (the first is kept); different scores make every record of the key
    ``conflicting_labels``, since we can't tell which label is right.

    ``labelled[i] = (key, score)``; ``what`` names the key in messages ("query and passage").
    """
    by_key: dict[Any, list[int]] = collections.defaultdict(list)
    for i, (key, _) in labelled.items():
        by_key[key].append(i)
    locate = found.entries
    for indices in by_key.values():
        if len(indices) < 2:
            continue
        if len({labelled[i][1] for i in indices}) > 1:
            listing = ", ".join(f"{locate[j].location}: {_format_number(labelled[j][1])}" for j in indices[:5]) + (
                ", ..." if len(indices) > 5 else ""
            )
            for i in indices:
                found.add(
                    i,
                    "conflicting_labels",
                    f"the same {what} have different scores ({listing}); keep one with the right score",
                    score_field,
                )
        else:
            for i in indices[1:]:
                found.add(
                    i,
                    "duplicate_pair",
                    f"the same {what} as {locate[indices[0]].location}; remove the repeat",
                    repeat_field,
                )


def _check_has_positive(normalised: dict[int, dict], found: _Found) -> None:
    """Each query's valid records must include one with score >= 0.5."""
    by_query: dict[str, list[int]] = collections.defaultdict(list)
    for i, record in normalised.items():
        if found.ok(i):
            by_query[record["query"]].append(i)
    for query, indices in by_query.items():
        if not any(normalised[i]["score"] >= POSITIVE_THRESHOLD for i in indices):
            for i in indices:
                found.add(
                    i,
                    "no_positive",
                    f"query {_preview(query)} has no valid record with score >= {POSITIVE_THRESHOLD}; "
                    "add a relevant passage (score 1) or pass require_positive=False",
                    "query",
                )


# --------------------------------------------------------------------------------------------------
# Grouped: {"query": str, "pos": [str, ...], "neg": [str, ...]}
# --------------------------------------------------------------------------------------------------


def validate_grouped(
    records: Iterable[dict],
    source: str = IN_MEMORY,
    mode: str = "strict",
    allowed_extra_fields: Iterable[str] = (),
    locations: Sequence[str] | None = None,
) -> tuple[list[dict], ValidationReport]:
    """Check grouped records and return them normalised, with a report.

    Records become ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` (text stripped; a missing
    ``neg`` becomes ``[]``) plus the fields named in ``allowed_extra_fields``. Problems: not an object,
    a missing (``query``, ``pos``) or extra field, a query that is not non-empty text, ``pos``/``neg``
    not a list of non-empty strings (the element is named, e.g. ``pos[2]``), an empty ``pos``
    (``no_positive``), a passage twice in one list (``duplicate_pair``) or in both lists
    (``conflicting_labels``), and the same query in two records (``duplicate_pair``: merge them).
    Modes as in :func:`validate_triples`.
    """
    _check_mode(mode)
    entries = _entries_from_records(records, locations)
    return _validate_grouped_entries(entries, source, mode, allowed_extra_fields)


def read_grouped(
    path: str | Path, mode: str = "strict", allowed_extra_fields: Iterable[str] = ()
) -> tuple[list[dict], ValidationReport]:
    """Read and validate a grouped file: ``.json`` (array) or ``.jsonl``. See :func:`validate_grouped`."""
    _check_mode(mode)
    path = Path(path)
    suffix = _suffix(path, GROUPED_SUFFIXES, "grouped")
    try:
        entries = _file_entries(path, suffix, GROUPED_FIELDS)
    except _Unreadable as err:
        _raise_unreadable(str(path), err)
    return _validate_grouped_entries(entries, str(path), mode, allowed_extra_fields)


def write_grouped(records: Iterable[dict], path: str | Path) -> Path:
    """Write grouped records as ``.json`` (an array, one record per line) or ``.jsonl``; UTF-8."""
    path = Path(path)
    suffix = _suffix(path, GROUPED_SUFFIXES, "grouped")
    records = _records_for_writing(records, ("query", "pos"), "grouped")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json_records(records, path, array=suffix == ".json")
    return path


def _validate_grouped_entries(
    entries: list[_Entry], source: str, mode: str, allowed_extra_fields: Iterable[str]
) -> tuple[list[dict], ValidationReport]:
    found = _Found(source, entries)
    allowed = tuple(allowed_extra_fields)
    normalised: dict[int, dict] = {}
    for i, entry in enumerate(entries):
        if found.ok(i):
            record = _check_group(entry.value, allowed, found, i)
            if record is not None:
                normalised[i] = record
    first_of: dict[str, int] = {}
    for i, record in normalised.items():
        first = first_of.setdefault(record["query"], i)
        if first != i:
            found.add(
                i,
                "duplicate_pair",
                f"the same query as {entries[first].location}; merge the two records into one "
                "(join their pos and neg lists)",
                "query",
            )
    kept = [record for i, record in normalised.items() if found.ok(i)]
    return _finish(found.report(), kept, mode)


def _check_group(value: Any, allowed: tuple[str, ...], found: _Found, i: int) -> dict | None:
    """The normalised grouped record, or None after adding its problems to ``found``."""
    if not isinstance(value, dict):
        found.add(
            i,
            "not_an_object",
            f'record is {_kind(value)}, not an object; write it as {{"query": ..., "pos": [...], "neg": [...]}}',
        )
        return None
    issues: list[tuple[str, str, str]] = []
    for name in ("query", "pos"):
        if name not in value:
            issues.append(
                ("missing_field", f"field {name!r} is missing; every record needs query and pos (and neg)", name)
            )
    issues += _extra_field_issues(value, GROUPED_FIELDS, allowed, "grouped")
    query = None
    if "query" in value:
        query, issue = _check_text(value["query"], "query")
        if issue:
            issues.append((*issue, "query"))
    pos = _check_passage_list(value["pos"], "pos", issues) if "pos" in value else None
    neg = _check_passage_list(value["neg"], "neg", issues) if "neg" in value else []
    if pos == []:
        issues.append(("no_positive", "field 'pos' is empty; every query needs at least one relevant passage", "pos"))
    if pos and neg:
        where_pos = {text: k for k, text in enumerate(pos)}
        for j, text in enumerate(neg):
            if text in where_pos:
                issues.append(
                    (
                        "conflicting_labels",
                        f"neg[{j}] is also pos[{where_pos[text]}]; a passage can't be both relevant and not, "
                        "remove it from one list",
                        f"neg[{j}]",
                    )
                )
    for reason, message, name in issues:
        found.add(i, reason, message, name)
    if issues:
        return None
    record = {"query": query, "pos": pos, "neg": neg}
    record.update((name, value[name]) for name in value if name in allowed)
    return record


def _check_passage_list(value: Any, name: str, issues: list) -> list[str] | None:
    """The stripped passages, or None after appending the list's problems to ``issues``."""
    if not isinstance(value, (list, tuple)):
        issues.append(
            ("wrong_type", f'field {name!r} is {_kind(value)}, not a list; write it as ["passage", ...]', name)
        )
        return None
    texts: list[str] = []
    seen: dict[str, int] = {}
    n_issues = len(issues)
    for j, item in enumerate(value):
        label = f"{name}[{j}]"
        text, issue = _check_text(item, label)
        if issue:
            issues.append((*issue, label))
        elif text in seen:
            issues.append(("duplicate_pair", f"field {label!r} repeats {name}[{seen[text]}]; remove the repeat", label))
        else:
            seen[text] = j
            texts.append(text)
    return texts if len(issues) == n_issues else None


# --------------------------------------------------------------------------------------------------
# BEIR folders: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
# --------------------------------------------------------------------------------------------------


def read_beir(
    folder: str | Path, split: str = "test", mode: str = "strict"
) -> tuple[RetrievalDataset, ValidationReport]:
    """Read and validate a BEIR folder for one split.

    The dataset holds the whole corpus (text = the ``text`` field; a non-empty ``title`` goes to
    ``doc_meta[id]["title"]``, other fields to ``doc_meta[id]`` too) and only the queries that have a
    positive (grade > 0) in ``qrels/<split>.tsv``; the others are simply not in this split.

    Problems: lines that are not UTF-8, JSON or objects; ``_id``/``text`` missing or not strings; empty
    text; the same ``_id`` twice (``duplicate_id``: the first is kept); qrels rows without three
    tab-separated columns or with a non-numeric score (``invalid_row``), naming an unknown query or
    document (``unknown_query_id``/``unknown_doc_id``), repeated (``duplicate_pair``) or repeated with
    another grade (``conflicting_labels``). The report counts the records of all three files: a query
    outside the split counts as kept (it is valid), though the dataset does not hold it.

    Raises FileNotFoundError naming the missing file (for a missing split: the splits present).
    """
    _check_mode(mode)
    folder = Path(folder)
    corpus_path, queries_path, qrels_path = _beir_paths(folder, split)

    doc_entries = _jsonl_entries(corpus_path)
    doc_found = _Found(str(corpus_path), doc_entries)
    corpus, doc_meta = _beir_items(doc_entries, doc_found, "document")

    query_entries = _jsonl_entries(queries_path)
    query_found = _Found(str(queries_path), query_entries)
    queries, query_meta = _beir_items(query_entries, query_found, "query")

    row_entries = _qrels_entries(qrels_path)
    row_found = _Found(str(qrels_path), row_entries)
    qrels = _beir_qrels(row_entries, row_found, queries, corpus)

    in_split = [qid for qid in queries if any(grade > 0 for grade in qrels.get(qid, {}).values())]
    dataset = RetrievalDataset(
        corpus=corpus,
        queries={qid: queries[qid] for qid in in_split},
        qrels={qid: qrels[qid] for qid in in_split},
        doc_meta=doc_meta,
        query_meta={qid: query_meta[qid] for qid in in_split if qid in query_meta},
        name=folder.name,
    )
    report = _merge_reports(str(folder), [doc_found.report(), query_found.report(), row_found.report()])
    if mode == "strict" and report.problems:
        raise DataValidationError(report)
    return dataset, report


def write_beir(ds: RetrievalDataset, folder: str | Path, split: str = "test") -> Path:
    """Write ``ds`` as a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    ``doc_meta["title"]`` becomes the ``title`` field; other metadata is written as further fields (and
    read back into the metadata by :func:`read_beir`). To put several splits in one folder, call this
    once per split: ``queries.jsonl`` keeps the queries already there (a query of ``ds`` replaces the one
    with its id), the corpus is rewritten (splits made by :func:`split_dataset` share it), and other
    splits' qrels files are left alone. Returns the folder.
    """
    if not split or split != split.strip() or any(sep in split for sep in "/\\"):
        raise ValueError(f"split must be a plain name such as 'train' or 'test', got {split!r}")
    missing = [(q, d) for q in ds.queries for d in ds.qrels.get(q, {}) if d not in ds.corpus]
    if missing:
        raise ValueError(f"qrels name documents that are not in the corpus: {missing[:5]}; fix the dataset first")
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [_beir_row(doc_id, text, ds.doc_meta.get(doc_id, {}), title=True) for doc_id, text in ds.corpus.items()]
    _write_json_records(docs, folder / "corpus.jsonl", array=False)
    queries = [_beir_row(qid, text, ds.query_meta.get(qid, {}), title=False) for qid, text in ds.queries.items()]
    _write_json_records(_merged_by_id(folder / "queries.jsonl", queries), folder / "queries.jsonl", array=False)
    lines = ["\t".join(BEIR_QRELS_HEADER)]
    lines += [
        f"{qid}\t{doc_id}\t{_format_number(grade)}"
        for qid in ds.queries
        for doc_id, grade in ds.qrels.get(qid, {}).items()
    ]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return folder


def _beir_paths(folder: Path, split: str) -> tuple[Path, Path, Path]:
    layout = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; {layout}")
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; {layout}")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        present = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise FileNotFoundError(
            f"{qrels_path} is missing, so there is no {split!r} split; "
            f"splits present: {', '.join(present) if present else 'none (no qrels/*.tsv)'}"
        )
    return corpus_path, queries_path, qrels_path


def _beir_items(entries: list[_Entry], found: _Found, what: str) -> tuple[dict[str, str], dict[str, dict]]:
    """``{id: text}`` and ``{id: metadata}`` of the valid corpus or queries lines."""
    texts: dict[str, str] = {}
    meta: dict[str, dict] = {}
    first_at: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not found.ok(i):
            continue
        value = entry.value
        if not isinstance(value, dict):
            found.add(
                i, "not_an_object", f'line is {_kind(value)}, not an object; write {{"_id": "...", "text": "..."}}'
            )
            continue
        issues = _beir_item_issues(value, what)
        for reason, message, name in issues:
            found.add(i, reason, message, name)
        if issues:
            continue
        item_id = value["_id"].strip()
        if item_id in first_at:
            found.add(
                i,
                "duplicate_id",
                f"_id {item_id!r} is also at {entries[first_at[item_id]].location}; give each {what} its own id "
                "or remove the repeat",
                "_id",
            )
            continue
        first_at[item_id] = i
        texts[item_id] = value["text"].strip()
        extra = {key: val for key, val in value.items() if key not in ("_id", "title", "text")}
        title = (value.get("title") or "").strip()
        if title or extra:
            meta[item_id] = ({"title": title} if title else {}) | extra
    return texts, meta


def _beir_item_issues(value: dict, what: str) -> list[tuple[str, str, str]]:
    issues = []
    for name in ("_id", "text"):
        if name not in value:
            issues.append(("missing_field", f"field {name!r} is missing; every {what} needs _id and text", name))
        elif not isinstance(value[name], str):
            issues.append(("wrong_type", f"field {name!r} is {_kind(value[name])}; write it as a JSON string", name))
    title = value.get("title")
    if title is not None and not isinstance(title, str):
        issues.append(
            ("wrong_type", f"field 'title' is {_kind(title)}; write it as a JSON string or leave it out", "title")
        )
    if issues:
        return issues
    if not value["_id"].strip():
        issues.append(("empty_text", f"field '_id' is empty; give every {what} an id", "_id"))
    if not value["text"].strip() and (what == "query" or not (title or "").strip()):
        issues.append(("empty_text", f"field 'text' is empty; write the {what}'s text or remove the line", "text"))
    return issues


def _qrels_entries(path: Path) -> list[_Entry]:
    """One entry per data row of a qrels TSV (cells stripped); the header line is skipped."""
    entries = []
    first = True
    for line in _read_lines(path):
        location = f"line {line.number}"
        if line.problem is not None:
            entries.append(_Entry(location, problem=line.problem))
            continue
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        cells = [cell.strip() for cell in text.split("\t")]
        is_header = first and (
            cells[0].lower() in ("query-id", "query_id", "qid") or (len(cells) == 3 and _parse_number(cells[2]) is None)
        )
        first = False
        if not is_header:
            entries.append(_Entry(location, cells))
    return entries


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _beir_qrels(
    entries: list[_Entry], found: _Found, queries: dict[str, str], corpus: dict[str, str]
) -> dict[str, dict[str, float]]:
    """``qrels[qid][doc_id] = grade`` from the valid rows."""
    rows: dict[int, tuple[tuple[str, str], float]] = {}
    layout = "qrels rows are query-id<TAB>corpus-id<TAB>score"
    for i, entry in enumerate(entries):
        if not found.ok(i):
            continue
        cells = entry.value
        if len(cells) != 3:
            found.add(i, "invalid_row", f"row has {len(cells)} tab-separated columns, not 3; {layout}")
            continue
        qid, doc_id, raw = cells
        grade = _parse_number(raw)
        if not qid or not doc_id:
            found.add(i, "invalid_row", f"row has an empty id; {layout}")
        elif grade is None:
            found.add(
                i, "invalid_row", f"score {raw!r} is not a number; write a grade (0, 1, 2, ...) or a float", "score"
            )
        else:
            if qid not in queries:
                found.add(
                    i,
                    "unknown_query_id",
                    f"query-id {qid!r} is not in queries.jsonl (or its line there has a problem); "
                    "add the query or remove the row",
                    "query-id",
                )
            if doc_id not in corpus:
                found.add(
                    i,
                    "unknown_doc_id",
                    f"corpus-id {doc_id!r} is not in corpus.jsonl (or its line there has a problem); "
                    "add the document or remove the row",
                    "corpus-id",
                )
            if found.ok(i):
                rows[i] = ((qid, doc_id), grade)
    _check_pairs(rows, found, "query-id and corpus-id", repeat_field="corpus-id", score_field="score")
    qrels: dict[str, dict[str, float]] = {}
    for i, ((qid, doc_id), grade) in rows.items():
        if found.ok(i):
            qrels.setdefault(qid, {})[doc_id] = grade
    return qrels


def _merge_reports(source: str, reports: list[ValidationReport]) -> ValidationReport:
    return ValidationReport(
        source=source,
        n_input=sum(r.n_input for r in reports),
        n_kept=sum(r.n_kept for r in reports),
        dropped=sum((r.dropped for r in reports), collections.Counter()),
        problems=[p for r in reports for p in r.problems],
    )


def _beir_row(item_id: str, text: str, meta: dict, title: bool) -> dict:
    row: dict[str, Any] = {"_id": item_id}
    if title or "title" in meta:
        row["title"] = meta.get("title") or ""
    row["text"] = text
    row.update((key, val) for key, val in meta.items() if key not in ("_id", "title", "text"))
    return row


def _merged_by_id(path: Path, rows: list[dict]) -> list[dict]:
    """The rows already in a JSONL file, each replaced by the row of ``rows`` with its ``_id``, then the
    remaining ``rows``. Lines that are not JSON objects with an ``_id`` are not carried over."""
    new = {row["_id"]: row for row in rows}
    merged = []
    seen: set[str] = set()
    if path.is_file():
        for line in path.read_bytes().splitlines():
            try:
                old = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(old, dict) and isinstance(old.get("_id"), str) and old["_id"] not in seen:
                seen.add(old["_id"])
                merged.append(new.pop(old["_id"], old))
    return merged + list(new.values())


# --------------------------------------------------------------------------------------------------
# Conversions between the formats (they expect validated records)
# --------------------------------------------------------------------------------------------------


def triples_to_grouped(records: Iterable[dict]) -> list[dict]:
    """Group triples by query (first-seen order): score >= 0.5 goes to ``pos``, below to ``neg``.

    Extra fields of the triples are not carried over (grouped records have no per-passage fields).
    """
    groups: dict[str, dict] = {}
    for record in records:
        query = record["query"].strip()
        group = groups.setdefault(query, {"query": query, "pos": [], "neg": []})
        side = "pos" if float(record["score"]) >= POSITIVE_THRESHOLD else "neg"
        group[side].append(record["passage"].strip())
    return list(groups.values())


def grouped_to_triples(records: Iterable[dict]) -> list[dict]:
    """One triple per passage: ``pos`` -> score 1.0, ``neg`` -> score 0.0, in record order."""
    triples = []
    for record in records:
        query = record["query"].strip()
        triples += [{"query": query, "passage": p.strip(), "score": 1.0} for p in record["pos"]]
        triples += [{"query": query, "passage": p.strip(), "score": 0.0} for p in record.get("neg", [])]
    return triples


def _text_id(prefix: str, text: str, table: dict[str, str]) -> str:
    """A stable id from the text (``prefix-`` + 12 hex digits of its SHA-1), registered in ``table``."""
    text_id = f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"
    if table.setdefault(text_id, text) != text:
        raise ValueError(
            f"two different texts hash to the id {text_id!r}: {_preview(table[text_id])} and {_preview(text)}"
        )
    return text_id


def triples_to_dataset(records: Iterable[dict], name: str = "") -> RetrievalDataset:
    """A dataset from triples, with ids derived from the text (``q-``/``d-`` + SHA-1[:12]), so the same
    text always gets the same id. ``qrels`` hold every passage seen with a query, with its score
    (negatives stay in as 0.0); the first record of a repeated pair wins."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    for record in records:
        qid = _text_id("q", record["query"].strip(), queries)
        doc_id = _text_id("d", record["passage"].strip(), corpus)
        qrels.setdefault(qid, {}).setdefault(doc_id, float(record["score"]))
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=name)


def _labelled(
    ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None
) -> Iterator[tuple[str, list[tuple[str, float]], list[str]]]:
    """Per query of ``ds``: its text, its positives as (text, grade) and its negatives' texts.

    Negatives are doc ids (repeats skipped); ids for queries not in ``ds`` are ignored, so negatives
    mined for a whole dataset work on its splits. A negative that is also a positive is an error.
    """
    negatives = negatives or {}

    def text_of(doc_id: str, qid: str) -> str:
        if doc_id not in ds.corpus:
            raise KeyError(f"doc id {doc_id!r} (for query {qid!r}) is not in the corpus")
        return ds.corpus[doc_id].strip()

    for qid, query in ds.queries.items():
        grades = ds.qrels.get(qid, {})
        positive_ids = [doc_id for doc_id, grade in grades.items() if grade > 0]
        positives = [(text_of(doc_id, qid), float(grades[doc_id])) for doc_id in positive_ids]
        negative_texts = []
        for doc_id in dict.fromkeys(negatives.get(qid, ())):
            if doc_id in positive_ids:
                raise ValueError(
                    f"doc {doc_id!r} is a positive of query {qid!r} and also among its negatives; "
                    "remove it from the negatives"
                )
            negative_texts.append(text_of(doc_id, qid))
        yield query.strip(), positives, negative_texts


def dataset_to_triples(ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
    """Triples from a dataset: each positive (qrels grade > 0) with score 1.0, or its grade when that is
    in (0, 1]; then each negative doc id in ``negatives[qid]`` with score 0.0. Without ``negatives``,
    only positives (qrels grades of 0 are not turned into negatives)."""
    triples = []
    for query, positives, negative_texts in _labelled(ds, negatives):
        triples += [{"query": query, "passage": text, "score": min(grade, 1.0)} for text, grade in positives]
        triples += [{"query": query, "passage": text, "score": 0.0} for text in negative_texts]
    return triples


def dataset_to_grouped(ds: RetrievalDataset, negatives: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
    """Grouped records from a dataset: ``pos`` = texts of the positives (grade > 0), ``neg`` = texts of
    ``negatives[qid]``. Queries with neither are left out."""
    return [
        {"query": query, "pos": [text for text, _ in positives], "neg": negative_texts}
        for query, positives, negative_texts in _labelled(ds, negatives)
        if positives or negative_texts
    ]


# --------------------------------------------------------------------------------------------------
# Splits without leakage
# --------------------------------------------------------------------------------------------------


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
    components = _components(len(qids), links.values())
    sides = _assign_components([len(c) for c in components], weights, seed, group_key)
    members: list[list[int]] = [[] for _ in names]
    for component, side in zip(components, sides, strict=True):
        members[side] += component
    return {
        name: ds.subset([qids[n] for n in sorted(members[k])], name=f"{ds.name}-{name}" if ds.name else name)
        for k, name in enumerate(names)
    }


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
    components = _components(len(node_of), links.values())
    sides = _assign_components([len(c) for c in components], weights, seed, group_key)
    side_of = {n: side for component, side in zip(components, sides, strict=True) for n in component}
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


def _assign_components(sizes: list[int], weights: list[float], seed: int, group_key: str | None) -> list[int]:
    """The split index of each component: shuffled with ``seed``, then largest first, each to the split
    furthest below its target size; the last components go to splits still empty."""
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
    return sides


# --------------------------------------------------------------------------------------------------
# Leakage checks
# --------------------------------------------------------------------------------------------------


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

    Each side is a :class:`RetrievalDataset` (positives: ``corpus[doc]`` with qrels grade > 0), a list
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
