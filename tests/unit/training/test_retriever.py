"""Fine-tuning the embedding model (rerank_utils.training.retriever): a tiny random BERT on a synthetic corpus."""

from __future__ import annotations

import json

import pytest

from rerank_utils.data.records import RetrievalDataset, data_fingerprint
from rerank_utils.evaluation.reports import strongest_verdict
from rerank_utils.training.mining import MiningConfig
from rerank_utils.training.retriever import (
    FACTS_FILE,
    RetrieverRecipe,
    fine_tune_retriever,
    load_or_train_retriever,
    saved_retriever_matches,
    training_triples,
)

TEXTS = [
    "the tax law deduction", "a house roof cost", "water permit building", "contract law cost", "the roof water",
    "a building permit law", "tax deduction house", "the contract house cost", "water tax law", "building roof permit",
]


def dataset(offset: int = 0, name: str = "syn") -> RetrievalDataset:
    corpus = {f"d{i}": t for i, t in enumerate(TEXTS)}
    queries = {f"q{i}": f"what is {TEXTS[(i + offset) % len(TEXTS)].split()[-1]}" for i in range(6)}  # one word of it
    qrels = {f"q{i}": {f"d{(i + offset) % len(TEXTS)}": 1} for i in range(6)}
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=name)


RECIPE = RetrieverRecipe(MiningConfig(strategy="dense", num_negatives=1, range_max=5), epochs=2, batch_size=4, max_length=32)


def test_triples_pair_each_positive_with_a_mined_negative():
    ds = dataset()
    cols = training_triples(ds, {"q0": ["d3"], "q1": ["d4"]})
    assert len(cols["anchor"]) == 6  # every query with a positive trains
    assert cols["negative"][0] == TEXTS[3] and cols["positive"][0] == TEXTS[0]
    for a, p, n in zip(cols["anchor"], cols["positive"], cols["negative"]):
        assert p != n  # a fallback negative is never the query's positive


def test_triples_refuse_a_split_without_positives():
    ds = RetrievalDataset(corpus={"d": "x"}, queries={"q": "y"}, qrels={"q": {"d": 0}}, name="empty")
    with pytest.raises(ValueError, match="empty: no query has a relevant passage"):
        training_triples(ds, {})


def test_recipe_validation_names_the_field():
    with pytest.raises(ValueError, match="RetrieverRecipe.epochs"):
        RetrieverRecipe(epochs=0).validate()
    with pytest.raises(ValueError, match="learning_rate"):
        RetrieverRecipe(learning_rate=0).validate()
    assert RetrieverRecipe.from_dict(RECIPE.to_dict()) == RECIPE
    with pytest.raises(ValueError, match="unknown keys"):
        RetrieverRecipe.from_dict({"epoch": 1})


def test_fingerprint_sees_other_queries_of_the_same_size():
    assert data_fingerprint(dataset()) == data_fingerprint(dataset())
    assert data_fingerprint(dataset(0)) != data_fingerprint(dataset(3))  # same size, other queries
    assert len(dataset(0)) == len(dataset(3))


def test_fine_tune_validates_each_epoch_keeps_the_best_and_is_reused_only_on_the_same_data(tiny_bert_dir, tmp_path):
    train, val = dataset(0, "train"), dataset(5, "val")
    out = tmp_path / "retriever"
    run = fine_tune_retriever(train, val, out, RECIPE, base_model=str(tiny_bert_dir), device="cpu")
    facts = json.loads((out / FACTS_FILE).read_text())
    assert [r["epoch"] for r in facts["validation_by_epoch"]] == [1.0, 2.0]
    assert facts["best_validation_ndcg@10"] == max([facts["base_validation_ndcg@10"]] + [r["val ndcg@10"] for r in facts["validation_by_epoch"]])
    assert facts["best_epoch"] in (0.0, 1.0, 2.0) and facts["triples"] == 6
    assert (out / "README.md").is_file()  # the model card
    assert (out / "modules.json").is_file()  # a plain sentence-transformers folder
    # the saved model is the best epoch's: re-scoring it on validation gives the recorded best
    from rerank_utils.models.loading import load_bi_encoder
    from rerank_utils.training.retriever import VAL_METRIC, _ir_evaluator

    reloaded = load_bi_encoder(str(out), device="cpu")
    assert _ir_evaluator(val, 4)(reloaded)[VAL_METRIC] == pytest.approx(facts["best_validation_ndcg@10"], abs=1e-6)
    assert run.best_metric == facts["best_validation_ndcg@10"]

    again = load_or_train_retriever(train, val, out, RECIPE, base_model=str(tiny_bert_dir), device="cpu")
    assert again.reused and again.facts == facts
    other = dataset(3, "train")  # same size, other queries: not the model's data
    assert not saved_retriever_matches(out, other, val, RECIPE, str(tiny_bert_dir))
    assert not saved_retriever_matches(out, train, val, RetrieverRecipe(RECIPE.mining, epochs=1, batch_size=4, max_length=32), str(tiny_bert_dir))
    retrained = load_or_train_retriever(other, val, out, RECIPE, base_model=str(tiny_bert_dir), device="cpu")
    assert not retrained.reused
    assert json.loads((out / FACTS_FILE).read_text())["data_fingerprint"] == data_fingerprint(other, val)


def test_the_base_models_validation_reads_its_corpus_embeddings_back_and_scores_the_same(tiny_bert_dir, tmp_path, monkeypatch):
    from rerank_utils.models.loading import load_bi_encoder
    from rerank_utils.paths import ENV_EMBEDDING_CACHE
    from rerank_utils.training.retriever import VAL_METRIC, _ir_evaluator, base_validation

    val = dataset(5, "val")
    model = load_bi_encoder(str(tiny_bert_dir), device="cpu")
    model.max_seq_length = 32
    uncached = _ir_evaluator(val, 4)(model)[VAL_METRIC]  # what fine_tune_retriever computed before the cache
    monkeypatch.setenv(ENV_EMBEDDING_CACHE, str(tmp_path / "cache"))
    encoded = []
    real = model.encode_document
    monkeypatch.setattr(model, "encode_document", lambda texts, **kw: encoded.append(len(texts)) or real(texts, **kw))
    first = base_validation(_ir_evaluator(val, 4), model)
    second = base_validation(_ir_evaluator(val, 4), model)
    assert first == second == uncached  # to the bit: the cached array is the evaluator's own
    assert encoded == [len(val.corpus)]  # the corpus once; the second time only the queries (encode_query)
    model.max_seq_length = 16  # another encoding of the same texts: not the cached one
    base_validation(_ir_evaluator(val, 4), model)
    assert encoded == [len(val.corpus)] * 2


def test_strongest_verdict_names_the_best_row_and_the_interval():
    from rerank_utils.evaluation.metrics import EvalResult
    from rerank_utils.evaluation.significance import compare

    def result(values):
        return EvalResult(("ndcg@10",), {"ndcg@10": sum(values) / len(values)}, {f"q{i}": {"ndcg@10": v} for i, v in enumerate(values)}, len(values))

    ft = result([0.5] * 20)
    better = result([0.9] * 20)
    same = result([0.4, 0.6] * 10)
    results = {"fine-tuned bi-encoder": ft, "ft + rr": better, "ft + same": same}
    comps = {"ft + rr vs fine-tuned bi-encoder": compare(ft, better), "ft + same vs fine-tuned bi-encoder": compare(ft, same)}
    v = strongest_verdict(results, comps, "ft + rr")
    assert v.startswith("strongest row: ft + rr (NDCG@10 0.900)") and "the reranker pays" in v
    assert "not distinguishable from zero" in strongest_verdict(results, comps, "ft + same")


def test_an_unrelated_folder_is_never_overwritten(tiny_bert_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds no earlier fine-tuned retriever"):
        fine_tune_retriever(dataset(0), dataset(5), folder, RECIPE, base_model=str(tiny_bert_dir), device="cpu")
    assert (folder / "notes.txt").read_text() == "keep me"


def test_retriever_learning_curve_trains_each_size_on_the_reranker_curves_queries(tiny_bert_dir, tmp_path):
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.training.experiments import retriever_learning_curve

    train = RetrievalDataset(corpus=dataset().corpus, queries={f"q{i}": f"what is {t.split()[-1]}" for i, t in enumerate(TEXTS)},
                             qrels={f"q{i}": {f"d{i}": 1} for i in range(len(TEXTS))}, name="train")
    val, test = dataset(5, "val"), dataset(2, "test")
    rows, retrievers = retriever_learning_curve(RECIPE, [4, 50], train, val, test, tmp_path, base_model=str(tiny_bert_dir),
                                                sample_seed=7, top_k=5, device="cpu")
    assert [r["train_queries"] for r in rows] == [4, 10] and set(retrievers) == {4, 10}  # 50: capped at the 10 queries
    facts4 = json.loads((tmp_path / "4q" / FACTS_FILE).read_text())
    # the 4-query point is trained on train.sample(4, seed=7): the very queries the reranker's curve samples
    assert facts4["data_fingerprint"] == data_fingerprint(train.sample(4, seed=7), val) and facts4["triples"] == 4
    for row in rows:  # each row's figure is its own retriever's test NDCG@10
        got = evaluate_run(retrievers[row["train_queries"]].search(test.queries, top_k=5), test.qrels, ["ndcg@10"])
        assert row["test NDCG@10 FT bi"] == pytest.approx(got.aggregate["ndcg@10"]) and row["train_s"] > 0
    again, _ = retriever_learning_curve(RECIPE, [4], train, val, test, tmp_path, base_model=str(tiny_bert_dir), sample_seed=7,
                                        top_k=5, device="cpu")
    assert again[0]["train_s"] == rows[0]["train_s"]  # reused from workdir/4q, not trained again
