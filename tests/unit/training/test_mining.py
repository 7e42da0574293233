"""Tests for rerank_utils.training.mining: random / BM25 / dense / mixed negatives, margins, filters, rows.

Fast and offline: a hashed bag-of-words fake encoder and a word-overlap fake cross-encoder.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.mining import (
    MiningConfig,
    MiningReport,
    mine_negatives,
    negatives_to_triples,
)
from tests.extras import dev_extra

_WORD = re.compile(r"[\u4e00-\u9fff]|\w+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class FakeEncoder:
    """Hashed bag-of-words vectors (crc32 of each lower-cased word / CJK character), deterministic."""

    dim = 256

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in _words(text):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


class FakeCrossEncoder:
    """Score = share of the query's words found in the passage."""

    def __init__(self):
        self.n_pairs = 0

    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        self.n_pairs += len(pairs)
        out = []
        for q, d in pairs:
            qw, dw = set(_words(q)), set(_words(d))
            out.append(len(qw & dw) / max(len(qw), 1))
        return np.asarray(out, dtype=np.float32)


TOPICS = {
    "tax": ["Income tax is paid on salaries and pensions.", "Tax returns are filed every spring.",
            "A tax deduction lowers the taxable income."],
    "cat": ["The cat sat on the mat and purred.", "Cats sleep most of the day.", "A kitten drinks milk."],
    "dog": ["A dog barks at the postman.", "Dogs need a walk every morning.", "The puppy chewed a shoe."],
    "bread": ["To bake bread you need flour, water and yeast.", "Sourdough bread rises slowly.",
              "Bread goes stale in a dry kitchen."],
    "quantum": ["Quantum computers use qubits.", "Qubits can be in superposition.",
                "Quantum error correction protects qubits."],
    "car": ["An electric car charges at home.", "Car engines burn petrol.", "Check the car tyres monthly."],
    "roof": ["A leaking roof needs new tiles.", "Roof gutters carry rain water away.",
             "A flat roof needs a membrane."],
    "law": ["A contract needs an offer and an acceptance.", "Building permits are issued by the city.",
            "Law students read many cases."],
    "music": ["A piano has eighty eight keys.", "Jazz music loves improvisation.", "A violin has four strings."],
}


def make_dataset() -> RetrievalDataset:
    corpus = {}
    for topic, texts in TOPICS.items():
        for i, text in enumerate(texts):
            corpus[f"{topic}{i}"] = text
    corpus["dup_tax0"] = "  " + TOPICS["tax"][0] + " "  # same text as a positive (after strip)
    corpus["near_cat"] = "Why do cats purr on the mat loudly"  # near-duplicate of query q_cat
    corpus["misc"] = "Gardening in spring needs good soil."
    queries = {
        "q_tax": "How is income tax paid on salaries?",
        "q_cat": "Why do cats purr on the mat?",
        "q_dog": "Why does a dog bark at the postman?",
        "q_bread": "What do you need to bake bread?",
        "q_quantum": "What do quantum computers use?",
        "q_car": "Where does an electric car charge?",
        "q_roof": "What does a leaking roof need?",
        "q_law": "What does a contract need?",
        "q_music": "How many keys has a piano?",
        "q_two": "Qubits and superposition in quantum computers",
        "q_nopos": "An unjudged question about soil",
    }
    qrels = {
        "q_tax": {"tax0": 1}, "q_cat": {"cat0": 1}, "q_dog": {"dog0": 1}, "q_bread": {"bread0": 1},
        "q_quantum": {"quantum0": 1}, "q_car": {"car0": 1}, "q_roof": {"roof0": 1}, "q_law": {"law0": 1},
        "q_music": {"music0": 1}, "q_two": {"quantum0": 1, "quantum1": 1}, "q_nopos": {"misc": 0},
    }
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name="synthetic")


def make_zh_dataset() -> RetrievalDataset:
    corpus = {
        "sec0": "证券法是规范证券发行和交易行为的法律。",
        "sec1": "证券交易所负责证券交易的组织和监督。",
        "tax0": "个人所得税按照工资收入计算缴纳。",
        "tax1": "企业所得税的税率一般为百分之二十五。",
        "house0": "购买房屋需要签订房屋买卖合同。",
        "house1": "房屋租赁合同应当写明租金和期限。",
        "law0": "合同法规定了合同的订立和履行。",
        "misc0": "今天天气很好，适合去公园散步。",
    }
    queries = {"zq_sec": "证券法规范什么行为？", "zq_tax": "个人所得税怎么计算？", "zq_house": "买房要签什么合同？"}
    qrels = {"zq_sec": {"sec0": 1}, "zq_tax": {"tax0": 1}, "zq_house": {"house0": 1}}
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name="zh")


@pytest.fixture()
def ds() -> RetrievalDataset:
    return make_dataset()


@pytest.fixture()
def enc() -> FakeEncoder:
    return FakeEncoder()


def _mined_qids(ds):
    return [q for q in ds.queries if ds.positives(q)]


def _assert_clean(ds, result, n):
    """No positive (by id or text) among a query's negatives; distinct; exactly n each."""
    for qid in _mined_qids(ds):
        negs = result.negatives[qid]
        assert len(negs) == n, (qid, negs)
        assert len(set(negs)) == len(negs)
        pos_ids = set(ds.positives(qid))
        pos_texts = {ds.corpus[d].strip() for d in pos_ids}
        for d in negs:
            assert d not in pos_ids
            assert ds.corpus[d].strip() not in pos_texts
            assert (qid, d) in result.strategy_of


# ------------------------------------------------------------------------------------------------
# exclusions and exact counts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "bm25", "dense", "mixed"])
def test_exact_counts_and_no_positive_among_negatives(ds, enc, strategy):
    cfg = MiningConfig(strategy=strategy, num_negatives=4)
    result = mine_negatives(ds, cfg, model=enc)
    _assert_clean(ds, result, 4)
    n_q = len(_mined_qids(ds))
    assert result.report.n_queries == n_q
    assert result.report.total == 4 * n_q
    assert "q_nopos" not in result.negatives and result.report.no_positive_queries == ["q_nopos"]
    assert result.report.short_queries == []
    by_strategy = {}
    for (_, _), s in result.strategy_of.items():
        by_strategy[s] = by_strategy.get(s, 0) + 1
    assert by_strategy == {k: v for k, v in result.report.counts.items() if v}


def test_text_duplicate_of_positive_is_never_a_negative(ds, enc):
    # dense: dup_tax0 has exactly the positive's embedding, so it is the top candidate for q_tax
    cfg = MiningConfig(strategy="dense", num_negatives=4, relative_margin=None)
    result = mine_negatives(ds, cfg, model=enc)
    assert "dup_tax0" not in result.negatives["q_tax"]
    # random with as many negatives as the corpus holds: every allowed doc, never a positive or its copy
    n = len(ds.corpus)
    result = mine_negatives(ds, MiningConfig(strategy="random", num_negatives=n))
    for qid in _mined_qids(ds):
        excluded = set(ds.positives(qid)) | ({"dup_tax0"} if "tax0" in ds.positives(qid) else set())
        assert set(result.negatives[qid]) == set(ds.corpus) - excluded
    assert set(result.report.short_queries) == set(_mined_qids(ds))


def test_short_queries_when_corpus_too_small(enc):
    small = RetrievalDataset(
        corpus={"a": "apples are red", "b": "bananas are yellow", "c": "cherries are red", "d": "dates are sweet"},
        queries={"q1": "what colour are apples", "q2": "are dates sweet"},
        qrels={"q1": {"a": 1}, "q2": {"d": 1, "c": 1}},
    )
    for strategy in ("random", "dense", "mixed"):
        result = mine_negatives(small, MiningConfig(strategy=strategy, num_negatives=3, relative_margin=None),
                                model=enc)
        assert len(result.negatives["q1"]) == 3 and "q1" not in result.report.short_queries
        assert sorted(result.negatives["q2"]) == ["a", "b"]
        assert result.report.short_queries == ["q2"]
        assert "fewer than 3" in result.report.summary()


def test_mixed_split_and_rounding(ds, enc):
    for frac, n_hard in [(0.5, 2), (0.3, 1), (0.625, 3), (0.0, 0), (1.0, 4)]:
        cfg = MiningConfig(strategy="mixed", num_negatives=4, hard_fraction=frac, relative_margin=None)
        result = mine_negatives(ds, cfg, model=enc)
        _assert_clean(ds, result, 4)
        for qid in _mined_qids(ds):
            kinds = [result.strategy_of[(qid, d)] for d in result.negatives[qid]]
            assert kinds == ["dense"] * n_hard + ["random"] * (4 - n_hard)
        n_q = len(_mined_qids(ds))
        assert result.report.counts == {"dense": n_hard * n_q, "random": (4 - n_hard) * n_q}
        assert result.report.topped_up == 0


def test_mixed_with_bm25_source_and_top_up(ds, enc):
    cfg = MiningConfig(strategy="mixed", hard_source="bm25", num_negatives=4, hard_fraction=0.75, range_max=1,
                       relative_margin=None)
    result = mine_negatives(ds, cfg)
    _assert_clean(ds, result, 4)
    rep = result.report
    n_q = len(_mined_qids(ds))
    assert rep.counts["bm25"] <= n_q  # at most one candidate per query
    assert rep.counts["bm25"] + rep.counts["random"] == 4 * n_q
    assert rep.topped_up == 3 * n_q - rep.counts["bm25"]
    assert rep.topped_up > 0 and "random top-ups" in rep.summary()


# ------------------------------------------------------------------------------------------------
# margins, skip_top, cross-encoder filter
# ------------------------------------------------------------------------------------------------


def test_relative_margin_respected_and_near_duplicate_dropped(ds, enc):
    rel = 0.05
    result = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=4, relative_margin=rel), model=enc)
    assert result.report.dropped_false_negative >= 1
    assert "near_cat" not in result.negatives["q_cat"]
    for (qid, d), s in result.scores.items():
        pos = result.positive_score[qid]
        assert pos > 0
        assert s <= pos * (1 - rel) + 1e-6
    # the positive score is the cosine of query and positive embeddings
    q = enc.encode([ds.queries["q_cat"]])[0]
    p = enc.encode([ds.corpus["cat0"]])[0]
    assert result.positive_score["q_cat"] == pytest.approx(float(q @ p), abs=1e-5)
    # q_two: the best of its two positives
    q2 = enc.encode([ds.queries["q_two"]])[0]
    best = max(float(q2 @ enc.encode([ds.corpus[d]])[0]) for d in ("quantum0", "quantum1"))
    assert result.positive_score["q_two"] == pytest.approx(best, abs=1e-5)
    # without margins the planted near-duplicate is the hardest negative of q_cat
    loose = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=4, relative_margin=None), model=enc)
    assert loose.negatives["q_cat"][0] == "near_cat"
    assert loose.report.dropped_false_negative == 0


def test_absolute_margin_respected(ds, enc):
    cfg = MiningConfig(strategy="dense", num_negatives=3, relative_margin=None, absolute_margin=0.1)
    result = mine_negatives(ds, cfg, model=enc)
    assert result.report.dropped_false_negative >= 1
    for (qid, d), s in result.scores.items():
        assert s <= result.positive_score[qid] - 0.1 + 1e-6
    _assert_clean(ds, result, 3)


def test_bm25_margin_uses_bm25_positive_score(ds):
    result = mine_negatives(ds, MiningConfig(strategy="bm25", num_negatives=2, relative_margin=0.05))
    retr = BM25Retriever(ds.corpus, lang="en")
    full = retr.search({"q_tax": ds.queries["q_tax"]}, top_k=len(ds.corpus))["q_tax"]
    assert result.positive_score["q_tax"] == pytest.approx(full["tax0"], rel=1e-5)
    for (qid, d), s in result.scores.items():
        assert s <= result.positive_score[qid] * 0.95 + 1e-6


def test_skip_top_drops_the_top_ranks(ds, enc):
    base = MiningConfig(strategy="dense", num_negatives=4, relative_margin=None)
    top = mine_negatives(ds, base, model=enc)
    skipped = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=4, relative_margin=None, skip_top=2),
                             model=enc)
    n_q = len(_mined_qids(ds))
    assert skipped.report.skipped_top == 2 * n_q
    for qid in _mined_qids(ds):
        first_two = top.negatives[qid][:2]
        assert not set(first_two) & set(skipped.negatives[qid])
        assert skipped.negatives[qid][:2] == top.negatives[qid][2:4]
    _assert_clean(ds, skipped, 4)


def test_cross_encoder_filter(ds, enc):
    ce = FakeCrossEncoder()
    thr = 0.3
    cfg = MiningConfig(strategy="dense", num_negatives=3, relative_margin=None)
    result = mine_negatives(ds, cfg, model=enc, cross_encoder=ce, ce_threshold=thr)
    _assert_clean(ds, result, 3)
    # expected drops: walk each query's candidate list in rank order, as the filter does
    retr = DenseRetriever(ds.corpus, enc)
    expected_drops = 0
    for qid in _mined_qids(ds):
        run = retr.search({qid: ds.queries[qid]}, top_k=cfg.range_max)[qid]
        bad = set(ds.positives(qid)) | ({"dup_tax0"} if qid == "q_tax" else set())
        kept = []
        for d in run:
            if d in bad:
                continue
            if len(kept) == 3:
                break
            if ce.predict([(ds.queries[qid], ds.corpus[d])])[0] > thr:
                expected_drops += 1
            else:
                kept.append(d)
        hard = [d for d in result.negatives[qid] if result.strategy_of[(qid, d)] == "dense"]
        assert hard == kept
    assert result.report.dropped_by_filter == expected_drops > 0
    for (qid, d), kind in result.strategy_of.items():
        if kind == "dense":
            assert ce.predict([(ds.queries[qid], ds.corpus[d])])[0] <= thr


def test_cross_encoder_default_threshold_is_lowest_positive_score(ds, enc):
    ce = FakeCrossEncoder()
    result = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=3, relative_margin=None),
                            model=enc, cross_encoder=ce)
    for (qid, d), kind in result.strategy_of.items():
        if kind == "dense":
            low = min(ce.predict([(ds.queries[qid], ds.corpus[p])])[0] for p in ds.positives(qid))
            assert ce.predict([(ds.queries[qid], ds.corpus[d])])[0] <= low
    assert "cross-encoder filter" in result.report.summary()


# ------------------------------------------------------------------------------------------------
# determinism, model and retriever handling
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "mixed"])
def test_deterministic_and_seed_sensitive(ds, enc, strategy):
    cfg = MiningConfig(strategy=strategy, num_negatives=4)
    a = mine_negatives(ds, cfg, model=enc)
    b = mine_negatives(ds, cfg, model=FakeEncoder())
    assert a.negatives == b.negatives and a.strategy_of == b.strategy_of
    c = mine_negatives(ds, MiningConfig(strategy=strategy, num_negatives=4, seed=7), model=enc)
    assert c.negatives != a.negatives
    # a query's random negatives do not depend on chunking or on the other queries
    d = mine_negatives(ds, cfg, model=enc, chunk_size=3)
    assert d.negatives == a.negatives
    sub = mine_negatives(ds.subset(["q_dog", "q_law"]), cfg, model=enc)
    assert sub.negatives["q_dog"] == a.negatives["q_dog"]


def test_model_loaded_only_when_dense_needed(ds, enc, monkeypatch):
    import rerank_utils.training.mining as mining_module

    loaded = []

    def fake_load(name="default", **kw):
        loaded.append(name)
        return enc

    monkeypatch.setattr(mining_module, "load_bi_encoder", fake_load)
    mine_negatives(ds, MiningConfig(strategy="random"))
    mine_negatives(ds, MiningConfig(strategy="bm25"))
    mine_negatives(ds, MiningConfig(strategy="mixed", hard_source="bm25"))
    assert loaded == []
    mine_negatives(ds, MiningConfig(strategy="dense"))
    assert loaded == ["default"]


def test_prebuilt_retriever_is_used(ds, enc):
    retr = DenseRetriever(ds.corpus, enc)
    calls = enc.calls
    a = mine_negatives(ds, MiningConfig(strategy="dense"), retriever=retr)
    assert enc.calls > calls  # query encoding only: the corpus was encoded once, before
    b = mine_negatives(ds, MiningConfig(strategy="dense"), model=FakeEncoder())
    assert a.negatives == b.negatives
    with pytest.raises(ValueError, match="bm25"):
        mine_negatives(ds, MiningConfig(strategy="bm25"), retriever=retr)


def test_config_validation(ds):
    for bad in [dict(strategy="hard"), dict(num_negatives=0), dict(hard_source="x"), dict(hard_fraction=1.5),
                dict(skip_top=-1), dict(range_max=0), dict(relative_margin=-0.1)]:
        with pytest.raises(ValueError):
            mine_negatives(ds, MiningConfig(**bad))


# ------------------------------------------------------------------------------------------------
# Chinese BM25 path
# ------------------------------------------------------------------------------------------------


def test_zh_bm25_mines_chinese_negatives():
    zh = make_zh_dataset()
    result = mine_negatives(zh, MiningConfig(strategy="bm25", num_negatives=2, relative_margin=None))
    _assert_clean(zh, result, 2)
    assert result.report.counts["bm25"] > 0
    # 房屋 / 合同 are shared with the house query: its hard negative is the other contract doc
    house_hard = [d for d in result.negatives["zq_house"] if result.strategy_of[("zq_house", d)] == "bm25"]
    assert house_hard and house_hard[0] in {"house1", "law0"}
    assert all(re.search(r"[\u4e00-\u9fff]", zh.corpus[d]) for negs in result.negatives.values() for d in negs)


# ------------------------------------------------------------------------------------------------
# rows, triples, report, figure
# ------------------------------------------------------------------------------------------------


def test_triples_and_training_rows(ds, enc):
    result = mine_negatives(ds, MiningConfig(strategy="mixed", num_negatives=3), model=enc)
    triples = negatives_to_triples(ds, result)
    n_pos = sum(len(ds.positives(q)) for q in ds.queries)
    assert len(triples) == n_pos + 3 * len(_mined_qids(ds))
    assert all(set(t) == {"query", "passage", "score"} for t in triples)
    assert sum(t["score"] == 1.0 for t in triples) == n_pos

    from rerank_utils.training.samples import training_rows

    pairs = training_rows(ds, result.negatives, "bce")
    assert len(pairs) == len(triples)
    assert all(set(r) == {"query", "passage", "label"} for r in pairs)

    rows = training_rows(ds, result.negatives, "mnrl")
    assert len(rows) == n_pos  # one per (query, positive): q_two gives two
    assert all(list(r) == ["query", "positive", "negative_1", "negative_2", "negative_3"] for r in rows)
    two = [r for r in rows if r["query"] == ds.queries["q_two"]]
    assert len(two) == 2 and two[0]["negative_1"] == two[1]["negative_1"]

    result.negatives["q_dog"] = result.negatives["q_dog"][:1]
    with pytest.warns(UserWarning, match="1 queries skipped"):
        rows = training_rows(ds, result.negatives, "mnrl")
    assert len(rows) == n_pos - 1
    with pytest.raises(ValueError):
        training_rows(ds, result.negatives, "triplet")


def test_report_summary_and_examples(ds, enc):
    result = mine_negatives(ds, MiningConfig(strategy="mixed", num_negatives=4), model=enc)
    rep = result.report
    text = rep.summary()
    n_q = len(_mined_qids(ds))
    assert f"{4 * n_q} negatives for {n_q} queries" in text
    assert f"{rep.counts['dense']} dense" in text and f"{rep.counts['random']} random" in text
    assert f"dropped {rep.dropped_false_negative} likely false negatives" in text
    assert 0 < len(rep.examples) <= 5
    assert set(rep.examples[0]) == {"query", "positive", "negative", "strategy", "score"}
    assert len(rep.hard_scores) == rep.counts["dense"]
    assert len(rep.positive_scores) == n_q


def test_score_distribution_figure(ds, enc):
    from matplotlib.figure import Figure

    from rerank_utils.tutorial.plots import mining_score_distributions

    result = mine_negatives(ds, MiningConfig(strategy="dense"), model=enc)
    assert isinstance(mining_score_distributions(result.report), Figure)
    assert isinstance(mining_score_distributions(MiningReport()), Figure)


def test_dense_mining_with_the_faiss_backend_matches_exact(ds, enc):
    dev_extra("faiss")
    exact = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=3), model=enc)
    with_faiss = mine_negatives(ds, MiningConfig(strategy="dense", num_negatives=3, dense_backend="faiss"), model=enc)
    assert with_faiss.report.counts == exact.report.counts
    # the same negatives up to ties: a doc and its exact duplicate score the same, and FAISS orders ties its own way
    def hard_scores(result):
        return {q: sorted(round(result.scores[(q, d)], 5) for d in n if (q, d) in result.scores) for q, n in result.negatives.items()}

    assert hard_scores(with_faiss) == hard_scores(exact)
    with pytest.raises(ValueError, match="dense_backend must be 'exact' or 'faiss'"):
        MiningConfig(dense_backend="annoy").validate()
