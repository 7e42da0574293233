"""Every notebook (found by glob) executed by papermill on the smoke profile, then its records checked.

Time budget: the whole smoke run takes a few minutes on 2 CPU cores (README states the measured time).
"""

from __future__ import annotations

import json
import math

import pytest

from rerank_utils.models.fast import fast_path_available
from rerank_utils.models.precision import cpu_has_bf16
from rerank_utils.paths import discover_notebooks, notebooks_dir
from rerank_utils.tutorial.profiles import PROFILES
from rerank_utils.tutorial.records import read_records
from rerank_utils.tutorial.runner import run_notebook, run_notebooks

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(1200)]
NOTEBOOKS = [p.stem for p in discover_notebooks()]
SMOKE = PROFILES["smoke"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("smoke-artifacts")
    mp.setenv("RERANK_ARTIFACTS_DIR", str(root))
    try:
        summary = run_notebooks("smoke", progress=None)
        yield summary, root
    finally:
        mp.undo()


def _records(root, stem, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(root))
    return read_records("smoke", stem)


def _unit(x):
    return x is not None and 0.0 <= x <= 1.0


def check_00_concepts(r):
    assert r["n_documents"] == 503 and r["n_queries"] == SMOKE.common["max_queries"]
    bm25, bi = r["first_stage"]["BM25"], r["first_stage"]["bi-encoder"]
    for metrics in (bm25, bi):
        assert all(_unit(v) for v in metrics.values())
        assert metrics["hit@1"] <= metrics["hit@3"] <= metrics["hit@5"]
    assert bi["ndcg@10"] > bm25["ndcg@10"]  # measured 0.75 vs 0.51 on the full FAQ
    assert bi["ndcg@10"] > 0.5
    assert math.isclose(r["llamaindex_ndcg@10"], bi["ndcg@10"], abs_tol=1e-3)
    assert r["llamaindex_agreement@10"] >= 0.95
    ks = [row["k"] for row in r["rerank_latency"]]
    assert ks == SMOKE.notebooks["00_concepts"]["top_k_values"]
    assert all(row["p50_s"] > 0 and row["pairs_per_s"] > 0 for row in r["rerank_latency"])
    assert r["bi_encoder_costs"]["corpus_docs"] == 503
    assert set(r["_figures"]) == {"first_stage_quality", "latency_vs_k"}


def check_01_data_preparation(r):
    sizes = r["split_sizes"]
    assert list(sizes) == ["train", "val", "test"] and sum(sizes.values()) == SMOKE.common["max_queries"]
    assert all(n > 0 for n in sizes.values())
    assert r["leakage_ok"] is True
    back = r["formats_read_back"]  # triples count pairs; grouped records and BEIR queries count queries
    assert back["triples (JSON array)"] == back["triples (JSONL)"] == back["triples (CSV)"] >= back["grouped (JSONL)"]
    assert back["grouped (JSONL)"] == back["BEIR folder"] == sum(sizes.values())
    assert r["broken_file_kept"] == 2
    assert {"empty_text", "score_out_of_range", "invalid_json", "undecodable", "duplicate_pair", "conflicting_labels"} <= set(r["broken_file_dropped"])
    assert r["length_stats"]["queries"]["max"] < r["length_stats"]["query + positive passage"]["max"]


def check_02_negative_mining(r):
    params = SMOKE.parameters_for("02_negative_mining")
    assert set(r["mining"]) == set(params["strategies"])
    for strategy, per_query in r["negatives_per_query"].items():
        assert len(per_query) == r["train_queries"]
        assert set(per_query.values()) == {params["num_negatives"]}, strategy  # exact ratio, every query
    assert r["mining"]["random"]["from random"] == params["num_negatives"] * r["train_queries"]
    for strategy in params["strategies"]:
        row = r["comparison"][strategy]
        assert _unit(row["val NDCG@10, BM25 + CE"]) and _unit(row["val NDCG@10, bi-encoder + CE"])
    assert set(r["_figures"]) == {"dense_score_distributions", "strategies_validation"}


def check_03_fine_tuning(r):
    params = SMOKE.parameters_for("03_fine_tuning")
    assert r["default_reranker"] == params["default_reranker"] == "bridge"
    assert _unit(r["best_val_ndcg@10"]) and _unit(r["bridge_best_val_ndcg@10"]) and _unit(r["val_first_stage_ndcg@10"])
    assert len(r["curves"]["val_ndcg@10"]) == params["epochs"]
    assert len(r["bridge_curves"]["val_ndcg@10"]) == params["bridge_epochs"]
    assert r["train_seconds"] > 0 and r["bridge_train_seconds"] > 0 and r["pairs_per_second"] > 0
    assert r["bridge_recipe"]["architecture"] == "bridge" and r["recipe"].get("architecture", "standard") == "standard"
    table = r["test_table"]
    stages = ["BM25", "bi-encoder", "fine-tuned bi-encoder"]
    assert list(table) == stages + [f"{s} + {m}" for m in ("standard CE", "bridge") for s in stages]
    retr = r["retriever"]  # the embedding model, fine-tuned first, never worse than its start on validation
    assert _unit(retr["val ndcg@10 (best)"]) and retr["val ndcg@10 (best)"] >= retr["base val ndcg@10"]
    assert len(r["retriever_validation_by_epoch"]) == params["retriever_epochs"] and retr["triples"] > 0
    assert r["retriever_verdict"].startswith("strongest row: ") and "fine-tuned bi-encoder alone scores" in r["retriever_verdict"]
    assert all(_unit(v) for row in table.values() for v in row.values())
    c = r["test_comparisons"]
    a = c["BM25 + bridge vs BM25"]
    assert a["low"] <= a["diff"] <= a["high"] and r["gate_a"] == (a["low"] > 0)
    assert r["gate_b"] == (c["bi-encoder + bridge vs bi-encoder"]["low"] > 0)
    assert "bi-encoder + bridge vs bi-encoder + standard CE" in c and any(k.startswith("bi-encoder + bridge fused") for k in c)
    for v in (r["verdict"], r["other_verdict"]):
        assert "Gate (a)" in v and ("HOLDS" in v or "does NOT hold" in v)
    assert r["model_dir"].endswith("reranker") and r["engine_best_val"] is not None
    assert set(r["_figures"]) == {"training_curves", "bridge_training_curves", "test_intervals"}


def check_04_evaluation(r):
    params = SMOKE.parameters_for("04_evaluation")
    table = r["table"]
    assert {"BM25", "bi-encoder", "BM25 + fine-tuned", "bi-encoder + fine-tuned"} <= set(table)
    for name in ("BM25", "bi-encoder", "BM25 + fine-tuned", "bi-encoder + fine-tuned"):
        row = table[name]
        assert _unit(row["ndcg@10"]) and 0 < row["p50 ms"] <= row["p95 ms"]
    assert table["BM25 + fine-tuned"]["p50 ms"] > table["BM25"]["p50 ms"]  # reranking costs time
    # offline (tests run with HF_HUB_OFFLINE=1): the base-reranker row is absent, and the notebook says why
    assert "hub" in r["base_reranker_absent"] and table["bi-encoder + base reranker"]["ndcg@10"] is None
    for name in ("fine-tuned bi-encoder", "fine-tuned bi-encoder + fine-tuned"):  # the 2x2 of issue 12
        assert _unit(table[name]["ndcg@10"]) and 0 < table[name]["p50 ms"] <= table[name]["p95 ms"]
    assert table["fine-tuned bi-encoder + fine-tuned"]["p50 ms"] > table["fine-tuned bi-encoder"]["p50 ms"]
    for name in ("fine-tuned bi-encoder vs bi-encoder", "fine-tuned bi-encoder + fine-tuned vs fine-tuned bi-encoder",
                 "bi-encoder + fine-tuned vs fine-tuned bi-encoder"):
        k = r["comparisons"][name]
        assert k["low"] <= k["diff"] <= k["high"]
    pipelines = [n for n in table if table[n]["ndcg@10"] is not None and "fused" not in n]  # the verdict's rows
    best = max(pipelines, key=lambda n: table[n]["ndcg@10"])
    assert r["retriever_verdict"].startswith(f"strongest row: {best} (NDCG@10 {table[best]['ndcg@10']:.3f})")
    assert r["retriever_dir"].endswith("retriever")
    # the 2x2 over the split seeds the benchmark committed: every seed's figure and the mean over them
    seeds = r["split_seeds"]
    ft = seeds["ndcg@10"]["fine-tuned bi-encoder"]
    assert ft["seeds"] >= 3 and ft["mean"] == pytest.approx(sum(v for k, v in ft.items() if k.startswith("seed ")) / ft["seeds"])
    gain = seeds["intervals"]["fine-tuned bi-encoder + bridge from fine-tuned vs fine-tuned bi-encoder"]
    assert gain["above zero"] + gain["contain zero"] + gain["below zero"] == gain["seeds"] == ft["seeds"]
    c = r["comparisons"]["bi-encoder + fine-tuned vs bi-encoder"]
    assert c["low"] <= c["diff"] <= c["high"] and c["wins"] + c["losses"] <= 8
    assert set(r["guide_claim"]) == set(r["comparisons"])
    assert all(w["change"] < 0 for w in r["worst"]) and len(r["worst"]) <= params["n_worst"]
    ks = [row["k"] for row in r["top_k_tradeoff"]]
    assert ks == params["top_k_values"]
    recalls = [row["first_stage_recall@k"] for row in r["top_k_tradeoff"]]
    assert recalls == sorted(recalls) and all(row["p50_ms"] > 0 for row in r["top_k_tradeoff"])
    ft_tradeoff = r["top_k_tradeoff_fine_tuned"]  # the same K for the fine-tuned retriever's top-K
    assert [row["k"] for row in ft_tradeoff] == ks and all(_unit(row["ndcg@10"]) for row in ft_tradeoff)
    assert not any("p50_ms" in row for row in ft_tradeoff)  # the reranker's latency at each K is timed once, above
    assert abs(ft_tradeoff[ks.index(params["top_k"])]["ndcg@10"] - table["fine-tuned bi-encoder + fine-tuned"]["ndcg@10"]) < 1e-9
    curve = r["learning_curve"]
    assert [row["train_queries"] for row in curve] == params["learning_curve_sizes"] + [28]
    for row in curve:  # labels on the reranker, on the retriever, on both
        assert all(_unit(row[k]) for k in ("test NDCG@10 bi+CE", "test NDCG@10 FT bi", "test NDCG@10 FT bi+CE"))
    assert curve[-1]["test NDCG@10 FT bi"] == table["fine-tuned bi-encoder"]["ndcg@10"]
    # LlamaIndex (SentenceTransformerRerank, ours, and HuggingFaceEmbedding over the fine-tuned retriever's folder)
    # ranks exactly as its twin among the package's own pipelines; SentenceTransformerRerank runs PyTorch, so its twin
    # is the PyTorch model's, the others' the rows of section 1, scored on the fast path where this CPU has one
    assert r["fast_path"] == fast_path_available()
    torch_twin = "bi-encoder + fine-tuned, PyTorch fp32"
    assert set(r["llamaindex_twins"].values()) == {torch_twin, "bi-encoder + fine-tuned", "fine-tuned bi-encoder", "fine-tuned bi-encoder + fine-tuned"}
    assert set(r["llamaindex_agreement@10"].values()) == {1.0}
    for name, row in r["llamaindex"].items():
        assert abs(row["ndcg@10"] - r["llamaindex_twin_ndcg@10"][r["llamaindex_twins"][name]]) < 1e-9
    for twin, ndcg in r["llamaindex_twin_ndcg@10"].items():
        if twin != torch_twin:
            assert abs(ndcg - table[twin]["ndcg@10"]) < 1e-9
    assert len(r["query_engine_nodes"]) == 3 and r["published"]["architecture"] == "bridge"
    assert set(r["_figures"]) == {"test_intervals", "top_k_tradeoff", "learning_curve"}


def check_05_deployment(r):
    params = SMOKE.parameters_for("05_deployment")
    backends = {row["backend"]: row for row in r["backends"]}
    # the bridge (offline default) exports: PyTorch, ONNX fp32, ONNX int8, and OpenVINO fp32 and NNCF's int8 (the dev
    # extra installs both); the bf16 rows only on a CPU with native bf16
    bf16 = cpu_has_bf16()
    assert list(backends) == ["PyTorch fp32", *(["PyTorch bf16"] if bf16 else []), "ONNX fp32", "ONNX int8", "OpenVINO fp32",
                              *(["OpenVINO bf16"] if bf16 else []), "OpenVINO int8",
                            *(["OpenVINO int8 + bf16"] if bf16 else [])]
    assert backends["OpenVINO int8"]["pairs_per_s"] > 0 and _unit(backends["OpenVINO int8"]["same_order"])
    assert backends["ONNX fp32"]["max_abs_diff"] < 1e-3 and backends["ONNX fp32"]["ndcg@10_change"] == 0.0
    assert all(row["pairs_per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] and _unit(row["ndcg@10"]) for row in backends.values())
    assert r["served"]["label"] == "ONNX int8" and r["served"]["health"]["status"] == "ok" and r["served"]["docs_status"] == 200
    assert r["same_as_in_process"] is True and r["guide_top_n"] == 3 and len(r["cohere_indices"]) == 3
    refusals = {k: v["status"] for k, v in r["refusals"].items()}
    assert refusals == {"empty query": 422, "no texts": 422, "texts and passages both": 422, "too many documents": 413,
                        "not JSON": 422, "wrong API key": 401}
    assert all(v["error"] for v in r["refusals"].values())
    # the pipeline's first stage is notebook 03's fine-tuned retriever, in the package and in LlamaIndex
    assert r["first_stage"]["kind"] == "fine-tuned" and r["first_stage"]["model"].endswith("retriever")
    # LlamaIndex's CohereRerank over HTTP ranks exactly as the served model in process
    assert r["http_agreement@10"] == 1.0
    (local, http), = [tuple(r["http"].values())]
    assert abs(local["ndcg@10"] - http["ndcg@10"]) < 1e-9
    cache = r["cache_effect"]
    assert cache["first"]["cache hits"] == 0 and cache["repeat"]["cache hits"] == params["top_k"]
    for run in r["load"].values():
        assert run["requests"] == params["load_requests"] and run["errors"] == 0 and 0 < run["p50_ms"] <= run["p95_ms"]
    assert r["load"]["cache off"]["forward passes"] < params["load_requests"]  # concurrent requests shared passes
    assert r["stopped"] is True
    assert set(r["_figures"]) == {"backend_speeds"}


def check_10_qasper_case_study(r):
    params = SMOKE.parameters_for("10_qasper_case_study")
    assert r["source"] == "faq-fixture"  # offline: the FAQ in QASPER's schema, through the real QASPER loader
    assert r["papers"] == {"train": params["train_papers"], "val": params["val_papers"], "test": params["test_papers"]}
    st = r["triple_stats"]
    assert st["n_papers"] == params["train_papers"] and st["n_with_evidence"] + st["n_skipped_no_evidence"] == st["n_questions"]
    assert 0 < st["n_negatives"] <= params["negatives_per_positive"] * st["n_positives"]
    assert r["n_rows"] == st["n_with_evidence"]  # softmax: one list per question
    assert r["n_test_questions"] > 0 and _unit(r["best_val_ndcg@10"]) and r["train_seconds"] > 0
    table = r["test_table"]
    assert set(table) == {f"{fs}{m}" for fs in ("BM25", "bi-encoder") for m in ("", " + base", " + fine-tuned")}
    assert all(_unit(v) for row in table.values() for v in row.values())
    # the base bridge at step 0 is the bi-encoder: the same NDCG@10 on the same candidates
    assert abs(table["bi-encoder + base"]["ndcg@10"] - table["bi-encoder"]["ndcg@10"]) < 0.02
    c = r["test_comparisons"]["bi-encoder + fine-tuned vs bi-encoder + base"]
    assert c["low"] <= c["diff"] <= c["high"]
    assert set(r["_figures"]) == {"training_curves", "test_intervals"}


def check_11_chinese_reranker(r):
    # the data/ sample in the guide's format: 16 questions, 60 triples, every question with one positive
    assert r["n_records"] == 60 and r["n_queries"] == 16
    bm25 = r["bm25_by_tokenizer"]
    # without jieba a Chinese clause is one token and BM25 matches nothing; with it BM25 works
    assert bm25["BM25, English tokenizer"]["ndcg@10"] < 0.2 < 0.6 < bm25["BM25, jieba"]["ndcg@10"]
    assert sum(r["splits"].values()) == 16 and all(n >= 1 for n in r["splits"].values())
    assert r["recipe_row"]["recipe"] == "zh" and _unit(r["recipe_row"]["val ndcg@10 (best)"])
    table = r["test_table"]
    assert set(table) == {f"{fs}{m}" for fs in ("BM25", "bi-encoder") for m in ("", " + base", " + fine-tuned")}
    assert abs(table["bi-encoder + base"]["ndcg@10"] - table["bi-encoder"]["ndcg@10"]) < 0.02  # the bridge at step 0
    assert all(c["low"] <= c["diff"] <= c["high"] for c in r["test_comparisons"].values())
    assert set(r["_figures"]) == {"bm25_tokenizers"}


def check_12_troubleshooting(r):
    params = SMOKE.parameters_for("12_troubleshooting")
    assert _unit(r["first_stage_val_ndcg@10"]) and _unit(r["first_stage_test_ndcg@10"])
    # the first answer to "no gain": notebook 04's 2x2, read back, with the advice on the fine-tuned retriever
    first = r["retriever_first"]
    assert set(first["table"]) >= {"fine-tuned bi-encoder", "fine-tuned bi-encoder + fine-tuned"}
    assert first["advice"].startswith(("The fine-tuned retriever alone scores", "The reranker pays over the fine-tuned retriever"))
    noise, queries, rates = r["label_noise"], r["train_queries"], r["learning_rate"]
    assert [row["label_noise"] for row in noise] == params["label_noise_levels"]
    for row in noise:  # exactly the share asked for: one list per training query, round(share x lists) made wrong
        assert row["training rows"] == row["train_queries"] == params["train_queries"]
        assert row["rows with wrong labels"] == round(row["label_noise"] * row["training rows"])
    assert [row["train_queries"] for row in queries] == params["train_query_counts"]
    assert [row["learning_rate"] for row in rates] == params["learning_rates"]
    for row in noise + queries + rates:
        assert _unit(row["val NDCG@10 (best)"]) and row["epochs_run"] == params["epochs"] and row["train_s"] > 0
        assert row["val NDCG@10, first stage"] == r["first_stage_val_ndcg@10"]
        assert row["val change vs first stage"] == pytest.approx(row["val NDCG@10 (best)"] - r["first_stage_val_ndcg@10"])
    # 100x the recipe's learning rate wrecks the bridge, which starts at the first stage (measured 0.32 vs 0.91)
    assert rates[-1]["val NDCG@10 (best)"] < r["first_stage_val_ndcg@10"] - 0.2
    # the base experiment sits in every sweep but is trained once; the over-fitting run comes on top, and the
    # early-stopped one is read from its curve (trained only where it would keep another epoch than its best)
    full, stopped = r["overfitting"]["no_early_stopping"], r["overfitting"]["early_stopping"]
    sweeps = ("label_noise_levels", "train_query_counts", "learning_rates")
    read = stopped.get("read from") == full["variant"]
    assert read or stopped["best_epoch"] != full["best_epoch"]
    assert r["trainings"] == 1 + sum(len(params[k]) - 1 for k in sweeps) + 1 + (not read) and r["train_seconds"] > 0
    assert full["epochs_run"] == params["overfit_epochs"] and full["early_stopping_patience"] is None
    assert stopped["early_stopping_patience"] == params["early_stopping_patience"]
    assert 1 <= stopped["epochs_run"] <= params["overfit_epochs"]
    assert full["best_epoch"] == full["val_curve"].index(max(full["val_curve"])) + 1
    assert full["val NDCG@10 (last epoch)"] == full["val_curve"][-1]
    # seeded: the early-stopped run is the same training until it stops
    assert stopped["val_curve"] == pytest.approx(full["val_curve"][: stopped["epochs_run"]], abs=1e-6)
    for row, label in ((full, "test"), (full, "test, last epoch"), (stopped, "test")):
        assert _unit(row[f"{label} NDCG@10"])
        assert row[f"{label} 95% CI low"] <= row[f"{label} change vs first stage"] <= row[f"{label} 95% CI high"]
        assert row[f"{label} NDCG@10"] == pytest.approx(r["first_stage_test_ndcg@10"] + row[f"{label} change vs first stage"])
    speed = r["throughput"]
    grid = [(m, b) for m in params["throughput_max_lengths"] for b in params["throughput_batch_sizes"]]
    assert [(row["max_length"], row["batch_size"]) for row in speed] == grid
    assert all(row["tokens_per_pair"] == row["max_length"] and row["pairs_per_s"] > 0 for row in speed)  # long pairs are cut
    first_batch = {row["max_length"]: row["pairs_per_s"] for row in speed if row["batch_size"] == params["throughput_batch_sizes"][0]}
    assert first_batch[min(first_batch)] > 2 * first_batch[max(first_batch)]  # measured 4-5 vs 0.6-0.7 pairs/s, 128 vs 512
    faq = r["throughput_faq_pairs"]
    assert all(row["tokens_per_pair"] <= 128 < row["max_length"] and row["pairs_per_s"] > 0 for row in faq)  # FAQ pairs never reach 512
    ref, acc, small = r["gradient_accumulation"]
    k = params["accumulation_steps"]
    assert ref["effective batch"] == acc["effective batch"] == params["accumulation_batch_size"] * k
    assert ref["optimiser steps"] == acc["optimiser steps"] == params["accumulation_updates"]
    assert small["optimiser steps"] == params["accumulation_updates"] * k
    assert ref["max |w - w_ref|"] == 0.0
    # accumulation gives the larger batch's weights to float32 rounding (measured 3.7e-6); the small batch alone does not (4e-4)
    assert acc["max |w - w_ref|"] < 2e-5 and acc["max |w - w_ref|"] < 0.1 * min(small["max |w - w_ref|"], ref["max |w - w_start|"])
    assert acc["activations MB per step"] == pytest.approx(small["activations MB per step"])
    assert acc["activations MB per step"] < ref["activations MB per step"]
    advice = r["top_k_advice"]  # read from 04's records: 04 runs before 12
    assert [row["k"] for row in advice] == SMOKE.parameters_for("04_evaluation")["top_k_values"]
    assert advice[0]["ndcg@10 gained"] is None and all(row["extra p50 ms"] > 0 for row in advice[1:])
    assert set(r["_figures"]) == {"no_gain_causes", "overfitting", "training_speed"}


def check_13_labelling_your_own_data(r):
    params = SMOKE.parameters_for("13_labelling_your_own_data")
    n_queries, budget = r["n_queries"], params["label_budget"]
    assert n_queries == SMOKE.common["max_queries"]
    assert 0 < r["n_candidates"] <= n_queries * params["top_k"]
    ranks = r["candidate_ranks"]  # hardest first: every query's rank 1, then every query's rank 2, ...
    assert len(ranks) == r["n_candidates"] and ranks == sorted(ranks) and ranks[:n_queries] == [1] * n_queries
    assert len(r["clicks"]) == params["demo_clicks"] and r["clicks"][2] == "skip"
    assert set(r["clicks"]) <= {"relevant (1)", "not relevant (0)", "skip"}
    assert r["resumed_same_pair"] is True and r["reproposed_after_resume"] == 0
    p = r["progress"]
    assert p["proposed"] == r["n_candidates"] and p["labelled"] + p["skipped"] == budget and p["skipped"] == 1
    assert p["labelled"] + p["skipped"] + p["remaining"] == p["proposed"]
    assert p["positives"] + p["negatives"] == p["labels_in_file"] == p["labelled"]
    assert 0 < p["queries_with_positive"] <= min(p["positives"], n_queries) and p["positives"] == r["per_query_positives"]
    assert math.isclose(p["negatives_per_positive"], p["negatives"] / p["positives"])
    assert p["ratio"] == f"1:{p['negatives_per_positive']:.1f}" and p["ratio"] in r["ratio_advice"]
    assert r["labels_file"] == {"kept": p["labelled"], "problems": 0}  # load_triples_file(require_positive=False)
    t = r["training_file"]  # load_triples_file strict, as a data_source
    assert t["problems"] == 0 and t["kept"] == t["pairs"] and t["pairs"] + t["pairs_left_out"] == p["labelled"]
    assert t["queries"] == p["queries_with_positive"] == r["labelled_dataset_queries"]
    assert t["queries"] + t["queries_left_out"] <= n_queries
    err = r["corrupt_error"]
    assert "broken_labels.jsonl:line 2: field 'score'" in err and "broken_labels.jsonl:line 6: not valid JSON" in err
    assert "line 6 does not end with a newline" in err
    names = {"bm25": "BM25", "dense": "bi-encoder"}
    c = r["comparison"]
    assert set(c) == {names[fs] for fs in params["compare_first_stages"]}
    for row in c.values():
        assert row["pairs labelled"] == budget == row["relevant"] + row["not relevant"]
        assert _unit(row["share of queries"]) and _unit(row["known answers found"])
    # the better first stage finds more relevant passages for the same budget (measured 27 vs 20 of 40 queries)
    assert c["bi-encoder"]["queries with a relevant passage"] >= c["BM25"]["queries with a relevant passage"]
    assert r["ms_per_label"] > 0 and r["propose_seconds"] > 0
    assert set(r["_figures"]) == {"labelling_curves"}


def check_14_bridge_reranker(r):
    params = SMOKE.parameters_for("14_bridge_reranker")
    # step 0 is the bi-encoder: the same NDCG@10 and the same top-10 order
    s0 = r["step0_table"]
    assert abs(s0["bi-encoder + bridge, step 0"]["ndcg@10"] - s0["bi-encoder"]["ndcg@10"]) < 0.02
    assert r["step0_agreement@10"] >= 0.9
    assert r["reused_from_03"] is True  # the same recipe as 03's bridge: not trained twice
    assert len(r["curves"]["val_ndcg@10"]) == params["epochs"] and _unit(r["best_val_ndcg@10"])
    assert r["train_seconds"] > 0 and r["pairs_per_second"] > 0
    b = r["bridge"]
    assert b["bias_mode"] == params["bias_mode"] and b["bias_start"] == params["bias_start"]
    assert b["bias_min"] <= b["bias_mean"] <= b["bias_max"] < 0 and b["pooling"] == "mean"
    assert len(r["biases"]) == 6  # one row per layer of MiniLM-L6
    # 03 ran before (glob order), so its standard cross-encoder has rows beside the bridge
    rows = {"BM25", "bi-encoder"} | {f"{fs} + {m}" for fs in ("BM25", "bi-encoder") for m in ("standard CE", "bridge")}
    assert set(r["test_table"]) == rows
    assert all(_unit(v) for row in r["test_table"].values() for v in row.values())
    c = r["test_comparisons"]
    assert {"BM25 + bridge vs BM25", "bi-encoder + bridge vs bi-encoder", "bi-encoder + bridge vs bi-encoder + standard CE"} <= set(c)
    assert r["gate_a"] == (c["BM25 + bridge vs BM25"]["low"] > 0)
    assert r["llamaindex_same_order"] is True
    assert r["onnx"]["same_order"] == 1.0 and r["onnx"]["max_abs_diff"] < 1e-3
    assert set(r["_figures"]) == {"attention_mask", "training_curves", "test_intervals"}


CHECKS = {name.removeprefix("check_"): fn for name, fn in globals().items() if name.startswith("check_")}


def test_every_notebook_ran(smoke_run):
    summary, root = smoke_run
    assert summary.notebooks == NOTEBOOKS
    model = root / "smoke" / "models" / "reranker"  # the default reranker, published by 03: the bridge offline
    assert (model / "modules.json").is_file() and "## rerank-finetune" in (model / "README.md").read_text()
    assert json.loads((model / "DEFAULT_RERANKER.json").read_text())["architecture"] == "bridge"
    assert (root / "smoke" / "models" / "standard" / "config.json").is_file()
    bridge = root / "smoke" / "models" / "bridge"
    assert (bridge / "bridge.safetensors").is_file() and (root / "smoke" / "models" / "bridge_onnx" / "model.onnx").is_file()
    assert (root / "smoke" / "REPORT.md").is_file()
    for stem in NOTEBOOKS:
        assert (root / "smoke" / "executed" / f"{stem}.ipynb").is_file()


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_records(smoke_run, stem, monkeypatch):
    _, root = smoke_run
    records = _records(root, stem, monkeypatch)
    assert records, f"{stem} recorded nothing"
    if stem in CHECKS:
        CHECKS[stem](records)


def test_04s_pytorch_twin_is_03s_figure(smoke_run, monkeypatch):
    """Notebook 04 reranks on the fast path; LlamaIndex's SentenceTransformerRerank (PyTorch) is checked against the same
    weights in PyTorch fp32, which must be notebook 03's own figure for the published reranker, to the last digit."""
    _, root = smoke_run
    r03, r04 = _records(root, "03_fine_tuning", monkeypatch), _records(root, "04_evaluation", monkeypatch)
    label = {"standard": "standard CE", "bridge": "bridge"}[r03["default_reranker"]]
    assert r04["llamaindex_twin_ndcg@10"]["bi-encoder + fine-tuned, PyTorch fp32"] == pytest.approx(
        r03["test_table"][f"bi-encoder + {label}"]["ndcg@10"], abs=1e-9)


def test_template_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ARTIFACTS_DIR", str(tmp_path))
    path = notebooks_dir() / "_template.ipynb"
    params = {"profile": "smoke", **SMOKE.common}
    run_notebook(path, params, tmp_path / "executed.ipynb", cell_timeout=300)
    assert read_records("smoke", "_template")["n_queries"] == SMOKE.common["max_queries"]
