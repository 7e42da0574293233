"""Pipelines (first stage, optionally a reranker) evaluated query by query with latency."""

from __future__ import annotations

import math

import pytest

from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.evaluation.pipelines import Pipeline, evaluate_pipeline
from rerank_utils.integrations.llamaindex import LlamaIndexPipeline


class FixedRetriever:
    """A fake first stage: the same ranked docs for any query, or a per-query list."""

    def __init__(self, ranked, per_query=None):
        self.ranked, self.per_query = ranked, per_query or {}

    def search(self, queries, top_k=100):
        out = {}
        for qid, text in queries.items():
            docs = self.per_query.get(text, self.ranked)[:top_k]
            out[qid] = {d: 1.0 - i / 100 for i, d in enumerate(docs)}
        return out


class GoldScorer:
    def __init__(self):
        self.pairs = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.pairs += len(pairs)
        return [1.0 if "gold" in p else 0.0 for _, p in pairs]


CORPUS = {"a": "x", "b": "gold b", "c": "y", "d": "gold d", "e": "z"}


def test_pipeline_reranks_only_the_top_k_and_keeps_top_n():
    scorer = GoldScorer()
    p = Pipeline("fs + gold", FixedRetriever(["a", "c", "b", "e", "d"]), CORPUS, reranker=scorer, top_k=3)
    assert list(p.search("q")) == ["b", "c", "a"]  # d was below top-3: never scored; ties: doc id descending
    assert scorer.pairs == 3
    assert list(Pipeline("n", FixedRetriever(["a", "c", "b"]), CORPUS, reranker=scorer, top_k=3, top_n=1).search("q")) == ["b"]
    alone = Pipeline("fs", FixedRetriever(["a", "c", "b", "e", "d"]), CORPUS, top_k=2).search("q")
    assert alone == {"a": 1.0, "c": 0.99}


def test_pipeline_refuses_bad_settings():
    with pytest.raises(ValueError, match="top_k=0"):
        Pipeline("p", FixedRetriever([]), CORPUS, top_k=0)
    with pytest.raises(ValueError, match="top_n=0"):
        Pipeline("p", FixedRetriever([]), CORPUS, top_n=0)
    with pytest.raises(TypeError, match="search"):
        Pipeline("p", object(), CORPUS)
    with pytest.raises(TypeError, match="predict"):
        Pipeline("p", FixedRetriever([]), CORPUS, reranker=object())
    with pytest.raises(KeyError, match="not in the corpus"):
        Pipeline("p", FixedRetriever(["zz"]), CORPUS, reranker=GoldScorer()).search("q")


def test_evaluate_matches_evaluate_run_and_times_every_query():
    queries = {"q1": "one", "q2": "two", "q3": "three"}
    qrels = {"q1": {"b": 1}, "q2": {"d": 1}, "q3": {"a": 1}, "q9": {"a": 1}}
    fs = FixedRetriever(["a", "c", "b", "e", "d"], per_query={"one": ["a", "c", "b", "e"], "two": ["e", "d", "a"]})
    base = evaluate_pipeline(Pipeline("fs", fs, CORPUS, top_k=5), queries, qrels, metrics=("ndcg@10", "hit@1"))
    reranked = evaluate_pipeline(Pipeline("fs + gold", fs, CORPUS, reranker=GoldScorer(), top_k=5), queries, qrels, metrics=("ndcg@10", "hit@1"))
    assert set(base.seconds) == set(queries) and all(s > 0 for s in base.seconds.values())
    assert base.result.aggregate == evaluate_run(base.run, {q: qrels[q] for q in queries}, ("ndcg@10", "hit@1")).aggregate
    assert base.result.n_evaluated == 3  # q9 is not one of the queries run
    assert reranked.result.per_query["q1"]["hit@1"] == 1.0 and base.result.per_query["q1"]["hit@1"] == 0.0
    assert reranked.result.per_query["q3"]["hit@1"] == 0.0  # the reranker pushed the relevant "a" down
    row = reranked.row()
    assert list(row) == ["ndcg@10", "hit@1", "p50 ms", "p95 ms"] and 0 < row["p50 ms"] <= row["p95 ms"]
    with pytest.raises(ValueError, match="no queries"):
        evaluate_pipeline(Pipeline("fs", fs, CORPUS), {}, qrels)


def test_llamaindex_pipeline_keeps_the_stage_order_through_ties():
    from llama_index.core.schema import NodeWithScore, TextNode

    class Retriever:
        def retrieve(self, bundle):
            return [NodeWithScore(node=TextNode(id_=d, text=CORPUS[d]), score=0.5) for d in ["c", "a", "e"]]

    class Reverse:
        def postprocess_nodes(self, nodes, query_bundle=None):
            assert query_bundle.query_str == "q"
            return list(reversed(nodes))

    out = LlamaIndexPipeline("li", Retriever(), [Reverse()]).search("q")
    assert list(out) == ["e", "a", "c"]
    from rerank_utils.retrieval.queries import rank

    assert rank(out) == ["e", "a", "c"]  # equal scores, yet the stage's order survives evaluation
    assert all(math.isclose(v, 0.5, abs_tol=1e-6) for v in out.values())


def _ds():
    from rerank_utils.data.records import RetrievalDataset

    corpus = {f"d{i}": ("gold " if i % 10 == 0 else "") + f"passage {i}" for i in range(30)}
    queries = {f"q{j}": f"question {j}" for j in range(3)}
    qrels = {f"q{j}": {f"d{10 * j}": 1} for j in range(3)}
    return RetrievalDataset(corpus, queries, qrels)


def test_top_k_tradeoff_rows():
    from rerank_utils.evaluation.pipelines import top_k_tradeoff

    ds = _ds()
    # the gold passage of query j sits at rank 3 + 4 j of the first stage
    per_query = {}
    for j in range(3):
        order = [f"d{i}" for i in range(30) if i % 10 != 0]
        order.insert(3 + 4 * j, f"d{10 * j}")
        per_query[f"question {j}"] = order
    rows = top_k_tradeoff(FixedRetriever([], per_query), GoldScorer(), ds, k_values=(2, 5, 10, 20))
    assert [r["k"] for r in rows] == [2, 5, 10, 20]
    assert [round(r["first_stage_recall@k"], 3) for r in rows] == [0.0, 0.333, 0.667, 1.0]
    # the oracle reranker finds the gold passage exactly when it is among the top-K: NDCG@10 = recall@K
    assert [round(r["ndcg@10"], 3) for r in rows] == [0.0, 0.333, 0.667, 1.0]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in rows)


def test_top_k_tradeoff_scores_each_pair_once_for_quality_and_times_the_first_queries():
    from rerank_utils.evaluation.pipelines import top_k_tradeoff

    ds = _ds()
    per_query = {f"question {j}": [f"d{(i + 7 * j) % 30}" for i in range(30)] for j in range(3)}
    fs, scorer = FixedRetriever([], per_query), GoldScorer()
    rows = top_k_tradeoff(fs, scorer, ds, k_values=(2, 5, 10), latency_queries=1)
    # quality: every query's top-10 scored once (3 x 10 pairs); latency: query 0 end to end at each K, after a
    # warm-up call (2 x (2 + 5 + 10) pairs)
    assert scorer.pairs == 3 * 10 + 2 * (2 + 5 + 10)
    # the same figures as reranking each query's top-K on its own, query by query
    for row in rows:
        alone = evaluate_pipeline(Pipeline("k", fs, ds.corpus, reranker=GoldScorer(), top_k=row["k"]), ds.queries, ds.qrels, ("ndcg@10",))
        assert row["ndcg@10"] == pytest.approx(alone.result.aggregate["ndcg@10"])
    with pytest.raises(ValueError, match="no k_values"):
        top_k_tradeoff(fs, scorer, ds, k_values=())
    # latency_queries=0 (a second first stage before the same reranker): quality only, nothing timed
    quiet = GoldScorer()
    untimed = top_k_tradeoff(fs, quiet, ds, k_values=(2, 5, 10), latency_queries=0)
    assert quiet.pairs == 3 * 10 and all("p50_ms" not in r and "p95_ms" not in r for r in untimed)
    assert [r["ndcg@10"] for r in untimed] == [r["ndcg@10"] for r in rows]
    with pytest.raises(ValueError, match="latency_queries=-1, must be >= 0"):
        top_k_tradeoff(fs, quiet, ds, k_values=(2,), latency_queries=-1)


def test_worst_queries_names_the_damage():
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.evaluation.pipelines import worst_queries

    ds = _ds()
    before = {"q0": ["d0", "d1"], "q1": ["d2", "d10"], "q2": ["d20"]}
    after = {"q0": ["d1", "d0"], "q1": ["d10", "d2"], "q2": ["d20"]}
    rb, ra = evaluate_run(before, ds.qrels, ("ndcg@10",)), evaluate_run(after, ds.qrels, ("ndcg@10",))
    df = worst_queries(ds, rb, ra, before, after, n=2)
    assert list(df["query"]) == ["question 0"]  # only the hurt ones: q1 improved, q2 did not change
    assert df.iloc[0]["change"] < 0 and df.iloc[0]["first result before"].endswith("(relevant)")
    assert df.iloc[0]["first result after"] == ds.corpus["d1"] and df.iloc[0]["relevant passage"] == ds.corpus["d0"]
    assert worst_queries(ds, ra, ra, after, after).empty


def test_no_llm_query_engine_runs_offline(monkeypatch):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    from rerank_utils.integrations.llamaindex import no_llm_query_engine

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    nodes = [TextNode(id_=f"d{i}", text=f"passage {i}") for i in range(6)]
    index = VectorStoreIndex(nodes=nodes, embed_model=MockEmbedding(embed_dim=8))

    from llama_index.core.postprocessor.types import BaseNodePostprocessor

    class KeepTwoPost(BaseNodePostprocessor):
        def _postprocess_nodes(self, nodes, query_bundle=None):
            return nodes[:2]

    engine = no_llm_query_engine(index, top_k=4, node_postprocessors=[KeepTwoPost()])
    response = engine.query("which passage?")
    assert len(response.source_nodes) == 2 and not response.response
    from llama_index.core.schema import QueryBundle

    assert len(engine.retrieve(QueryBundle("which passage?"))) == 2
