"""The packaged MiniLM fine-tuned as a retriever on a slice of the FAQ: the saved folder is a first stage for the
package's DenseRetriever and for LlamaIndex's HuggingFaceEmbedding alike, and its best epoch is what was saved."""

from __future__ import annotations

import pytest

from rerank_utils.data.faq import load_faq
from rerank_utils.evaluation.metrics import run_agreement
from rerank_utils.integrations.llamaindex import (
    build_vector_index,
    local_embedding,
    retrieve_run,
)
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.mining import MiningConfig
from rerank_utils.training.retriever import (
    VAL_METRIC,
    RetrieverRecipe,
    _ir_evaluator,
    fine_tune_retriever,
)
from tests.faq_slices import faq_slice

pytestmark = pytest.mark.integration


def test_packaged_model_fine_tuned_as_retriever_serves_the_package_and_llamaindex(tmp_path):
    full = load_faq("en")
    qids = list(full.queries)
    full = faq_slice(full.subset(qids[:72]), documents=180)  # 72 queries' answers and 108 others
    train, val = full.subset(qids[:48], name="train"), full.subset(qids[48:72], name="val")
    recipe = RetrieverRecipe(MiningConfig("dense", num_negatives=1, range_max=10), epochs=1, batch_size=16, max_length=128)
    run = fine_tune_retriever(train, val, tmp_path / "retriever", recipe, device="cpu")
    f = run.facts
    assert f["best_validation_ndcg@10"] >= f["base_validation_ndcg@10"]  # never worse than the start on validation
    assert f["best_epoch"] in (0.0, 1.0) and f["triples"] >= 48
    assert 0.5 < f["base_validation_ndcg@10"] < 1.0  # the packaged model, really: it retrieves FAQ answers well
    # the saved folder scores validation as recorded
    from rerank_utils.models.loading import load_bi_encoder

    saved = load_bi_encoder(str(run.model_dir), device="cpu")
    assert _ir_evaluator(val, 16)(saved)[VAL_METRIC] == pytest.approx(f["best_validation_ndcg@10"], abs=1e-4)
    # and LlamaIndex's HuggingFaceEmbedding over the same folder retrieves what DenseRetriever retrieves
    ds = val
    li = retrieve_run(build_vector_index(ds, embed_model=local_embedding(str(run.model_dir), device="cpu")), ds.queries, top_k=10)
    ours = DenseRetriever(ds.corpus, saved).search(ds.queries, top_k=10)
    assert run_agreement(li, ours, k=10) > 0.95
