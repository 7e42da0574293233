"""What ``/proc/cpuinfo`` says of this processor: its feature flags and its model name. Torch-free, so the notebook
runner's timings (which must not load torch) and the precision detection (:mod:`rerank_utils.models.precision`)
read it the same way.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = "/proc/cpuinfo"


def cpu_flags(cpuinfo: str | os.PathLike = CPUINFO) -> set[str]:
    """The processor's feature flags from ``/proc/cpuinfo`` (Linux); an empty set where there is no such file."""
    path = Path(cpuinfo)
    if not path.is_file():
        return set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_model_name(cpuinfo: str | os.PathLike = CPUINFO) -> str:
    """The ``model name`` line of ``/proc/cpuinfo``; ``platform.processor()`` (or the machine type) where there is none."""
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
