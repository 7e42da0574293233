"""Profiles and paths."""

from __future__ import annotations

import pytest

from rerank_utils.paths import ENV_ARTIFACTS, artifacts_dir, repo_root, resolve_path
from rerank_utils.tutorial.profiles import COMMON_PARAMETERS, PROFILES, get_profile


def test_every_profile_injects_the_common_parameters():
    for prof in PROFILES.values():
        for nb in prof.notebooks:
            params = prof.parameters_for(nb)
            assert set(COMMON_PARAMETERS) <= set(params), (prof.name, nb)
            assert params["profile"] == prof.name


def test_profiles_define_the_same_knobs():
    cpu = PROFILES["cpu"]
    for prof in PROFILES.values():
        assert set(prof.common) == set(cpu.common), prof.name
        assert prof.notebooks.keys() == cpu.notebooks.keys(), prof.name
        for nb, params in prof.notebooks.items():
            assert params.keys() == cpu.notebooks[nb].keys(), (prof.name, nb)


def test_smoke_is_smaller_than_cpu():
    smoke, cpu = PROFILES["smoke"], PROFILES["cpu"]
    assert smoke.common["max_queries"] == 40 and cpu.common["max_queries"] is None
    assert smoke.cell_timeout < cpu.cell_timeout


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose one of: cpu, smoke, gpu, zh"):
        get_profile("laptop")


def test_artifacts_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_ARTIFACTS, str(tmp_path / "art"))
    path = artifacts_dir("smoke", "metrics")
    assert path == tmp_path / "art" / "smoke" / "metrics" and path.is_dir()


def test_resolve_path_finds_repo_relative_files(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("pyproject.toml") == repo_root() / "pyproject.toml"


