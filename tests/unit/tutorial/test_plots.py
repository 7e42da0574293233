"""The figures of notebook 04 that compare the fine-tuned retriever with the reranker (rerank_utils.tutorial.plots)."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.pyplot as plt
import pytest

from rerank_utils.tutorial import plots


def test_plots_import_no_model_stack():
    # every notebook imports plots first; notebook 01 needs no model, and torch + sentence-transformers cost it 2.5 s of
    # its 8 s (a constant imported from the labeller once pulled them in)
    code = "import sys, rerank_utils.tutorial.plots; print(sorted({'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _rows(ndcg, recall):
    return [{"k": k, "ndcg@10": n, "first_stage_recall@k": r, "p50_ms": 10.0 * k, "p95_ms": 12.0 * k}
            for k, n, r in zip((5, 20), ndcg, recall)]


def test_top_k_tradeoff_draws_every_first_stage_and_refuses_other_ks():
    fig = plots.top_k_tradeoff(_rows([0.6, 0.7], [0.8, 0.9]), others={"fine-tuned bi-encoder": _rows([0.75, 0.8], [0.9, 0.97])},
                               name="bi-encoder")
    ax = fig.axes[0]
    drawn = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert drawn["ndcg@10, fine-tuned bi-encoder reranked top-K"] == [0.75, 0.8]
    assert drawn["fine-tuned bi-encoder Recall@K (ceiling)"] == [0.9, 0.97]
    assert drawn["ndcg@10, bi-encoder reranked top-K"] == [0.6, 0.7]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"'ft' was measured at K=\[5\]"):
        plots.top_k_tradeoff(_rows([0.6, 0.7], [0.8, 0.9]), others={"ft": _rows([0.7], [0.9])})


def test_learning_curve_draws_the_retriever_curves_only_when_every_row_has_them():
    rows = [{"train_queries": n, "labelled_pairs": 9 * n, "test NDCG@10 bi+CE": 0.7, "test NDCG@10 BM25+CE": 0.6,
             "test NDCG@10 FT bi": f, "test NDCG@10 FT bi+CE": f + 0.01} for n, f in ((25, 0.74), (100, 0.8))]
    fig = plots.learning_curve(rows, baselines={"bi-encoder": 0.73})
    labels = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines()}
    assert labels["FT bi (test)"] == [0.74, 0.8] and labels["FT bi+CE (test)"] == [0.75, 0.81]
    plt.close(fig)
    rows[0].pop("test NDCG@10 FT bi")
    fig = plots.learning_curve(rows)
    assert "FT bi (test)" not in {line.get_label() for line in fig.axes[0].get_lines()}
    plt.close(fig)
