"""The corpus-embedding cache: a hit returns what the same computation wrote, any change of weights, texts or
settings is a miss, a broken file is recomputed, and nothing is written unless a folder is chosen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.paths import ENV_EMBEDDING_CACHE
from rerank_utils.retrieval.embedding_cache import cached_embeddings

CORPUS = {"d1": "how much is the building permit", "d2": "the roof water tax", "d3": "a contract of the house", "d4": "cost"}


class CountingEncoder(SentenceTransformer):
    """A real SentenceTransformer that counts its ``encode`` calls."""
    calls = 0

    def encode(self, *args, **kwargs):
        type(self).calls += 1
        return super().encode(*args, **kwargs)


@pytest.fixture
def encoder(tiny_bert_dir):
    CountingEncoder.calls = 0
    return CountingEncoder(str(tiny_bert_dir), device="cpu")


@pytest.fixture(autouse=True)
def _no_cache_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_EMBEDDING_CACHE, raising=False)


def test_second_retriever_reads_back_exactly_what_the_first_encoded(encoder, tmp_path):
    first = DenseRetriever(CORPUS, encoder, cache_dir=tmp_path)
    assert first.from_cache is False and CountingEncoder.calls == 1
    assert len(list(tmp_path.glob("*.npy"))) == 1 and not list(tmp_path.glob("*.tmp"))
    second = DenseRetriever(CORPUS, encoder, cache_dir=tmp_path)
    assert second.from_cache is True and CountingEncoder.calls == 1  # the corpus was not encoded again
    np.testing.assert_array_equal(second.doc_embeddings, first.doc_embeddings)
    fresh = DenseRetriever(CORPUS, encoder)  # no folder: computed, and bit for bit the same numbers
    assert fresh.from_cache is False and CountingEncoder.calls == 2
    np.testing.assert_array_equal(fresh.doc_embeddings, first.doc_embeddings)
    queries = {"q": "what does a building permit cost"}
    assert second.search(queries, top_k=4) == fresh.search(queries, top_k=4)


def test_changed_weights_texts_or_settings_are_misses(encoder, tmp_path):
    DenseRetriever(CORPUS, encoder, cache_dir=tmp_path)
    before = model_fingerprint(encoder)
    with torch.no_grad():
        next(encoder.parameters()).add_(1e-3)  # fine-tuned in place: same object, same path
    assert model_fingerprint(encoder) != before
    assert DenseRetriever(CORPUS, encoder, cache_dir=tmp_path).from_cache is False
    assert DenseRetriever({**CORPUS, "d4": "costs"}, encoder, cache_dir=tmp_path).from_cache is False
    assert DenseRetriever(CORPUS, encoder, cache_dir=tmp_path, normalize=False).from_cache is False
    encoder.max_seq_length = 8  # truncation changes the embeddings, though not the weights
    assert DenseRetriever(CORPUS, encoder, cache_dir=tmp_path).from_cache is False
    assert len(list(tmp_path.glob("*.npy"))) == 5


def test_environment_variable_chooses_the_folder_and_nothing_is_written_without_one(encoder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    DenseRetriever(CORPUS, encoder)
    assert not any(tmp_path.rglob("*.npy"))
    monkeypatch.setenv(ENV_EMBEDDING_CACHE, str(tmp_path / "cache"))
    DenseRetriever(CORPUS, encoder)
    assert DenseRetriever(CORPUS, encoder).from_cache is True
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_broken_file_is_recomputed_and_replaced(encoder, tmp_path):
    good = DenseRetriever(CORPUS, encoder, cache_dir=tmp_path).doc_embeddings
    (path,) = tmp_path.glob("*.npy")
    for broken in (b"not an array", None):
        if broken is None:  # a valid array of the wrong shape
            np.save(path, np.zeros((2, 3), dtype=np.float32))
        else:
            path.write_bytes(broken)
        again = DenseRetriever(CORPUS, encoder, cache_dir=tmp_path)
        assert again.from_cache is False
        np.testing.assert_array_equal(again.doc_embeddings, good)
        np.testing.assert_array_equal(np.load(path), good)


def test_encoder_without_weights_is_never_cached(tmp_path):
    class Fake:
        def encode(self, texts, **kwargs):
            return np.ones((len(texts), 3), dtype=np.float32)

    assert model_fingerprint(Fake()) is None
    emb, hit = cached_embeddings(Fake(), ["a", "b"], "x", lambda t: Fake().encode(t), cache_dir=tmp_path)
    assert emb.shape == (2, 3) and hit is False and not list(tmp_path.iterdir())
