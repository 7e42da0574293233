"""The guide's triples ``{query, passage, score}``: validated (each problem named to the file, line and field; strict
or lenient), read and written. Notebook ``01_data_preparation``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Iterable, Sequence

from rerank_utils.data.files import _file_entries, _write_records
from rerank_utils.data.records import (
    IN_MEMORY,
    POSITIVE_THRESHOLD,
    TRIPLE_FIELDS,
    TRIPLE_SUFFIXES,
    ValidationReport,
    _check_mode,
    _check_score,
    _check_text,
    _entries_from_records,
    _Entry,
    _finish,
    _format_number,
    _Found,
    _kind,
    _preview,
)


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

    ``mode="strict"`` raises :class:`~rerank_utils.data.records.DataValidationError` listing every problem; ``mode="drop"`` drops
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

    A JSON array that cannot be parsed at all raises :class:`~rerank_utils.data.records.DataValidationError` in both modes.
    """
    _check_mode(mode)
    path = Path(path)
    suffix, entries = _file_entries(path, TRIPLE_SUFFIXES, "triples", TRIPLE_FIELDS)
    return _validate_triple_entries(
        entries, str(path), mode, require_positive, allowed_extra_fields, from_text=suffix == ".csv"
    )


def write_triples(records: Iterable[dict], path: str | Path) -> Path:
    """Write triples as ``.json`` (an array, one record per line), ``.jsonl`` or ``.csv``.

    UTF-8, non-ASCII text kept as is; parent folders are created. Extra fields are written too (as
    further CSV columns). Returns the path.
    """
    return _write_records(records, path, TRIPLE_SUFFIXES, "triples", TRIPLE_FIELDS)


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
    checked = {i: _check_triple(value, allowed, from_text, found, i) for i, value in found.each_ok()}
    normalised = {i: record for i, record in checked.items() if record is not None}
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
    issues = [  # (reason, message, field)
        ("missing_field", f"field {name!r} is missing; every record needs query, passage and score", name)
        for name in TRIPLE_FIELDS
        if name not in value
    ]
    issues += _extra_field_issues(value, TRIPLE_FIELDS, allowed, "triples")
    record: dict[str, Any] = {}
    for name in (name for name in TRIPLE_FIELDS if name in value):
        record[name], issue = _check_score(value[name], from_text) if name == "score" else _check_text(value[name], name)
        if issue:
            issues.append((*issue, name))
    if found.add_all(i, issues):
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
            listing = ", ".join(f"{locate[j].location}: {_format_number(labelled[j][1])}" for j in indices[:5])
            listing += ", ..." if len(indices) > 5 else ""
            message = f"the same {what} have different scores ({listing}); keep one with the right score"
            for i in indices:
                found.add(i, "conflicting_labels", message, score_field)
        else:
            message = f"the same {what} as {locate[indices[0]].location}; remove the repeat"
            for i in indices[1:]:
                found.add(i, "duplicate_pair", message, repeat_field)


def _check_has_positive(normalised: dict[int, dict], found: _Found) -> None:
    """Each query's valid records must include one with score >= 0.5."""
    by_query: dict[str, list[int]] = collections.defaultdict(list)
    for i, record in normalised.items():
        if found.ok(i):
            by_query[record["query"]].append(i)
    for query, indices in by_query.items():
        if not any(normalised[i]["score"] >= POSITIVE_THRESHOLD for i in indices):
            message = (f"query {_preview(query)} has no valid record with score >= {POSITIVE_THRESHOLD}; "
                       "add a relevant passage (score 1) or pass require_positive=False")
            for i in indices:
                found.add(i, "no_positive", message, "query")
