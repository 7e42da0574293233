"""Dev-extra modules in tests (tests/extras.py): a skip locally, a failure under CI."""

from __future__ import annotations

import pytest

from tests.extras import dev_extra


def test_a_missing_dev_extra_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module_xyz is in the dev extra"):
        dev_extra("no_such_module_xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_xyz is missing under CI"):
        dev_extra("no_such_module_xyz")
    assert dev_extra("json").dumps([1]) == "[1]"  # an installed module is simply imported
