"""What ``/proc/cpuinfo`` says of this processor: its feature flags and its model name. Torch-free, so the notebook
runner's timings (which must not load torch) and the precision detection (:mod:`rerank_utils.models.precision`)
read it the same way.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = "/proc/cpuinfo"


def _field(cpuinfo: str | os.PathLike, name: str) -> str | None:
    """What follows the colon on the first line of ``cpuinfo`` that starts with ``name``; ``None`` without one (or the file)."""
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(name):
                return line.partition(":")[2]
    return None


def cpu_flags(cpuinfo: str | os.PathLike = CPUINFO) -> set[str]:
    """The processor's feature flags from ``/proc/cpuinfo`` (Linux); an empty set where there is no such file."""
    return set((_field(cpuinfo, "flags") or "").split())


def cpu_model_name(cpuinfo: str | os.PathLike = CPUINFO) -> str:
    """The ``model name`` line of ``/proc/cpuinfo``; ``platform.processor()`` (or the machine type) where there is none."""
    model = _field(cpuinfo, "model name")
    return model.strip() if model is not None else (platform.processor() or platform.machine())
