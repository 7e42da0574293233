"""Reading and writing record files: JSONL, a JSON array, CSV/TSV; every record keeps its file and line so a
problem is reported where it is (an unreadable file, a torn line, a bad cell).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NoReturn

from rerank_utils.data.records import (
    DataValidationError,
    Problem,
    ValidationReport,
    _as_record_list,
    _dumps,
    _Entry,
    _format_number,
    _kind,
)


def _suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ValueError(
            f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
            f"use one of {', '.join(allowed)}"
        )
    return suffix


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
                continue
            except json.JSONDecodeError as err:
                message = f"not valid JSON ({err.msg}, column {err.colno}); each line must hold one JSON object"
            except RecursionError:  # Python's parser gives up on nesting about 1,000 deep
                message = "JSON nested too deeply to parse; a record is one flat object of text fields"
            entries.append(_Entry(location, problem=Problem(source, location, "invalid_json", message)))
    return entries


class _Unreadable(Exception):
    """The whole file cannot be parsed (a broken JSON array, a CSV without header): nothing can be kept."""
    def __init__(self, problems: list[Problem], hint: str):
        super().__init__(hint)
        self.problems = problems
        self.hint = hint


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
    starts = list(itertools.accumulate((len(line.text) for line in lines[:-1]), initial=0))  # offset of each line

    def where(pos: int) -> tuple[int, int]:
        """(line, column) of a character offset, both 1-based."""
        n = bisect.bisect_right(starts, pos)
        return n, pos - starts[n - 1] + 1

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
            except RecursionError:
                fail(pos, "invalid_json", "JSON nested too deeply to parse; a record is one flat object of text fields")
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
        message = f"the file is empty; the first line must be the header {','.join(required)}"
        raise _Unreadable([Problem(source, "line 1", "missing_field", message)], "nothing to read")
    numbered.sort(key=lambda item: item[0])  # undecodable lines are noted as the reader passes them
    return [entry for _, entry in numbered]


def _file_entries(path: Path, allowed: tuple[str, ...], what: str, required: tuple[str, ...]) -> tuple[str, list[_Entry]]:
    """``(suffix, entries)`` of a record file. A file that cannot be parsed at all raises
    :class:`~rerank_utils.data.records.DataValidationError`, in either mode."""
    suffix = _suffix(path, allowed, what)
    try:
        if suffix == ".jsonl":
            return suffix, _jsonl_entries(path)
        if suffix == ".json":
            return suffix, _json_array_entries(path)
        return suffix, _csv_entries(path, required)
    except _Unreadable as err:
        report = ValidationReport(source=str(path), n_input=0, n_kept=0, problems=err.problems)
        raise DataValidationError(report, hint=err.hint) from None


def _cell(value: Any) -> str:
    """A value as a CSV cell: text as is, numbers as ``_format_number``, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _format_number(value)
    return _dumps(value)


def _write_records(records: Any, path: str | Path, allowed: tuple[str, ...], what: str, required: tuple[str, ...]) -> Path:
    """Write records as ``.json`` (an array, one record per line), ``.jsonl`` or ``.csv`` (header: ``required``,
    then any other field); parent folders are created. Returns the path."""
    path = Path(path)
    suffix = _suffix(path, allowed, what)
    records = _as_record_list(records)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"record {i} is {_kind(rec)}, not a {what} record (a dict)")
        missing = [name for name in required if name not in rec]
        if missing:
            raise ValueError(
                f"record {i} lacks {', '.join(map(repr, missing))}; {what} records need {', '.join(required)}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        _write_csv(records, path, required)
    else:
        _write_json_records(records, path, array=suffix == ".json")
    return path


def _write_json_records(records: list[dict], path: Path, array: bool) -> None:
    """JSON array (one record per line, so errors point at a line) or JSONL."""
    rows = [_dumps(rec) for rec in records]
    if array:
        text = "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"
    else:
        text = "".join(row + "\n" for row in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_csv(records: list[dict], path: Path, required: tuple[str, ...]) -> None:
    columns = list(dict.fromkeys([*required, *(name for rec in records for name in rec)]))  # first-seen order
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_cell(rec.get(name)) for name in columns])
