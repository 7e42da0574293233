"""What a notebook records: :func:`start_recording` / :func:`record` write a notebook's results (numbers, tables,
figures) under ``artifacts/<profile>/records/``, which the smoke tests and later notebooks read back
(:func:`read_records`); :func:`environment_info` names the machine and the versions.
"""

from __future__ import annotations

import json
import math
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rerank_utils.paths import artifacts_dir


# --------------------------------------------------------------------------------------------- records
def _jsonable(value: Any) -> Any:
    """numpy / pandas / Path values as plain JSON; NaN and inf as ``None``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return _jsonable(value.to_dict(orient="records"))
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"record(): cannot store a value of type {type(value).__name__}; use numbers, text, lists or dicts")


class Recorder:
    """Collects a notebook's results in ``artifacts/<profile>/metrics/<notebook>.json``.

    Creating a recorder starts a fresh file for that notebook (a re-run replaces old results).
    Every call writes the file at once, so a notebook that fails half-way keeps what it recorded.
    """
    def __init__(self, notebook: str, profile: str):
        self.notebook = notebook
        self.profile = profile
        self.path = artifacts_dir(profile, "metrics") / f"{notebook}.json"
        self.figures_dir = artifacts_dir(profile, "figures")
        self.data: dict[str, Any] = {}
        self._write()

    def record(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` (numbers, text, lists, dicts, numpy values, DataFrames)."""
        if not isinstance(name, str) or not name:
            raise ValueError("record(): the name must be a non-empty string")
        self.data[name] = _jsonable(value)
        self._write()

    def figure(self, fig, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<notebook>__<name>.png`` and list it in the records."""
        path = self.figures_dir / f"{self.notebook}__{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        self.data.setdefault("_figures", {})[name] = str(path.relative_to(self.figures_dir.parent))
        self._write()
        return path

    def _write(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.path)


_CURRENT: Recorder | None = None


def start_recording(notebook: str, profile: str) -> Recorder:
    """Start (or restart) recording for ``notebook``; later :func:`record` calls go there."""
    global _CURRENT
    _CURRENT = Recorder(notebook, profile)
    return _CURRENT


def record(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` for the notebook that called :func:`start_recording`."""
    if _CURRENT is None:
        raise RuntimeError("record() before start_recording(notebook, profile): call that in the setup cell")
    _CURRENT.record(name, value)


def read_records(profile: str, notebook: str) -> dict[str, Any]:
    """What ``notebook`` recorded in its last run on ``profile`` (``FileNotFoundError`` if it never ran)."""
    path = artifacts_dir(profile, "metrics", create=False) / f"{notebook}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no records for {notebook} on profile {profile!r}: {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def environment_info(device: str | None = None) -> None:
    """Print the versions a notebook runs on and the device it will use (setup cell)."""
    info = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "sentence-transformers", "llama-index-core", "datasets", "bm25s", "rerank-finetune"):
        try:
            info[dist] = version(dist)
        except PackageNotFoundError:
            info[dist] = "not installed"
    try:
        import torch  # local, in a try: the environment report must not fail on a broken torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
        info["cpu threads"] = str(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        pass
    if device:
        info["device"] = device
    print("  ".join(f"{k} {v}" for k, v in info.items()))
