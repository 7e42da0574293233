"""Builders of rerank_utils.data.sources on small fixtures the tests write: QASPER through the real
``datasets`` loading route (parquet, JSON Lines, the original release's JSON), MS MARCO TSVs, the
dispatcher, and the Chinese sample shipped in data/."""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from rerank_utils.data import qasper as qasper_module
from rerank_utils.data import sources as sources_module
from rerank_utils.data.hub import HubDatasetUnavailable, _hub_reachable
from rerank_utils.data.msmarco import load_msmarco_dataset, load_msmarco_triples
from rerank_utils.data.qasper import (
    load_qasper_papers,
    qasper_to_dataset,
    qasper_to_triples,
)
from rerank_utils.data.records import DataValidationError, RetrievalDataset
from rerank_utils.data.sources import build_dataset, load_beir_folder, load_triples_file
from rerank_utils.data.triples import read_triples, validate_triples

REPO = Path(__file__).resolve().parents[3]
ZH_SAMPLE = REPO / "data" / "zh_legal_sample.jsonl"
CJK = re.compile(r"[\u4e00-\u9fff]")


# --------------------------------------------------------------------------------------------------
# A tiny QASPER in the hub schema
# --------------------------------------------------------------------------------------------------


def _para(paper: str, s: int, p: int) -> str:
    return (
        f"Paper {paper}, section {s}, paragraph {p}: this paragraph describes part {s}.{p} of the work in "
        f"enough words to be a real paragraph of a research paper."
    )


def _answer(evidence=(), unanswerable=False, highlighted=()):
    return {
        "unanswerable": unanswerable,
        "extractive_spans": [],
        "yes_no": None,
        "free_form_answer": "" if unanswerable else "some answer",
        "evidence": list(evidence),
        "highlighted_evidence": list(highlighted),
    }


def _paper(pid, title, sections, questions):
    """sections: [(name, [paragraphs])]; questions: [(qid, text, [answer dicts])]."""
    return {
        "id": pid,
        "title": title,
        "abstract": f"Abstract of {title}.",
        "full_text": {"section_name": [n for n, _ in sections], "paragraphs": [list(ps) for _, ps in sections]},
        "qas": {
            "question": [t for _, t, _ in questions],
            "question_id": [q for q, _, _ in questions],
            "nlp_background": ["five" for _ in questions],
            "answers": [
                {
                    "answer": answers,
                    "annotation_id": [f"{qid}-ann{i}" for i in range(len(answers))],
                    "worker_id": [f"w{i}" for i in range(len(answers))],
                }
                for qid, _, answers in questions
            ],
        },
        "figures_and_tables": {"caption": ["Table 1: results."], "file": ["1-Table1-1.png"]},
    }


def make_papers() -> list[dict]:
    a = [("Introduction", [_para("A", 0, j) for j in range(3)]),
         ("Method", [_para("A", 1, j) for j in range(4)]),
         ("Results", [_para("A", 2, j) for j in range(3)] + ["See Table 1."])]
    intro1_sentence = "Paper A, section 0, paragraph 1: this paragraph describes part 0.1"
    paper_a = _paper("2001.00001", "Paper A", a, [
        ("qA1", "What dataset do they use?", [
            _answer([_para("A", 1, 0)]),
            _answer([_para("A", 1, 0), _para("A", 2, 1), "FLOAT SELECTED: Table 1: Dataset statistics."],
                    highlighted=[intro1_sentence]),
        ]),
        ("qA2", "Do they release their code?", [_answer(unanswerable=True), _answer(unanswerable=True)]),
        ("qA3", "Which table shows the results?", [_answer(["FLOAT SELECTED: Table 2: Results."])]),
    ])
    b = [("Intro", [_para("B", 0, j) for j in range(2)]), ("Experiments", [_para("B", 1, j) for j in range(3)])]
    paper_b = _paper("2001.00002", "Paper B", b, [
        ("qB1", "How big is the corpus?", [_answer([_para("B", 0, 1), "A sentence that is in no paragraph of this paper."])]),
        # evidence with other whitespace than the paragraph: still found
        ("qB2", "What metric is used?", [_answer(["  " + _para("B", 1, 0).replace(" ", "\n ", 2) + " "])]),
    ])
    c = [("Body", [_para("C", 0, j) for j in range(3)] + ["Short one."])]
    paper_c = _paper("2001.00003", "Paper C", c, [
        ("qC1", "What is the baseline?", [_answer([_para("C", 0, 0)])]),
        ("qC2", "What is the baseline?", [_answer([_para("C", 0, 1)])]),  # same text: merged with qC1
    ])
    return [paper_a, paper_b, paper_c]


# evidence paragraph texts per query, and how many negative candidates each query has
EVIDENCE = {
    "What dataset do they use?": {_para("A", 1, 0), _para("A", 2, 1)},
    "How big is the corpus?": {_para("B", 0, 1)},
    "What metric is used?": {_para("B", 1, 0)},
    "What is the baseline?": {_para("C", 0, 0), _para("C", 0, 1)},
}
PAPER_OF = {"What dataset do they use?": "2001.00001", "How big is the corpus?": "2001.00002",
            "What metric is used?": "2001.00002", "What is the baseline?": "2001.00003"}
CANDIDATES = {"What dataset do they use?": 7, "How big is the corpus?": 4, "What metric is used?": 4,
              "What is the baseline?": 1}
EXPECTED_STATS = {
    "n_papers": 3, "n_questions": 7, "n_duplicate_questions_merged": 1, "n_with_evidence": 4,
    "n_skipped_no_evidence": 2, "n_unanswerable": 1, "n_float_evidence_skipped": 2,
    "n_evidence_not_found": 1, "n_positives": 6, "n_negatives": 13, "n_short_of_negatives": 1,
    "n_duplicate_pairs_skipped": 0,
}


def _write_parquet(papers, path: Path) -> None:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(papers).to_parquet(str(path))


def _write_jsonl(papers, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")


def _to_release_format(papers) -> dict:
    """The original AllenAI release: {paper_id: {..., full_text: [{section_name, paragraphs}], qas: [...]}}."""
    out = {}
    for p in papers:
        qas = []
        for i, q in enumerate(p["qas"]["question"]):
            group = p["qas"]["answers"][i]
            qas.append({
                "question": q,
                "question_id": p["qas"]["question_id"][i],
                "answers": [{"answer": a, "annotation_id": aid, "worker_id": w}
                            for a, aid, w in zip(group["answer"], group["annotation_id"], group["worker_id"])],
            })
        out[p["id"]] = {
            "title": p["title"], "abstract": p["abstract"],
            "full_text": [{"section_name": n, "paragraphs": ps}
                          for n, ps in zip(p["full_text"]["section_name"], p["full_text"]["paragraphs"])],
            "qas": qas, "figures_and_tables": [],
        }
    return out


@pytest.fixture(scope="module")
def qasper_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qasper")
    papers = make_papers()
    extra = _paper("2002.00009", "Validation paper", [("S", [_para("V", 0, 0), _para("V", 0, 1)])],
                   [("qV1", "What is validated?", [_answer([_para("V", 0, 0)])])])
    # the layout of the hub's parquet conversion: <config>/<split>/0000.parquet
    _write_parquet(papers, root / "parquet" / "qasper" / "train" / "0000.parquet")
    _write_parquet([extra], root / "parquet" / "qasper" / "validation" / "0000.parquet")
    _write_jsonl(papers, root / "jsonl" / "papers.jsonl")  # no split names: the folder is the split
    (root / "release").mkdir()
    (root / "release" / "qasper-train-v0.3.json").write_text(json.dumps(_to_release_format(papers)), encoding="utf-8")
    (root / "release" / "qasper-dev-v0.3.json").write_text(json.dumps(_to_release_format([extra])), encoding="utf-8")
    return {"root": root, "cache": root / "hf-cache", "papers": papers}


@pytest.fixture(scope="module")
def loaded_papers(qasper_dirs):
    return load_qasper_papers(split="train", source=qasper_dirs["root"] / "parquet", cache_dir=qasper_dirs["cache"])


# --------------------------------------------------------------------------------------------------
# QASPER loading
# --------------------------------------------------------------------------------------------------


def _summary(papers):
    return [
        (p["id"], p["title"], p["full_text"]["section_name"], p["full_text"]["paragraphs"],
         list(p["qas"]["question"]), list(p["qas"]["question_id"]),
         [[(a["unanswerable"], list(a["evidence"]), list(a["highlighted_evidence"])) for a in g["answer"]]
          for g in p["qas"]["answers"]])
        for p in papers
    ]


def test_load_qasper_parquet_folder_keeps_schema(qasper_dirs, loaded_papers):
    assert _summary(loaded_papers) == _summary(qasper_dirs["papers"])
    paper = loaded_papers[0]
    assert set(paper) >= {"id", "title", "abstract", "full_text", "qas", "figures_and_tables"}
    assert set(paper["qas"]["answers"][0]) == {"answer", "annotation_id", "worker_id"}
    assert paper["qas"]["answers"][0]["annotation_id"] == ["qA1-ann0", "qA1-ann1"]
    assert paper["qas"]["nlp_background"] == ["five", "five", "five"]  # other question fields kept


def test_load_qasper_picks_the_split(qasper_dirs):
    val = load_qasper_papers(split="validation", source=qasper_dirs["root"] / "parquet", cache_dir=qasper_dirs["cache"])
    assert [p["id"] for p in val] == ["2002.00009"]
    with pytest.raises(FileNotFoundError, match="test"):
        load_qasper_papers(split="test", source=qasper_dirs["root"] / "parquet", cache_dir=qasper_dirs["cache"])
    with pytest.raises(ValueError, match="split"):
        load_qasper_papers(split="dev-set", source=qasper_dirs["root"] / "parquet")


def test_load_qasper_jsonl_folder_and_file(qasper_dirs):
    folder = load_qasper_papers(source=qasper_dirs["root"] / "jsonl", cache_dir=qasper_dirs["cache"])
    single = load_qasper_papers(source=qasper_dirs["root"] / "jsonl" / "papers.jsonl", cache_dir=qasper_dirs["cache"])
    assert _summary(folder) == _summary(single) == _summary(qasper_dirs["papers"])


def test_load_qasper_original_release_json(qasper_dirs):
    train = load_qasper_papers(split="train", source=qasper_dirs["root"] / "release")
    assert _summary(train) == _summary(qasper_dirs["papers"])
    dev = load_qasper_papers(split="validation", source=qasper_dirs["root"] / "release")
    assert [p["id"] for p in dev] == ["2002.00009"]


def test_load_qasper_list_of_struct_parquet(qasper_dirs, tmp_path):
    """Parquet written by plain pyarrow with the release's list-of-dicts layout loads the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    release = _to_release_format(qasper_dirs["papers"])
    rows = [{"id": pid, **paper} for pid, paper in release.items()]
    for r in rows:
        r.pop("figures_and_tables")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    papers = load_qasper_papers(source=tmp_path / "train.parquet", cache_dir=tmp_path / "cache")
    assert _summary(papers) == _summary(qasper_dirs["papers"])


def test_missing_local_source_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_qasper_papers(source=str(tmp_path / "nowhere" / "qasper.parquet"))


def test_hub_id_offline_fails_fast_with_guidance(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubDatasetUnavailable) as info:
        load_qasper_papers(split="train")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "gpu" in message and "source=" in message and "allenai/qasper" in message
    assert "HF_HUB_OFFLINE" in message
    assert isinstance(info.value, ConnectionError)


def test_hub_id_unreachable_fails_fast(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert _hub_reachable(timeout=1) is False
    start = time.monotonic()
    with pytest.raises(HubDatasetUnavailable, match="cannot be reached"):
        load_qasper_papers(split="validation", source="allenai/qasper", hub_timeout=1)
    assert time.monotonic() - start < 5


def test_hub_route_asks_for_the_parquet_conversion(monkeypatch, qasper_dirs):
    """With the hub reachable, the hub id goes to load_dataset on refs/convert/parquet, config qasper."""

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return [copy.deepcopy(p) for p in qasper_dirs["papers"]]

    monkeypatch.setattr(qasper_module, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(qasper_module, "load_dataset", fake_load_dataset)
    papers = load_qasper_papers(split="validation")
    assert [p["id"] for p in papers] == ["2001.00001", "2001.00002", "2001.00003"]
    path, kwargs = calls[0]
    assert path == "allenai/qasper"
    assert kwargs["revision"] == "refs/convert/parquet"
    assert kwargs["data_files"] == {"validation": "qasper/validation/*.parquet"}
    assert kwargs["split"] == "validation"
    load_qasper_papers(split="test", config="other", data_files={"test": "x/*.parquet"}, cache_dir="/tmp/c")
    assert calls[1][1]["data_files"] == {"test": "x/*.parquet"} and calls[1][1]["cache_dir"] == "/tmp/c"
    load_qasper_papers(split="train", source="someone/qasper-mirror", revision="main")
    assert calls[2][0] == "someone/qasper-mirror" and calls[2][1]["data_files"] is None

    def lost_connection(path, **kwargs):
        raise ConnectionError("Couldn't reach 'allenai/qasper' on the Hub (ConnectError)")

    monkeypatch.setattr(qasper_module, "load_dataset", lost_connection)
    with pytest.raises(HubDatasetUnavailable, match="source="):
        load_qasper_papers()


def test_hub_reachable_respects_datasets_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.monotonic()
    assert _hub_reachable() is False
    assert time.monotonic() - start < 0.5


# --------------------------------------------------------------------------------------------------
# QASPER -> triples
# --------------------------------------------------------------------------------------------------


def _by_query(records):
    out = defaultdict(lambda: {"pos": [], "neg": []})
    for r in records:
        out[r["query"]]["pos" if r["score"] == 1 else "neg"].append(r)
    return out


def test_qasper_triples_positives_are_exactly_the_evidence(loaded_papers):
    records, stats = qasper_to_triples(loaded_papers)
    assert stats == EXPECTED_STATS
    assert all(set(r) == {"query", "passage", "score", "paper_id"} for r in records)
    groups = _by_query(records)
    assert set(groups) == set(EVIDENCE)  # unanswerable / table-only questions skipped
    for query, g in groups.items():
        assert {r["passage"] for r in g["pos"]} == EVIDENCE[query]
        assert len(g["pos"]) == len(EVIDENCE[query])
        assert all(r["paper_id"] == PAPER_OF[query] for r in g["pos"] + g["neg"])
    assert not any(r["passage"].startswith("FLOAT SELECTED") for r in records)


def test_qasper_negatives_same_paper_never_evidence(loaded_papers):
    records, _ = qasper_to_triples(loaded_papers, negatives_per_positive=3)
    paragraphs_of = {
        p["id"]: {t for ps in p["full_text"]["paragraphs"] for t in ps} for p in loaded_papers
    }
    for query, g in _by_query(records).items():
        negs = [r["passage"] for r in g["neg"]]
        assert len(negs) == len(set(negs))
        for passage in negs:
            assert passage in paragraphs_of[PAPER_OF[query]]
            assert passage not in EVIDENCE[query]
            assert len(passage) >= 50  # min_paragraph_chars: "See Table 1." is never a negative
        assert len(negs) == min(3 * len(g["pos"]), CANDIDATES[query])
    # the paragraph holding a highlighted span of qA1 (not in its evidence) is no negative for it
    negs_a1 = {r["passage"] for r in _by_query(records)["What dataset do they use?"]["neg"]}
    assert _para("A", 0, 1) not in negs_a1
    pairs = [(r["query"], r["passage"]) for r in records]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_qasper_negative_ratio(loaded_papers, k):
    records, stats = qasper_to_triples(loaded_papers, negatives_per_positive=k)
    for query, g in _by_query(records).items():
        assert len(g["neg"]) == min(k * len(g["pos"]), CANDIDATES[query])
    assert stats["n_negatives"] == sum(min(k * len(EVIDENCE[q]), CANDIDATES[q]) for q in EVIDENCE)
    with pytest.raises(ValueError):
        qasper_to_triples(loaded_papers, negatives_per_positive=-1)


def test_qasper_triples_deterministic_and_seeded(loaded_papers):
    first, s1 = qasper_to_triples(loaded_papers, negatives_per_positive=1, seed=7)
    again, s2 = qasper_to_triples(copy.deepcopy(loaded_papers), negatives_per_positive=1, seed=7)
    assert first == again and s1 == s2
    others = [qasper_to_triples(loaded_papers, negatives_per_positive=1, seed=s)[0] for s in range(8)]
    assert any(o != first for o in others)
    # a paper's triples do not depend on which other papers are in the list
    alone, _ = qasper_to_triples(loaded_papers[1:2], negatives_per_positive=1, seed=7)
    assert alone == [r for r in first if r["paper_id"] == "2001.00002"]


def test_qasper_min_paragraph_chars(loaded_papers):
    records, _ = qasper_to_triples(loaded_papers, min_paragraph_chars=10_000)
    assert all(r["score"] == 1 for r in records)  # no paragraph is long enough to be a negative


def test_qasper_triples_validate_as_guide_format(loaded_papers):
    records, _ = qasper_to_triples(loaded_papers)
    kept, _report = validate_triples(records, source="qasper", mode="strict", allowed_extra_fields=("paper_id",))
    assert len(kept) == len(records)


# --------------------------------------------------------------------------------------------------
# QASPER -> RetrievalDataset
# --------------------------------------------------------------------------------------------------


def test_qasper_dataset_qrels_point_at_evidence(loaded_papers):
    ds = qasper_to_dataset(loaded_papers)
    assert isinstance(ds, RetrievalDataset) and ds.name == "qasper"
    assert len(ds.corpus) == 11 + 5 + 4  # every non-empty paragraph, short ones included
    assert ds.corpus["2001.00001/2/3"] == "See Table 1."
    assert set(ds.queries) == {"qA1", "qB1", "qB2", "qC1"}
    assert ds.qrels["qA1"] == {"2001.00001/1/0": 1.0, "2001.00001/2/1": 1.0}
    assert ds.qrels["qB1"] == {"2001.00002/0/1": 1.0}
    assert ds.qrels["qB2"] == {"2001.00002/1/0": 1.0}
    assert ds.qrels["qC1"] == {"2001.00003/0/0": 1.0, "2001.00003/0/1": 1.0}  # qC2 merged in
    for qid, docs in ds.qrels.items():
        assert {ds.corpus[d] for d in docs} == EVIDENCE[ds.queries[qid]]
        assert all(ds.doc_meta[d]["paper_id"] == ds.query_meta[qid]["paper_id"] for d in docs)
    assert ds.query_meta["qC1"]["question_ids"] == ["qC1", "qC2"]
    assert ds.query_meta["qA1"]["paper_id"] == "2001.00001"
    assert ds.doc_meta["2001.00001/1/0"] == {"paper_id": "2001.00001", "section": "Method", "section_idx": 1, "para_idx": 0}
    # per-paper retrieval: the docs of one paper
    assert sum(m["paper_id"] == "2001.00002" for m in ds.doc_meta.values()) == 5


# --------------------------------------------------------------------------------------------------
# MS MARCO
# --------------------------------------------------------------------------------------------------


def test_msmarco_triples(tmp_path):
    path = tmp_path / "triples.train.small.tsv"
    path.write_text(
        "what is a cat\ta cat is a small feline\tdogs bark\n"
        "what is a cat\ta cat is a small feline\tthe stock market fell\n"
        "\n"
        "define rerank\treranking reorders candidates\treranking reorders candidates by price\n",
        encoding="utf-8",
    )
    records = load_msmarco_triples(path)
    assert records == [
        {"query": "what is a cat", "passage": "a cat is a small feline", "score": 1},
        {"query": "what is a cat", "passage": "dogs bark", "score": 0},
        {"query": "what is a cat", "passage": "the stock market fell", "score": 0},
        {"query": "define rerank", "passage": "reranking reorders candidates", "score": 1},
        {"query": "define rerank", "passage": "reranking reorders candidates by price", "score": 0},
    ]
    assert len(load_msmarco_triples(path, limit=1)) == 2


def test_msmarco_triples_bad_lines_named(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("q1\tp1\tn1\nq2\tonly two fields\nq3\t\tn3\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        load_msmarco_triples(path)
    assert [(p.location, p.reason) for p in info.value.problems] == [("line 2", "invalid_row"), ("line 3", "empty_text")]
    message = str(info.value)
    assert "triples.tsv" in message and "line 2" in message and "line 3" in message
    assert "line 1" not in message


def test_msmarco_triples_gzip(tmp_path):
    import gzip

    path = tmp_path / "triples.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("q\tpos\tneg\n")
    assert [r["score"] for r in load_msmarco_triples(path)] == [1, 0]


def _msmarco_files(tmp_path, qrels_text):
    (tmp_path / "collection.tsv").write_text(
        "0\tThe cat sat on the mat.\n1\tRerankers reorder retrieved passages.\n2\tParis is the capital of France.\n",
        encoding="utf-8",
    )
    (tmp_path / "queries.dev.small.tsv").write_text(
        "100\twhat do rerankers do\n101\tcapital of france\n102\ta query without judgements\n", encoding="utf-8"
    )
    (tmp_path / "qrels.dev.small.tsv").write_text(qrels_text, encoding="utf-8")
    return tmp_path / "collection.tsv", tmp_path / "queries.dev.small.tsv", tmp_path / "qrels.dev.small.tsv"


def test_msmarco_dataset(tmp_path):
    files = _msmarco_files(tmp_path, "100\t0\t1\t1\n101 0 2 1\n")
    ds = load_msmarco_dataset(*files)
    assert isinstance(ds, RetrievalDataset)
    assert len(ds.corpus) == 3
    assert ds.queries == {"100": "what do rerankers do", "101": "capital of france"}
    assert ds.qrels == {"100": {"1": 1.0}, "101": {"2": 1.0}}
    assert ds.positives("101") == ["2"]
    limited = load_msmarco_dataset(*files, limit_queries=1)
    assert list(limited.queries) == ["100"] and len(limited.corpus) == 3
    # the dispatcher finds the three files in a folder
    via = build_dataset(tmp_path, split="dev.small")
    assert via.qrels == ds.qrels


def test_msmarco_unknown_ids_named(tmp_path):
    files = _msmarco_files(tmp_path, "100 0 1 1\n101 0 99 1\n555 0 1 1\n")
    with pytest.raises(DataValidationError) as info:
        load_msmarco_dataset(*files)
    assert [(Path(p.source).name, p.location, p.reason) for p in info.value.problems] == [
        ("qrels.dev.small.tsv", "line 2", "unknown_doc_id"),
        ("qrels.dev.small.tsv", "line 3", "unknown_query_id"),
    ]
    message = str(info.value)
    assert "qrels.dev.small.tsv" in message
    assert "line 2" in message and "'99'" in message
    assert "line 3" in message and "'555'" in message


def test_msmarco_bad_collection_line(tmp_path):
    files = _msmarco_files(tmp_path, "100 0 1 1\n")
    files[0].write_text("0\tok\nno tab here\n0\tdup id\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_msmarco_dataset(*files)
    assert "collection.tsv" in str(info.value) and "line 2" in str(info.value) and "line 3" in str(info.value)


# --------------------------------------------------------------------------------------------------
# The dispatcher and thin wrappers
# --------------------------------------------------------------------------------------------------


def test_build_dataset_faq_routes(monkeypatch):
    calls = []
    monkeypatch.setattr(sources_module, "load_faq", lambda lang="en": calls.append(lang) or RetrievalDataset({}, {}, {}, name=lang))
    for source in ("faq", "FAQ-en", "faq-sv"):
        build_dataset(source)
    assert calls == ["en", "en", "sv"]


def test_build_dataset_qasper_local(qasper_dirs):
    ds = build_dataset("qasper", split="train", qasper_source=qasper_dirs["root"] / "parquet",
                          cache_dir=qasper_dirs["cache"])
    assert set(ds.queries) == {"qA1", "qB1", "qB2", "qC1"} and ds.name == "qasper-train"
    assert {m["paper_id"] for m in ds.query_meta.values()} == {"2001.00001", "2001.00002", "2001.00003"}


def test_build_dataset_qasper_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubDatasetUnavailable, match="gpu"):
        build_dataset("qasper")


def test_build_dataset_unknown_source(tmp_path):
    with pytest.raises(ValueError) as info:
        build_dataset("no-such-source")
    assert "faq" in str(info.value) and "qasper" in str(info.value) and "corpus.jsonl" in str(info.value)
    with pytest.raises(ValueError):
        build_dataset(tmp_path)  # an empty folder is no dataset
    with pytest.raises(FileNotFoundError):
        build_dataset(tmp_path / "missing.jsonl")


def test_build_dataset_msmarco_triples_file(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("q\tpos\tneg\n", encoding="utf-8")
    ds = build_dataset(path)
    (qid,) = ds.queries
    assert ds.queries[qid] == "q" and ds.name == "triples"
    assert [ds.corpus[d] for d in ds.positives(qid)] == ["pos"]
    assert {ds.corpus[d]: g for d, g in ds.qrels[qid].items()} == {"pos": 1.0, "neg": 0.0}


def test_build_dataset_beir_folder(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "first doc"}) + "\n"
        + json.dumps({"_id": "d2", "title": "", "text": "second doc"}) + "\n",
        encoding="utf-8",
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "which doc"}) + "\n", encoding="utf-8")
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n", encoding="utf-8")
    ds = build_dataset(tmp_path)
    assert isinstance(ds, RetrievalDataset)
    assert ds.positives("q1") == ["d2"] and len(ds.corpus) == 2
    direct, _report = load_beir_folder(tmp_path)
    assert direct.qrels == ds.qrels


# --------------------------------------------------------------------------------------------------
# The Chinese sample in data/
# --------------------------------------------------------------------------------------------------


def test_zh_sample_is_valid_guide_format():
    records, _report = read_triples(ZH_SAMPLE, mode="strict", require_positive=True)
    raw = [json.loads(line) for line in ZH_SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == len(raw)
    assert 40 <= len(raw) <= 60
    assert all(set(r) == {"query", "passage", "score"} and r["score"] in (0, 1) for r in raw)
    pairs = [(r["query"], r["passage"]) for r in raw]
    assert len(pairs) == len(set(pairs))
    pos = Counter(r["query"] for r in raw if r["score"] == 1)
    neg = Counter(r["query"] for r in raw if r["score"] == 0)
    assert len(pos) >= 15 and set(pos) == set(neg)
    assert all(n == 1 for n in pos.values()) and all(2 <= n <= 3 for n in neg.values())
    assert all(CJK.search(r["query"]) and CJK.search(r["passage"]) for r in raw)
    assert {"query": "什么是证券法？", "score": 1} == {k: v for k, v in raw[0].items() if k != "passage"}
    # the wrapper returns the same
    again, _ = load_triples_file(ZH_SAMPLE)
    assert again == records


def test_zh_sample_builds_a_dataset_from_any_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # as from notebooks/: the path resolves against the repository root
    ds = build_dataset("data/zh_legal_sample.jsonl")
    assert len(ds.queries) == 16 and ds.name == "zh_legal_sample"
    assert all(len(ds.positives(q)) == 1 for q in ds.queries)
    assert all(2 <= sum(g == 0 for g in ds.qrels[q].values()) <= 3 for q in ds.queries)
