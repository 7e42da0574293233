"""Tests for rerank_utils.labelling: proposals hardest first, the labels and skips files, resume, progress
and ratio, errors that name file/line/field, and the ipywidgets front end driven headlessly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from rerank_utils.data.records import DataValidationError, RetrievalDataset
from rerank_utils.data.sources import build_dataset, load_triples_file
from rerank_utils.labelling.candidates import (
    Candidate,
    hardest_first,
    load_texts,
    propose_candidates,
)
from rerank_utils.labelling.labeller import Labeller
from rerank_utils.labelling.simulation import (
    auto_label,
    label_curve,
    labelling_comparison,
    qrels_judge,
    simulate_labelling,
)
from rerank_utils.labelling.store import LabelStore, delete_labels, skips_path_for
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever

CORPUS = {
    "permit": "A building permit (bygglov) is granted by the municipality's building committee.",
    "permit-time": "A building permit decision usually takes ten weeks after a complete application.",
    "rot": "The ROT deduction covers labour costs for repairs, renovation and extensions of a home.",
    "rut": "The RUT deduction covers household services such as cleaning and gardening.",
    "radon": "Radon in a house can count as a hidden defect when the buyer could not find it.",
    "roof": "A roof should be inspected every few years; moss and broken tiles let water in.",
    "ftax": "F-tax (F-skatt) is the tax approval a business needs to invoice without tax deductions.",
    "carport": "A carport usually needs a building permit, unless it is small and close to the house.",
}
QUERIES = {
    "q-permit": "Who grants a building permit?",
    "q-rot": "What does the ROT deduction cover?",
    "q-radon": "Is radon a hidden defect in a house?",
}
QRELS = {"q-permit": {"permit": 1.0}, "q-rot": {"rot": 1.0}, "q-radon": {"radon": 1.0}}


@pytest.fixture
def ds():
    return RetrievalDataset(corpus=dict(CORPUS), queries=dict(QUERIES), qrels={q: dict(r) for q, r in QRELS.items()}, name="tiny")


@pytest.fixture
def candidates():
    return propose_candidates(QUERIES, CORPUS, "bm25", top_k=4)


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class FakeEncoder:
    """Hashed bag-of-words vectors: deterministic, no model needed."""

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False):
        out = np.zeros((len(texts), 128), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(w.encode()) % 128] += 1.0
        return out


# ------------------------------------------------------------------------------------------ proposals
def test_hardest_first_goes_rank_by_rank_across_queries():
    run = {"a": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "b": {"d2": 5.0, "d4": 1.0}}
    corpus = {"d1": "one", "d2": "two", "d3": "three", "d4": "four"}
    order = [(c.query_id, c.doc_id, c.rank) for c in hardest_first(run, {"a": "qa", "b": "qb"}, corpus)]
    assert order == [("a", "d1", 1), ("b", "d2", 1), ("a", "d2", 2), ("b", "d4", 2), ("a", "d3", 3)]


def test_hardest_first_proposes_a_repeated_text_once_at_its_best_rank():
    run = {"a": {"x": 2.0, "y": 1.0}}
    cands = hardest_first(run, {"a": "q"}, {"x": "same text", "y": " same text "})
    assert [(c.doc_id, c.rank) for c in cands] == [("x", 1)]
    with pytest.raises(KeyError, match="'zzz'.*not in the corpus"):
        hardest_first({"a": {"zzz": 1.0}}, {"a": "q"}, {"x": "t"})


def test_bm25_candidates_follow_the_first_stage_ranking(candidates):
    run = BM25Retriever(CORPUS).search(QUERIES, top_k=4)
    assert len(candidates) == sum(len(r) for r in run.values())
    ranks = [c.rank for c in candidates]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert [c.query_id for c in candidates[:3]] == list(QUERIES)  # every query's rank 1 first
    for qid, ranked in run.items():
        mine = [c.doc_id for c in candidates if c.query_id == qid]
        assert mine == list(ranked)  # within a query: the first stage's order
    assert candidates[0].doc_id == "permit" and candidates[0].first_stage_score == pytest.approx(run["q-permit"]["permit"])


def test_dense_candidates_load_the_bi_encoder_by_name(monkeypatch):
    import rerank_utils.labelling.candidates as candidates_module

    loaded = []
    monkeypatch.setattr(candidates_module, "load_bi_encoder", lambda name="default", device=None: loaded.append((name, device)) or FakeEncoder())
    cands = propose_candidates(QUERIES, CORPUS, "dense", top_k=2, model="default", device="cpu")
    assert loaded == [("default", "cpu")]
    assert len(cands) == 2 * len(QUERIES)  # dense search returns exactly top_k per query
    expected = DenseRetriever(CORPUS, FakeEncoder()).search(QUERIES, top_k=2)
    assert [(c.query_id, c.doc_id) for c in cands] == [(q, list(expected[q])[r]) for r in range(2) for q in QUERIES]
    # a retriever object, and a ready run, work too
    assert propose_candidates(QUERIES, CORPUS, DenseRetriever(CORPUS, FakeEncoder()), top_k=2) == cands
    assert propose_candidates(QUERIES, CORPUS, expected, top_k=1) == cands[:3]


def test_proposals_reject_bad_input():
    with pytest.raises(ValueError, match="first_stage must be one of 'bm25', 'dense'"):
        propose_candidates(QUERIES, CORPUS, "tfidf")
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        propose_candidates(QUERIES, CORPUS, top_k=0)
    with pytest.raises(ValueError, match="document 'b' is the string '  '"):
        propose_candidates(QUERIES, {"a": "text", "b": "  "})
    with pytest.raises(ValueError, match="query 'q' is null"):
        propose_candidates({"q": None}, CORPUS)
    with pytest.raises(ValueError, match="corpus is empty"):
        propose_candidates(QUERIES, {})
    # a list of queries gets the ids "0", "1", ...
    assert {c.query_id for c in propose_candidates(["building permit", "roof water"], CORPUS)} == {"0", "1"}


# ------------------------------------------------------------------------------------------ the files
def test_labels_file_holds_the_guides_triples_and_validates(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path)
    first = lab.current
    lab.relevant()
    lab.not_relevant()
    lab.label(("  What is F-tax?  ", " F-tax is a tax approval. "), 1.0)  # a pair of one's own, stripped
    rows = _lines(path)
    assert rows[0] == {"query": first.query, "passage": first.passage, "score": 1}
    assert rows[1]["score"] == 0 and rows[2] == {"query": "What is F-tax?", "passage": "F-tax is a tax approval.", "score": 1}
    assert all(set(r) == {"query", "passage", "score"} for r in rows)  # nothing but the guide's fields
    records, report = load_triples_file(path, require_positive=False)
    assert report.ok and len(records) == 3
    assert lab.validate()[1].n_kept == 3


def test_export_keeps_the_queries_with_a_positive_and_loads_as_a_dataset(tmp_path, candidates):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    auto_label(lab, lambda c: int(c.rank == 1 and c.query_id != "q-radon"), 6)  # ranks 1 and 2 of each query
    assert {r["query_id"]: r["positives"] for r in lab.per_query()} == {"q-permit": 1, "q-rot": 1, "q-radon": 0}
    with pytest.raises(DataValidationError, match="no valid record with score >= 0.5"):
        load_triples_file(lab.path)  # strict and require_positive: the radon query has only negatives
    out = lab.export_training_file()
    assert out == {"path": str(tmp_path / "labels.train.jsonl"), "pairs": 4, "queries": 2, "queries_left_out": 1, "pairs_left_out": 2}
    records, report = load_triples_file(out["path"])  # as build_dataset reads a data_source: passes as is
    assert report.ok and len(records) == 4 and {r["query"] for r in records} == {QUERIES["q-permit"], QUERIES["q-rot"]}
    trained = build_dataset(out["path"])
    assert len(trained.queries) == 2 and all(len(trained.positives(q)) == 1 for q in trained.queries)
    with pytest.raises(ValueError, match="another file"):
        lab.export_training_file(lab.path)


def test_export_with_no_positive_says_so(tmp_path, candidates):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    lab.not_relevant()
    with pytest.raises(ValueError, match="no query has a relevant passage yet"):
        lab.export_training_file()


def test_skips_go_to_the_sidecar_not_to_the_triples(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path)
    skipped = lab.skip()
    lab.relevant()
    assert skips_path_for(path) == tmp_path / "labels.skipped.jsonl"
    assert _lines(skips_path_for(path)) == [{"query": skipped[0], "passage": skipped[1]}]
    assert len(_lines(path)) == 1 and load_triples_file(path, require_positive=False)[1].ok
    # labelling a skipped pair later replaces the skip
    lab.label(skipped, 0)
    assert _lines(skips_path_for(path)) == [] and len(_lines(path)) == 2
    assert lab.progress()["skipped"] == 0


def test_resume_continues_where_it_stopped(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path)
    decided = [lab.relevant(), lab.not_relevant(), lab.skip(), lab.not_relevant()]
    next_up = lab.current
    before = lab.progress()
    again = Labeller(candidates, path)  # a new session on the same files
    assert again.current == next_up
    assert again.progress() == before and before["labelled"] == 3 and before["skipped"] == 1
    assert not {c.pair for c in again.remaining()} & set(decided)  # labelled and skipped: never proposed again
    assert again.undo() is None  # undo is this session's own
    auto_label(again, lambda c: 0)
    assert again.current is None and again.progress()["remaining"] == 0
    assert len(_lines(path)) == len(candidates) - 1  # every label once; the skip only in the sidecar


def test_labels_survive_a_kernel_that_dies(tmp_path, candidates):
    """A separate process labels three pairs and is killed with os._exit (no cleanup, no close)."""
    path = tmp_path / "labels.jsonl"
    script = textwrap.dedent(
        f"""
        import os
        from rerank_utils.labelling.labeller import Labeller
        from rerank_utils.labelling.candidates import propose_candidates
        corpus, queries = {CORPUS!r}, {QUERIES!r}
        lab = Labeller(propose_candidates(queries, corpus, "bm25", top_k=4), {str(path)!r})
        lab.relevant(); lab.not_relevant(); lab.skip(); lab.not_relevant()
        os._exit(1)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    resumed = Labeller(candidates, path)
    assert resumed.progress()["labelled"] == 3 and resumed.progress()["skipped"] == 1
    assert resumed.current == candidates[4]


def test_two_labellers_on_one_file_never_write_a_pair_twice(tmp_path, candidates):
    """E.g. an old widget still on screen after its cell was run again in the same kernel."""
    path = tmp_path / "labels.jsonl"
    a, b = Labeller(candidates, path), Labeller(candidates, path)
    first = a.relevant()
    assert b.current.pair != first  # b sees a's label before proposing
    second = b.not_relevant()
    with pytest.raises(ValueError, match="already labelled 0"):
        a.label(second, 1)
    assert a.label(second, 0) == second and a.current == candidates[2]
    b.skip()
    assert a.progress()["skipped"] == 1
    records, report = load_triples_file(path, require_positive=False)
    assert report.ok and len(records) == 2
    # a hand edit while the labeller lives is picked up too
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert a.progress()["labelled"] == 1 and a.current == candidates[1]


def test_a_label_is_on_disk_when_the_call_returns(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path, fsync=False)
    for n in range(1, 4):
        lab.not_relevant()
        assert len(path.read_text(encoding="utf-8").splitlines()) == n  # read while the labeller lives


def test_non_ascii_text_is_kept(tmp_path):
    cands = propose_candidates({"z": "什么是证券法？"}, {"s": "证券法是规范证券发行和交易的法律。", "c": "民法典是基础性法律。"}, top_k=2)
    lab = Labeller(cands, tmp_path / "zh.jsonl")
    lab.relevant()
    text = (tmp_path / "zh.jsonl").read_text(encoding="utf-8")
    assert "证券法" in text and "\\u" not in text


def test_a_file_without_a_final_newline_is_appended_to_safely(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"query": "hand written", "passage": "by a person", "score": 1}', encoding="utf-8")
    lab = Labeller(candidates, path)
    lab.not_relevant()
    assert [r["query"] for r in _lines(path)] == ["hand written", candidates[0].query]
    assert lab.progress()["labels_in_file"] == 2 and lab.progress()["labelled"] == 1


# ------------------------------------------------------------------------------------------ decisions
def test_undo_relabel_and_repeated_labels(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path)
    a = lab.relevant()
    b = lab.skip()
    assert lab.undo() == b and lab.current.pair == b and _lines(skips_path_for(path)) == []
    assert lab.undo() == a and lab.current.pair == a and path.read_text(encoding="utf-8") == ""
    assert lab.undo() is None
    lab.label(a, 1)
    assert lab.label(a, 1) == a and len(_lines(path)) == 1  # the same label again: nothing happens
    with pytest.raises(ValueError, match=r"already labelled 1; call relabel\(pair, 0\)"):
        lab.label(a, 0)
    with pytest.raises(ValueError, match="skip\\(\\) is for undecided pairs"):
        lab.skip(a)
    lab.relabel(a, 0)
    assert _lines(path) == [{"query": a[0], "passage": a[1], "score": 0}]
    assert not list(tmp_path.glob("*.tmp"))  # the rewrite went through a temporary file, then replaced


@pytest.mark.parametrize("value", [2, -1, "yes", None, float("nan")])
def test_a_label_is_one_or_zero(tmp_path, candidates, value):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    with pytest.raises(ValueError, match="a label is 1 \\(relevant\\) or 0 \\(not relevant\\)"):
        lab.label(None, value)
    assert not (tmp_path / "labels.jsonl").exists()  # nothing written


def test_pairs_must_be_candidates_or_text_tuples(tmp_path, candidates):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    with pytest.raises(TypeError, match="pair must be a Candidate"):
        lab.label(("only a query",), 1)
    with pytest.raises(TypeError, match="candidates must be Candidate objects"):
        Labeller([("q", "p")], tmp_path / "other.jsonl")
    with pytest.raises(ValueError, match="candidate \\('q', 'd'\\) has an empty query or passage"):
        Labeller([Candidate("q", "d", "query", " ", 1, 0.0)], tmp_path / "other.jsonl")
    with pytest.raises(ValueError, match="must be .jsonl"):
        Labeller(candidates, tmp_path / "labels.csv")
    done = Labeller(candidates[:1], tmp_path / "one.jsonl")
    done.relevant()
    with pytest.raises(ValueError, match="nothing left to label"):
        done.relevant()


# ------------------------------------------------------------------------------------------ progress and ratio
def test_progress_per_query_and_ratio(tmp_path, candidates, ds):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    assert lab.ratio() is None and lab.ratio_advice() == "no labels yet"
    lab.not_relevant()
    assert lab.ratio() is None and "no relevant pair yet" in lab.ratio_advice()
    auto_label(lab, qrels_judge(ds), 5)  # 6 decisions in all: ranks 1 and 2 of the 3 queries
    p = lab.progress()
    assert p["proposed"] == len(candidates) and p["labelled"] == 6 and p["skipped"] == 0
    assert p["labelled"] + p["skipped"] + p["remaining"] == p["proposed"]
    assert p["negatives_per_positive"] == pytest.approx(p["negatives"] / p["positives"])
    assert p["ratio"] == f"1:{p['negatives'] / p['positives']:.1f}"
    rows = lab.per_query()
    assert [r["query_id"] for r in rows] == list(QUERIES)
    assert sum(r["positives"] for r in rows) == p["positives"] and sum(r["labelled"] for r in rows) == 6
    assert all(r["labelled"] + r["skipped"] + r["remaining"] == r["proposed"] for r in rows)
    assert p["queries_with_positive"] == sum(1 for r in rows if r["positives"])
    assert "labelled 6 of" in lab.status_line()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [([1, 1, 0], "1:0.5, more positives than negatives"), ([1, 0, 0], "1:2.0, within the guide's 1:1 to 1:4"),
     ([1, 0, 0, 0, 0, 0], "1:5.0, past the guide's 1:4")],
)
def test_ratio_advice_follows_the_guide(tmp_path, labels, expected):
    lab = Labeller([], tmp_path / "labels.jsonl")
    for i, value in enumerate(labels):
        lab.label((f"query {i}", f"passage {i}"), value)
    assert expected in lab.ratio_advice()


# ------------------------------------------------------------------------------------------ bad files
def test_a_corrupt_labels_file_names_its_line_and_field(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"query": "a", "passage": "b", "score": 1}\n'
        '{"query": "a", "passage": "c", "score": "yes"}\n'
        "not json\n"
        '{"query": "a", "passage": "d", "label": 0}\n',
        encoding="utf-8",
    )
    before = path.read_bytes()
    with pytest.raises(DataValidationError) as info:
        Labeller(candidates, path)
    text = str(info.value)
    assert f"{path}:line 2: field 'score' is the string 'yes'" in text
    assert f"{path}:line 3: not valid JSON" in text
    assert f"{path}:line 4: field 'score' is missing" in text and "'label' is not part of the triples format" in text
    assert "then create the Labeller again; nothing was written" in text
    assert path.read_bytes() == before and not skips_path_for(path).exists()


def test_a_torn_last_line_is_explained(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"query": "a", "passage": "b", "score": 1}\n{"query": "a", "pass', encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"(?s)line 2: not valid JSON.*line 2 does not end with a newline"):
        Labeller(candidates, path)


def test_a_torn_last_line_nested_too_deeply_is_explained_too(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"query": "a", "passage": "b", "score": 1}\n' + "[" * 5000, encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"(?s)line 2: JSON nested too deeply.*line 2 does not end with a newline"):
        Labeller(candidates, path)


def test_a_corrupt_skips_file_names_its_line_and_field(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    skips_path_for(path).write_text('{"query": "a", "passage": "b"}\n{"query": "a"}\n[1]\n{"query": "a", "passage": 3}\n', encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        Labeller(candidates, path)
    text = str(info.value)
    assert "labels.skipped.jsonl:line 2: field 'passage' is missing" in text
    assert "labels.skipped.jsonl:line 3: line is a list" in text
    assert "labels.skipped.jsonl:line 4: field 'passage' is a number (3)" in text
    assert not path.exists()


def test_delete_labels_removes_both_files(tmp_path, candidates):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates, path)
    lab.relevant()
    lab.skip()
    delete_labels(path)
    assert not path.exists() and not skips_path_for(path).exists()
    delete_labels(path)  # nothing there: fine
    assert LabelStore(path).labels == {}


# ------------------------------------------------------------------------------------------ the widget, headless
def test_widget_buttons_call_the_labeller(tmp_path, candidates, ds):
    path = tmp_path / "labels.jsonl"
    lab = Labeller(candidates[:4], path)
    w = lab.widget(passage_chars=20)
    first = lab.current
    assert first.query in w.query_html.value and w.passage_html.value.endswith(" …")
    assert w.undo_button.disabled  # nothing to undo yet
    w.relevant_button.click()
    w.not_relevant_button.click()
    w.skip_button.click()
    assert [r["score"] for r in _lines(path)] == [1, 0] and len(_lines(skips_path_for(path))) == 1
    assert w.progress_bar.value == 3 and "labelled 2 of 4 proposed (skipped 1, 1 to go)" in w.status_html.value
    w.undo_button.click()  # takes back the skip
    assert lab.current == candidates[2] and w.progress_bar.value == 2
    assert html_unescape(candidates[2].query) in html_unescape(w.query_html.value)
    w.button_for(qrels_judge(ds)(lab.current)).click()
    w.button_for(None).click()
    assert lab.current is None and "Done" in w.query_html.value
    assert w.relevant_button.disabled and w.skip_button.disabled and not w.undo_button.disabled
    assert "application/vnd.jupyter.widget-view+json" in w._repr_mimebundle_()
    # a resumed widget shows the same progress
    assert Labeller(candidates[:4], path).widget().progress_bar.value == 4


def html_unescape(text):
    import html

    return html.unescape(text)


def test_widget_shows_an_error_instead_of_losing_it(tmp_path, candidates, monkeypatch):
    lab = Labeller(candidates, tmp_path / "labels.jsonl")
    w = lab.widget()

    def full_disk(path, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lab.store, "_append", full_disk)
    w.relevant_button.click()
    assert isinstance(w.last_error, OSError) and "No space left on device" in w.message.value
    assert lab.progress()["labelled"] == 0 and lab.current == candidates[0]  # nothing recorded, same pair shown
    monkeypatch.undo()
    w.relevant_button.click()
    assert w.last_error is None and w.message.value == "" and lab.progress()["labelled"] == 1


# ------------------------------------------------------------------------------------------ simulation and comparison
def test_qrels_judge_auto_label_and_curve(tmp_path, candidates, ds):
    judge = qrels_judge(ds)
    assert judge(Candidate("q-permit", "permit", "q", "p", 1, 1.0)) == 1
    assert judge(Candidate("q-permit", "rot", "q", "p", 2, 0.5)) == 0
    lab = simulate_labelling(candidates, lambda c: None if c.rank == 2 else judge(c), tmp_path / "sim.jsonl", 7)
    p = lab.progress()
    assert p["labelled"] + p["skipped"] == 7 and p["skipped"] == sum(1 for c in candidates[:7] if c.rank == 2)
    curve = label_curve(lab.path, n_queries=3)
    assert [r["labels"] for r in curve] == list(range(1, p["labelled"] + 1))
    assert curve[-1]["positives"] == p["positives"] and curve[-1]["negatives"] == p["negatives"]
    assert curve[-1]["queries_with_positive"] == p["queries_with_positive"]
    assert curve[-1]["share_of_queries_with_positive"] == pytest.approx(p["queries_with_positive"] / 3)
    # simulate_labelling starts afresh
    assert simulate_labelling(candidates, judge, tmp_path / "sim.jsonl", 2).progress()["labelled"] == 2


def test_labelling_comparison_spends_the_same_budget_on_each_first_stage(tmp_path, ds, candidates):
    dense = DenseRetriever(CORPUS, FakeEncoder())
    table, curves = labelling_comparison(ds, ["bm25", dense], tmp_path, budget=6, top_k=4, candidates={"bm25": candidates})
    assert list(table) == ["BM25", "DenseRetriever"]
    for name, row in table.items():
        assert row["pairs labelled"] == 6 == row["relevant"] + row["not relevant"]
        assert 0 <= row["known answers found"] <= 1 and row["known answers found"] == pytest.approx(row["relevant"] / 3)
        assert row["share of queries"] == pytest.approx(row["queries with a relevant passage"] / 3)
        assert len(curves[name]) == 6
    assert (tmp_path / "compare_BM25.jsonl").is_file()
    from rerank_utils.tutorial.plots import label_curves

    fig = label_curves(curves, n_queries=3)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2


# ------------------------------------------------------------------------------------------ your own texts
def test_load_texts_reads_txt_and_jsonl(tmp_path):
    txt = tmp_path / "queries.txt"
    txt.write_text("Who grants a permit?\n\n  What is ROT?  \n", encoding="utf-8")
    assert load_texts(txt, "query") == {"1": "Who grants a permit?", "3": "What is ROT?"}
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text('{"_id": "a", "text": "Permit text."}\n{"_id": "b", "title": "Only a title", "text": ""}\n', encoding="utf-8")
    assert load_texts(jsonl) == {"a": "Permit text.", "b": "Only a title"}


def test_load_texts_names_the_bad_lines(tmp_path):
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n{"text": "z"}\n{"_id": "c", "text": ""}\n', encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        load_texts(bad)
    text = str(info.value)
    assert f"{bad}:line 2: _id 'a' is also at line 1" in text
    assert f"{bad}:line 3: field '_id' is missing" in text
    assert f"{bad}:line 4: field 'text' is empty" in text
    undecodable = tmp_path / "q.txt"
    undecodable.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataValidationError, match="q.txt:line 2: line is not valid UTF-8"):
        load_texts(undecodable)
    other = tmp_path / "corpus.csv"
    other.write_text("_id,text\na,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="use a .txt file"):
        load_texts(other)
    with pytest.raises(FileNotFoundError):
        load_texts(tmp_path / "missing.txt")
