"""Model resolution: packaged default, local folders, hub ids offline (fast, clear errors)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
from rerank_utils.models.resolve import (
    ModelNotAvailableOffline,
    hub_reachable,
    model_kind,
    packaged_model_path,
    resolve_model,
)


def test_default_resolves_to_packaged_folder():
    path = Path(resolve_model())
    assert path == packaged_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    for alias in ("default", "packaged", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", None):
        assert Path(resolve_model(alias)) == path


def test_local_folder_resolves_to_itself(tiny_bert_dir):
    assert resolve_model(str(tiny_bert_dir)) == str(tiny_bert_dir.resolve())
    assert model_kind(str(tiny_bert_dir)) == "local"


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_folder_without_model_is_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json or modules.json"):
        resolve_model(str(tmp_path / "empty"))


@pytest.mark.parametrize("hub_id,profile", [("cross-encoder/ms-marco-MiniLM-L-6-v2", "gpu"), ("BAAI/bge-reranker-base", "zh")])
def test_hub_id_offline_fails_fast_naming_alternatives_and_profile(monkeypatch, hub_id, profile):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableOffline) as err:
        resolve_model(hub_id)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert hub_id in msg and f"`{profile}` profile" in msg
    assert "'default'" in msg and str(packaged_model_path()) in msg
    assert "HF_HUB_OFFLINE=1" in msg


def test_hub_id_without_network_fails_fast(monkeypatch):
    # No offline flag: the reachability probe itself must give up quickly (this machine has no route).
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused at once
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableOffline, match="cannot be reached"):
        resolve_model("some-org/some-model", timeout=2)
    assert time.perf_counter() - t0 < 5


def test_hub_reachable_false_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


def test_tiny_local_model_loads_as_cross_and_bi_encoder(tiny_bert_dir):
    ce = load_cross_encoder(str(tiny_bert_dir), max_length=32)
    scores = ce.predict([("what is a permit", "a building permit"), ("tax", "roof water")], show_progress_bar=False)
    assert scores.shape == (2,)
    bi = load_bi_encoder(str(tiny_bert_dir))
    emb = bi.encode(["building permit", "roof"], show_progress_bar=False)
    assert emb.shape == (2, 32)
