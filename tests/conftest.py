"""Shared fixtures. Every test runs offline and writes artifacts to a temporary folder, never the repo's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline for the whole test session: nothing may reach for the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "artifacts"
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(root))
    yield root


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, hidden 32) with a word-piece tokenizer, saved like a hub model."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = "the a of to and is what how building permit law contract cost tax house roof water deduction".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz?.,")
    (folder / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab={tok: i for i, tok in enumerate(vocab)})  # transformers 5: `vocab=`
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=128, num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
