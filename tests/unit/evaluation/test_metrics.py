"""Tests for rerank_utils.evaluation: hand-computed values, edge cases, tie-breaking, and agreement
with trec_eval (through ir_measures / pytrec_eval) on random runs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from rerank_utils.evaluation.metrics import (
    DEFAULT_METRICS,
    EvalResult,
    average_precision,
    evaluate_run,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    recall_at_k,
)
from rerank_utils.retrieval.queries import rank
from tests.extras import dev_extra

ALL_FUNCS = [hit_at_k, mrr_at_k, ndcg_at_k, recall_at_k, precision_at_k, average_precision]
CUT_FUNCS = [hit_at_k, mrr_at_k, ndcg_at_k, recall_at_k, precision_at_k]

LOG2_3 = math.log2(3)


# --------------------------------------------------------------------------------------------------
# rank() and tie-breaking
# --------------------------------------------------------------------------------------------------


def test_rank_list_keeps_order():
    assert rank(["b", "a", "c"]) == ["b", "a", "c"]
    assert rank(("x", "y")) == ["x", "y"]


def test_rank_dict_by_score_descending():
    assert rank({"a": 0.1, "b": 0.9, "c": 0.5}) == ["b", "c", "a"]


def test_rank_dict_ties_by_doc_id_descending_like_trec_eval():
    # all tied -> doc id descending
    assert rank({"a": 1.0, "b": 1.0, "c": 1.0}) == ["c", "b", "a"]
    # score first, then the tie rule only inside the tie; string order, not numeric ("9" > "10")
    assert rank({"d1": 2.0, "10": 1.0, "9": 1.0, "d0": 3.0}) == ["d0", "d1", "9", "10"]


def test_ties_change_metrics_as_trec_eval_would():
    qrel = {"a": 1}
    # a and b tie: trec_eval puts b (larger id) first, so the relevant doc a is at rank 2
    run = {"a": 1.0, "b": 1.0}
    assert mrr_at_k(run, qrel, 10) == 0.5
    assert hit_at_k(run, qrel, 1) == 0.0


def test_rank_duplicate_raises_naming_doc():
    with pytest.raises(ValueError, match="'d2'"):
        rank(["d1", "d2", "d3", "d2"])
    for fn in CUT_FUNCS:
        with pytest.raises(ValueError, match="d2"):
            fn(["d1", "d2", "d2"], {"d1": 1}, 3)
    with pytest.raises(ValueError, match="d2"):
        evaluate_run({"q": ["d2", "d2"]}, {"q": {"d2": 1}})


def test_rank_rejects_nan_and_strings():
    with pytest.raises(ValueError, match="NaN"):
        rank({"a": float("nan")})
    with pytest.raises(TypeError):
        rank("abc")


# --------------------------------------------------------------------------------------------------
# hand-computed values
# --------------------------------------------------------------------------------------------------


def test_hit_at_k():
    ranking = ["x", "a", "y"]
    qrel = {"a": 1, "x": 0}
    assert hit_at_k(ranking, qrel, 1) == 0.0  # x has grade 0: not relevant
    assert hit_at_k(ranking, qrel, 2) == 1.0
    assert hit_at_k(ranking, qrel, 100) == 1.0


def test_mrr_at_k():
    ranking = ["x", "y", "a", "b"]
    qrel = {"a": 1, "b": 3}
    assert mrr_at_k(ranking, qrel, 10) == pytest.approx(1 / 3)  # first relevant at rank 3
    assert mrr_at_k(ranking, qrel, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(ranking, qrel, 2) == 0.0  # rank 3 is outside the top 2


def test_ndcg_grades_2_0_1():
    # ranking d1, d2, d3 with grades 2, 0, 1
    # DCG  = 2/log2(2) + 0/log2(3) + 1/log2(4) = 2 + 0 + 0.5 = 2.5
    # IDCG = 2/log2(2) + 1/log2(3)             = 2 + 0.6309297535714575 = 2.6309297535714575
    # nDCG = 2.5 / 2.6309297535714575 = 0.9502344167898356
    qrel = {"d1": 2, "d2": 0, "d3": 1}
    expected = 2.5 / (2 + 1 / LOG2_3)
    assert ndcg_at_k(["d1", "d2", "d3"], qrel, 10) == pytest.approx(expected, abs=1e-12)
    assert ndcg_at_k(["d1", "d2", "d3"], qrel, 10) == pytest.approx(0.9502344167898356, abs=1e-12)
    # @1: DCG = 2, IDCG = 2 -> 1.0
    assert ndcg_at_k(["d1", "d2", "d3"], qrel, 1) == 1.0
    # @2: DCG = 2 + 0 = 2; IDCG@2 = 2 + 1/log2(3) -> 2 / 2.6309...
    assert ndcg_at_k(["d1", "d2", "d3"], qrel, 2) == pytest.approx(2 / (2 + 1 / LOG2_3), abs=1e-12)


def test_ndcg_ideal_uses_all_relevant_docs_even_unretrieved():
    # qrels: a=3, b=2, c=1; the run retrieved only c, at rank 1
    # DCG@10 = 1/log2(2) = 1; IDCG@10 = 3 + 2/log2(3) + 1/log2(4) = 3 + 1.2618595071429148 + 0.5
    qrel = {"a": 3, "b": 2, "c": 1}
    idcg = 3 + 2 / LOG2_3 + 0.5
    assert ndcg_at_k(["c"], qrel, 10) == pytest.approx(1 / idcg, abs=1e-12)
    # cut at 2: IDCG@2 = 3 + 2/log2(3) (the third relevant doc cannot fit)
    assert ndcg_at_k(["c"], qrel, 2) == pytest.approx(1 / (3 + 2 / LOG2_3), abs=1e-12)


def test_ndcg_perfect_ranking_is_one():
    qrel = {"a": 3, "b": 2, "c": 1, "z": 0}
    assert ndcg_at_k(["a", "b", "c", "z"], qrel, 10) == pytest.approx(1.0)
    # swapping a and b lowers it: DCG = 2 + 3/log2(3) + 1/2; IDCG = 3 + 2/log2(3) + 1/2
    assert ndcg_at_k(["b", "a", "c"], qrel, 10) == pytest.approx(
        (2 + 3 / LOG2_3 + 0.5) / (3 + 2 / LOG2_3 + 0.5), abs=1e-12
    )


def test_recall_at_k():
    qrel = {"a": 1, "b": 1, "c": 2, "d": 0}
    ranking = ["a", "x", "c", "d", "b"]
    assert recall_at_k(ranking, qrel, 1) == pytest.approx(1 / 3)  # a
    assert recall_at_k(ranking, qrel, 3) == pytest.approx(2 / 3)  # a, c
    assert recall_at_k(ranking, qrel, 5) == pytest.approx(1.0)  # a, c, b


def test_precision_at_k():
    qrel = {"a": 1, "c": 1}
    ranking = ["a", "b", "c"]
    assert precision_at_k(ranking, qrel, 1) == 1.0
    assert precision_at_k(ranking, qrel, 3) == pytest.approx(2 / 3)
    # fewer results than k: still divided by k (trec_eval P_k): 2 relevant / 5
    assert precision_at_k(ranking, qrel, 5) == pytest.approx(2 / 5)


def test_average_precision():
    # relevant: a, b, c (3 docs); ranking: a (rel), x, b (rel), y, z ; c never retrieved
    # AP = (1/1 + 2/3) / 3 = (1.6666...) / 3 = 0.5555...
    qrel = {"a": 1, "b": 2, "c": 1, "x": 0}
    ranking = ["a", "x", "b", "y", "z"]
    assert average_precision(ranking, qrel) == pytest.approx((1 + 2 / 3) / 3, abs=1e-12)
    # AP@2: only a is within the cut -> (1/1) / 3 (the denominator stays 3)
    assert average_precision(ranking, qrel, 2) == pytest.approx(1 / 3, abs=1e-12)
    # AP@3 = AP here (b at rank 3 is the last relevant found)
    assert average_precision(ranking, qrel, 3) == pytest.approx((1 + 2 / 3) / 3, abs=1e-12)


def test_metrics_accept_score_dicts():
    qrel = {"d1": 2, "d2": 0, "d3": 1}
    run = {"d1": 0.9, "d2": 0.5, "d3": 0.1}  # same order as ["d1", "d2", "d3"]
    assert ndcg_at_k(run, qrel, 10) == pytest.approx(2.5 / (2 + 1 / LOG2_3))
    assert mrr_at_k(run, qrel, 10) == 1.0
    assert average_precision(run, qrel) == pytest.approx((1 + 2 / 3) / 2)


# --------------------------------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL_FUNCS)
def test_no_relevant_docs_gives_nan(fn):
    assert math.isnan(fn(["a", "b"], {"a": 0, "b": 0}, 5))
    assert math.isnan(fn(["a", "b"], {}, 5))
    assert math.isnan(fn([], {"a": 0}, 5))


@pytest.mark.parametrize("fn", ALL_FUNCS)
def test_empty_ranking_is_zero(fn):
    assert fn([], {"a": 1}, 5) == 0.0
    assert fn({}, {"a": 1}, 5) == 0.0


@pytest.mark.parametrize("fn", CUT_FUNCS)
@pytest.mark.parametrize("bad_k", [0, -1, 1.0, 2.5, "3", None, True])
def test_k_must_be_positive_int(fn, bad_k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        fn(["a"], {"a": 1}, bad_k)


def test_numpy_int_k_is_accepted():
    import numpy as np  # a core dependency: fails, never skips
    assert mrr_at_k(["x", "a"], {"a": 1}, np.int64(2)) == 0.5
    assert average_precision(["x", "a"], {"a": 1}, np.int32(1)) == 0.0


@pytest.mark.parametrize("bad_k", [0, -3, 1.5, "10", False])
def test_average_precision_k_validation(bad_k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        average_precision(["a"], {"a": 1}, bad_k)


def test_fewer_results_than_k():
    # 2 results, k = 10; grades a=1, b=2, c=1; retrieved: x, b
    qrel = {"a": 1, "b": 2, "c": 1}
    ranking = ["x", "b"]
    assert hit_at_k(ranking, qrel, 10) == 1.0
    assert mrr_at_k(ranking, qrel, 10) == 0.5
    assert recall_at_k(ranking, qrel, 10) == pytest.approx(1 / 3)
    assert precision_at_k(ranking, qrel, 10) == pytest.approx(1 / 10)
    # DCG = 2/log2(3); IDCG@10 = 2 + 1/log2(3) + 1/log2(4) (the ideal still uses all 3 relevant docs)
    assert ndcg_at_k(ranking, qrel, 10) == pytest.approx((2 / LOG2_3) / (2 + 1 / LOG2_3 + 0.5), abs=1e-12)
    # AP = (1/2) / 3
    assert average_precision(ranking, qrel, 10) == pytest.approx(1 / 6)


def test_unjudged_docs_are_non_relevant():
    qrel = {"a": 1}
    ranking = ["unjudged1", "unjudged2", "a"]
    assert mrr_at_k(ranking, qrel, 10) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranking, qrel, 10) == pytest.approx(1 / 2)  # (1/log2(4)) / (1/log2(2))


def test_float_grades():
    # grade 0.5 > 0 is relevant; gain = grade
    qrel = {"a": 0.5, "b": 1.0, "c": 0.0}
    assert hit_at_k(["c", "a"], qrel, 2) == 1.0
    # DCG = 0.5/log2(3); IDCG = 1 + 0.5/log2(3)
    assert ndcg_at_k(["c", "a"], qrel, 10) == pytest.approx((0.5 / LOG2_3) / (1 + 0.5 / LOG2_3))


def test_negative_grade_is_non_relevant():
    qrel = {"a": -1, "b": 1}
    assert mrr_at_k(["a", "b"], qrel, 10) == 0.5
    assert ndcg_at_k(["a", "b"], qrel, 10) == pytest.approx(1 / LOG2_3)


# --------------------------------------------------------------------------------------------------
# metric names
# --------------------------------------------------------------------------------------------------


def test_parse_metric():
    assert parse_metric("ndcg@10").name == "ndcg@10"
    assert parse_metric("NDCG@10").name == "ndcg@10"
    assert parse_metric(" hit@3 ").k == 3
    assert parse_metric("map").k is None
    assert parse_metric("map@10").name == "map@10"
    assert parse_metric("P@5").name == "p@5"
    assert parse_metric("precision@5").name == "p@5"
    assert parse_metric("recall@100").family == "recall"
    assert parse_metric("mrr@10").family == "mrr"


@pytest.mark.parametrize("bad", ["bleu@4", "ndcg", "hit", "ndcg@0", "ndcg@x", "mrr@-1", "", "map@"])
def test_parse_metric_rejects_unknown(bad):
    with pytest.raises(ValueError, match="allowed: hit@K"):
        parse_metric(bad)


def test_evaluate_run_unknown_metric_lists_allowed():
    with pytest.raises(ValueError, match=r"allowed: .*ndcg@K.*map"):
        evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, metrics=("ndcg@10", "f1"))


# --------------------------------------------------------------------------------------------------
# evaluate_run
# --------------------------------------------------------------------------------------------------


def _toy():
    qrels = {
        "q1": {"d1": 2, "d2": 0, "d3": 1},  # evaluated
        "q2": {"d5": 1},  # evaluated; the run ranks d5 2nd
        "q3": {"d9": 0},  # no relevant doc: skipped, counted
        "q4": {"d7": 1},  # absent from the run: scored 0, listed
    }
    run = {
        "q1": ["d1", "d2", "d3"],
        "q2": {"d4": 0.9, "d5": 0.8},
        "q3": ["d9"],
        "q_extra": ["d1"],  # no qrels: listed, not evaluated
    }
    return run, qrels


def test_evaluate_run_bookkeeping_and_means():
    run, qrels = _toy()
    res = evaluate_run(run, qrels, metrics=("hit@1", "mrr@10", "ndcg@10", "map", "recall@20", "p@5"))
    assert isinstance(res, EvalResult)
    assert res.metrics == ("hit@1", "mrr@10", "ndcg@10", "map", "recall@20", "p@5")
    assert res.n_evaluated == 3  # q1, q2, q4
    assert res.skipped_no_relevant == ["q3"]
    assert res.missing_in_run == ["q4"]
    assert res.not_in_qrels == ["q_extra"]
    assert list(res.per_query) == ["q1", "q2", "q3", "q4"]
    assert all(math.isnan(v) for v in res.per_query["q3"].values())
    assert all(v == 0.0 for v in res.per_query["q4"].values())
    # hit@1: q1 1, q2 0, q4 0 -> 1/3
    assert res.aggregate["hit@1"] == pytest.approx(1 / 3)
    # mrr@10: q1 1, q2 1/2, q4 0 -> 1.5/3 = 0.5
    assert res.aggregate["mrr@10"] == pytest.approx(0.5)
    # ndcg@10: q1 2.5/(2+1/log2 3), q2 (1/log2 3)/1, q4 0
    assert res.aggregate["ndcg@10"] == pytest.approx((2.5 / (2 + 1 / LOG2_3) + 1 / LOG2_3) / 3)
    # map: q1 (1 + 2/3)/2, q2 1/2, q4 0
    assert res.aggregate["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 3)
    # recall@20: 1, 1, 0
    assert res.aggregate["recall@20"] == pytest.approx(2 / 3)
    # p@5: 2/5, 1/5, 0
    assert res.aggregate["p@5"] == pytest.approx((0.4 + 0.2) / 3)


def test_evaluate_run_default_metrics():
    run, qrels = _toy()
    res = evaluate_run(run, qrels)
    assert res.metrics == DEFAULT_METRICS
    assert set(res.aggregate) == set(DEFAULT_METRICS)


def test_evaluate_run_no_evaluable_query():
    res = evaluate_run({"q": ["a"]}, {"q": {"a": 0}}, metrics=("ndcg@10",))
    assert res.n_evaluated == 0
    assert res.skipped_no_relevant == ["q"]
    assert math.isnan(res.aggregate["ndcg@10"])


def test_evaluate_run_canonical_names_and_dedupe():
    res = evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, metrics=("NDCG@10", "ndcg@10", "P@1"))
    assert res.metrics == ("ndcg@10", "p@1")
    res = evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, metrics="map")
    assert res.metrics == ("map",)


def test_to_frame_and_table():
    run, qrels = _toy()
    res = evaluate_run(run, qrels, metrics=("hit@1", "mrr@10"))
    df = res.to_frame()
    assert list(df.columns) == ["hit@1", "mrr@10"]
    assert list(df.index) == ["q1", "q2", "q3", "q4"]
    assert df.index.name == "qid"
    assert df.loc["q2", "mrr@10"] == 0.5
    assert math.isnan(df.loc["q3", "hit@1"])
    rec = res.table(name="bm25", digits=3)
    assert rec == {
        "name": "bm25",
        "hit@1": 0.333,
        "mrr@10": 0.5,
        "n_evaluated": 3,
        "n_skipped_no_relevant": 1,
        "n_missing_in_run": 1,
    }
    assert "name" not in res.table()
    text = str(res)
    assert "hit@1=0.3333" in text and "1 skipped" in text and "1 missing" in text


# --------------------------------------------------------------------------------------------------
# agreement with trec_eval through ir_measures
# --------------------------------------------------------------------------------------------------


def _random_collection(seed: int, n_queries: int = 300):
    """Random graded qrels (0-3, with judged-non-relevant and unretrieved relevant docs) and runs
    whose scores are drawn from few values (many ties) and whose lengths vary from 1 to 30
    (many queries have fewer than 10 or 20 results)."""
    rng = random.Random(seed)
    qrels, run = {}, {}
    for i in range(n_queries):
        qid = f"q{i}"
        pool = [f"d{j}" for j in rng.sample(range(200), 40)]
        judged = rng.sample(pool, rng.randint(1, 15))
        grades = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
        if not any(g > 0 for g in grades.values()):
            grades[judged[0]] = rng.randint(1, 3)
        qrels[qid] = grades
        n_ret = rng.randint(1, 30)
        levels = rng.choice([3, 5, 50])  # few distinct scores -> ties
        run[qid] = {d: float(rng.randint(0, levels)) / levels for d in rng.sample(pool, n_ret)}
    return run, qrels


@pytest.fixture(scope="module")
def random_collection():
    return _random_collection(seed=1234)


def test_random_collection_has_ties_and_short_runs(random_collection):
    run, _ = random_collection
    assert sum(len(set(r.values())) < len(r) for r in run.values()) > 100
    assert sum(len(r) < 10 for r in run.values()) > 50


def test_agreement_with_trec_eval(random_collection):
    ir_measures = dev_extra("ir_measures")
    run, qrels = random_collection
    measures = {
        "ndcg@10": ir_measures.nDCG @ 10,
        "ndcg@3": ir_measures.nDCG @ 3,
        "recall@20": ir_measures.R @ 20,
        "recall@5": ir_measures.R @ 5,
        "map": ir_measures.AP,
        "map@10": ir_measures.AP @ 10,
        "p@5": ir_measures.P @ 5,
        "hit@1": ir_measures.Success @ 1,
        "hit@5": ir_measures.Success @ 5,
    }
    # pytrec_eval (trec_eval) explicitly: every one of these measures goes through trec_eval's ranking
    theirs: dict[str, dict[str, float]] = {}
    for m in ir_measures.pytrec_eval.iter_calc(list(measures.values()) + [ir_measures.RR], qrels, run):
        theirs.setdefault(m.query_id, {})[str(m.measure)] = m.value

    ours = evaluate_run(run, qrels, metrics=list(measures) + ["mrr@10"])
    assert ours.n_evaluated == len(qrels) and not ours.skipped_no_relevant and not ours.missing_in_run
    assert set(theirs) == set(qrels)
    for qid in qrels:
        for name, measure in measures.items():
            assert ours.per_query[qid][name] == pytest.approx(theirs[qid][str(measure)], abs=1e-6), (qid, name)
        # trec_eval's recip_rank has no cutoff; RR@10 = RR if the first relevant doc is in the top 10
        rr = theirs[qid]["RR"]
        rr10 = rr if rr >= 1 / 10 - 1e-12 else 0.0
        assert ours.per_query[qid]["mrr@10"] == pytest.approx(rr10, abs=1e-6), qid

    # the means agree too
    agg = ir_measures.pytrec_eval.calc_aggregate(list(measures.values()), qrels, run)
    for name, measure in measures.items():
        assert ours.aggregate[name] == pytest.approx(agg[measure], abs=1e-6), name


def test_agreement_with_ir_measures_default_rr_without_ties():
    """ir_measures' default RR@k (msmarco provider) agrees with us when no scores tie."""
    ir_measures = dev_extra("ir_measures")
    run, qrels = _random_collection(seed=7, n_queries=200)
    rng = random.Random(0)
    # distinct scores: a random permutation of 0..n-1 per query
    run = {q: dict(zip(r, rng.sample(range(len(r)), len(r)))) for q, r in run.items()}
    run = {q: {d: float(s) for d, s in r.items()} for q, r in run.items()}
    theirs = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.RR @ 10], qrels, run)}
    ours = evaluate_run(run, qrels, metrics=("mrr@10",))
    for qid in qrels:
        assert ours.per_query[qid]["mrr@10"] == pytest.approx(theirs[qid], abs=1e-6)


def test_ir_measures_default_rr_breaks_ties_the_other_way():
    """Documents a known difference: ir_measures computes RR@k with its msmarco provider, which sorts
    ties by doc id ASCENDING; trec_eval (and we) sort them descending. If this test starts failing,
    ir_measures changed and the note in the module docstring should be updated."""
    ir_measures = dev_extra("ir_measures")
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0}}
    default = next(iter(ir_measures.iter_calc([ir_measures.RR @ 10], qrels, run))).value
    trec = next(iter(ir_measures.pytrec_eval.iter_calc([ir_measures.RR], qrels, run))).value
    assert trec == 0.5 == mrr_at_k(run["q"], qrels["q"], 10)
    assert default == 1.0


def test_run_agreement_counts_identical_top_k_order():
    from rerank_utils.evaluation.metrics import run_agreement

    a = {"q1": ["d1", "d2", "d3"], "q2": {"d1": 0.9, "d2": 0.5}, "q3": ["d1"]}
    b = {"q1": ["d1", "d2", "d9"], "q2": {"d2": 0.5, "d1": 0.9}}  # q1 differs at rank 3, q3 missing
    assert run_agreement(a, b, k=2) == pytest.approx(2 / 3)
    assert run_agreement(a, b, k=3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        run_agreement({}, b)


# ----------------------------------------------------------------------------- paired comparisons
def test_identical_systems_give_an_interval_covering_zero():
    from rerank_utils.evaluation.significance import paired_comparison

    rng = np.random.default_rng(1)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.random(80))}
    c = paired_comparison(a, dict(a), metric="ndcg@10")
    assert c.diff == 0 and c.low <= 0 <= c.high and c.p_value == 1.0 and c.ties == 80 and not c.significant


def test_a_dominating_system_gives_an_interval_above_zero():
    from rerank_utils.evaluation.significance import paired_comparison

    rng = np.random.default_rng(2)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.random(100) * 0.5)}
    b = {q: v + 0.1 + 0.05 * rng.random() for q, v in a.items()}
    c = paired_comparison(a, b)
    assert c.low > 0.09 and c.high < 0.16 and c.significant and c.p_value < 0.001 and c.wins == 100


def test_noise_differences_are_not_significant_and_bootstrap_is_seeded():
    from rerank_utils.evaluation.significance import paired_comparison

    rng = np.random.default_rng(3)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.random(60))}
    b = {q: float(np.clip(v + rng.normal(0, 0.2), 0, 1)) for q, v in a.items()}
    c1, c2 = paired_comparison(a, b, seed=5), paired_comparison(a, b, seed=5)
    assert (c1.low, c1.high, c1.p_value) == (c2.low, c2.high, c2.p_value)
    assert c1.low < c1.diff < c1.high and c1.wins + c1.losses + c1.ties == 60


def test_paired_comparison_needs_the_same_queries():
    from rerank_utils.evaluation.significance import paired_comparison

    with pytest.raises(ValueError, match="1 only in a, 0 only in b"):
        paired_comparison({"q1": 0.5, "q2": 0.1}, {"q1": 0.4})


def test_compare_two_eval_results():
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.evaluation.significance import compare

    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    worse = evaluate_run({"q1": ["x", "d1"], "q2": ["x", "d2"], "q3": ["d3"]}, qrels, ["ndcg@10"])
    better = evaluate_run({"q1": ["d1"], "q2": ["d2"], "q3": ["d3"]}, qrels, ["ndcg@10"])
    c = compare(worse, better, "ndcg@10", n_resamples=2000)
    assert c.metric == "ndcg@10" and c.wins == 2 and c.ties == 1
    assert c.diff == pytest.approx((2 * (1 - 1 / np.log2(3))) / 3)


def test_paired_comparison_with_no_usable_query():
    from rerank_utils.evaluation.significance import paired_comparison

    with pytest.raises(ValueError, match="no query with a value on both sides"):
        paired_comparison({"q1": float("nan")}, {"q1": 0.5})
