""":class:`LabelStore`: labels and skips appended to JSONL files as they are given, so a crash or a full disk loses at
most the judgement being written (a torn last line is detected and reported), and a session resumes where it
stopped.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

from rerank_utils.data.files import _jsonl_entries
from rerank_utils.data.records import DataValidationError, _Found, _kind, _preview
from rerank_utils.data.triples import read_triples
from rerank_utils.labelling.candidates import Pair, _pair


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
    :class:`rerank_utils.data.records.DataValidationError` naming the file, line and field of each problem.

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
        records = self._read_labels() if self.path.exists() else []
        labels: dict[Pair, float] = {_pair(rec["query"], rec["passage"]): rec["score"] for rec in records}
        skips = self._read_skips() if self.skips_path.exists() else []
        self.labels, self.skipped = labels, dict.fromkeys(pair for pair in skips if pair not in labels)
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
        found = _Found(str(self.skips_path), _jsonl_entries(self.skips_path))
        pairs = []
        for i, value in found.each_ok():
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
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse, as the reader reports it
        return len(lines)
