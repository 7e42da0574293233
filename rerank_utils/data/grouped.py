"""The grouped format ``{query, positives, negatives}``: validated (each problem named to the file, line and field),
read and written. Notebook ``01_data_preparation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from rerank_utils.data.files import _file_entries, _write_records
from rerank_utils.data.records import (
    GROUPED_FIELDS,
    GROUPED_SUFFIXES,
    IN_MEMORY,
    ValidationReport,
    _check_mode,
    _check_text,
    _entries_from_records,
    _Entry,
    _finish,
    _Found,
    _kind,
)
from rerank_utils.data.triples import _extra_field_issues


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
    Modes as in :func:`~rerank_utils.data.triples.validate_triples`.
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
    _, entries = _file_entries(path, GROUPED_SUFFIXES, "grouped", GROUPED_FIELDS)
    return _validate_grouped_entries(entries, str(path), mode, allowed_extra_fields)


def write_grouped(records: Iterable[dict], path: str | Path) -> Path:
    """Write grouped records as ``.json`` (an array, one record per line) or ``.jsonl``; UTF-8."""
    return _write_records(records, path, GROUPED_SUFFIXES, "grouped", ("query", "pos"))


def _validate_grouped_entries(
    entries: list[_Entry], source: str, mode: str, allowed_extra_fields: Iterable[str]
) -> tuple[list[dict], ValidationReport]:
    found = _Found(source, entries)
    allowed = tuple(allowed_extra_fields)
    checked = {i: _check_group(value, allowed, found, i) for i, value in found.each_ok()}
    normalised = {i: record for i, record in checked.items() if record is not None}
    first_of: dict[str, int] = {}
    for i, record in normalised.items():
        first = first_of.setdefault(record["query"], i)
        if first != i:
            found.add(i, "duplicate_pair", f"the same query as {entries[first].location}; merge the two records into "
                      "one (join their pos and neg lists)", "query")
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
    issues = [
        ("missing_field", f"field {name!r} is missing; every record needs query and pos (and neg)", name)
        for name in ("query", "pos")
        if name not in value
    ]
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
        issues += [
            ("conflicting_labels", f"neg[{j}] is also pos[{where_pos[text]}]; a passage can't be both relevant and "
             "not, remove it from one list", f"neg[{j}]")
            for j, text in enumerate(neg)
            if text in where_pos
        ]
    if found.add_all(i, issues):
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
