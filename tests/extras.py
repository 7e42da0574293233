"""The dev extra's optional modules in tests: skipped where the extra is not installed, a failure under CI=true
(CI installs it, so a broken install there must fail, never pass quietly), as the Redis tests do for redis-server."""

from __future__ import annotations

import importlib
import os

import pytest


def dev_extra(name: str):
    """Import ``name`` (a dev-extra module); without it, skip the test, or fail when ``CI`` is set."""
    if os.environ.get("CI"):
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} is missing under CI ({err}): `make setup` installs the dev extra, pip install -e '.[dev]'")
    return pytest.importorskip(name, reason=f"{name} is in the dev extra: pip install -e '.[dev]'")
