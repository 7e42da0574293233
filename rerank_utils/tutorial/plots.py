"""Every figure the notebooks show (matplotlib). Each function returns the ``Figure``; notebooks save
it under ``artifacts/<profile>/figures/`` with :meth:`rerank_utils.tutorial.records.Recorder.figure`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import matplotlib.pyplot as plt  # the caller's backend; papermill runs set MPLBACKEND=Agg
import numpy as np

from rerank_utils.data.records import GUIDE_RATIO


def _titled(fig, ax, title: str, **kw):
    """Every figure's last step: ``ax`` titled, the layout tightened, the figure returned."""
    ax.set_title(title, **kw)
    fig.tight_layout()
    return fig


def latency_vs_k(rows: list[dict], bi_encoder_query_s: float | None = None, title: str = ""):
    """Cross-encoder seconds per query (p50 with a p95 bar) against top-K, with the bi-encoder's line.

    Introduced in ``00_concepts``.
    """
    ks = [r["k"] for r in rows]
    p50 = [r["p50_s"] * 1000 for r in rows]
    p95 = [r["p95_s"] * 1000 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(ks, p50, "o-", label="cross-encoder, p50")
    ax.fill_between(ks, p50, p95, alpha=0.2, label="p50–p95")
    if bi_encoder_query_s is not None:
        ax.axhline(bi_encoder_query_s * 1000, color="gray", ls="--", label="bi-encoder query (p50)")
    ax.set(xlabel="candidates reranked per query (top-K)", ylabel="ms per query", xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend()
    return _titled(fig, ax, title or "Reranking cost grows linearly with K")


def metric_bars(table: Mapping[str, Mapping[str, float]], metrics: Iterable[str], title: str = ""):
    """Grouped bars: one group per metric, one bar per system (``table[system][metric]``)."""
    metrics = list(metrics)
    systems = list(table)
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(metrics)), 3.6))
    x = np.arange(len(metrics))
    for i, system in enumerate(systems):
        vals = [table[system].get(m, float("nan")) for m in metrics]
        bars = ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=system)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _titled(fig, ax, title)


def length_histogram(lengths: Mapping[str, list[int]], max_length: int, title: str = ""):
    """Token-length histograms (e.g. queries, passages, query+passage pairs) against ``max_length``.

    Introduced in ``01_data_preparation``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    upper = max([max(v) for v in lengths.values() if v] + [max_length]) + 5
    bins = range(0, upper + 5, max(1, upper // 40))
    for name, values in lengths.items():
        ax.hist(values, bins=bins, alpha=0.55, label=name)
    ax.axvline(max_length, color="red", ls="--", label=f"max_length = {max_length}")
    ax.set(xlabel="tokens", ylabel="count")
    ax.legend()
    return _titled(fig, ax, title or "Lengths in tokens")


def split_sizes(sizes: Mapping[str, Mapping[str, int]], title: str = ""):
    """Stacked bars of the splits' sizes per category (``sizes[split][category]``)."""
    splits = list(sizes)
    cats = sorted({c for s in sizes.values() for c in s})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = np.zeros(len(splits))
    for c in cats:
        vals = np.array([sizes[s].get(c, 0) for s in splits], dtype=float)
        ax.bar(splits, vals, bottom=bottom, label=c)
        bottom += vals
    ax.set_ylabel("queries")
    if len(cats) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return _titled(fig, ax, title or "Queries per split")


def mining_score_distributions(report, bins: int = 30, title: str = ""):
    """Histograms of the kept hard negatives' retriever scores against the queries' best positive scores
    (a :class:`rerank_utils.training.mining.MiningReport`). Overlap shows how hard the negatives are; the
    margins keep every hard negative below its own query's positive.

    Introduced in ``02_negative_mining``.
    """
    hard = list(report.hard_scores)
    pos = list(report.positive_scores)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    values = hard + pos
    if values:
        edges = np.histogram_bin_edges(np.asarray(values, dtype=float), bins=bins)
        if hard:
            ax.hist(hard, bins=edges, alpha=0.55, label=f"hard negatives (n={len(hard)})")
        if pos:
            ax.hist(pos, bins=edges, alpha=0.55, label=f"best positive per query (n={len(pos)})")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no retriever scores (random negatives only)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set(xlabel="retriever score", ylabel="count")
    return _titled(fig, ax, title or "Hard negatives vs positives: retriever scores")


def training_curves(curves: Mapping[str, list], baseline: float | None = None, title: str = ""):
    """Training loss and validation NDCG@10 against epochs (from ``FineTuneResult.curves()``), with the
    first stage's validation NDCG@10 as a dashed line. Introduced in ``03_fine_tuning``."""
    fig, ax1 = plt.subplots(figsize=(6.5, 3.6))
    loss = curves.get("train_loss", [])
    if loss:
        ax1.plot([e for e, _ in loss], [v for _, v in loss], color="tab:blue", alpha=0.8, label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss", color="tab:blue")
    ax2 = ax1.twinx()
    val = curves.get("val_ndcg@10", [])
    if val:
        ax2.plot([e for e, _ in val], [v for _, v in val], "o-", color="tab:orange", label="validation NDCG@10")
    if baseline is not None:
        ax2.axhline(baseline, color="tab:orange", ls="--", alpha=0.6, label="first stage alone (validation)")
    ax2.set_ylabel("validation NDCG@10", color="tab:orange")
    ax2.set_ylim(0, 1)
    _legend_of_both(ax1, ax2, loc="lower left")
    return _titled(fig, ax1, title or "Fine-tuning: loss and validation")


def _legend_of_both(ax1, ax2, loc: str) -> None:
    """One legend on ``ax1`` for the lines of both axes of a ``twinx`` pair."""
    (lines1, labels1), (lines2, labels2) = ax1.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    ax1.legend(lines1 + lines2, labels1 + labels2, fontsize=8, loc=loc)


def interval_plot(comparisons: Mapping[str, "object"], title: str = ""):
    """Each comparison's mean difference with its 95 % interval (``PairedComparison`` objects); zero marked."""
    names = list(comparisons)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.55 * len(names)))
    for i, name in enumerate(names):
        c = comparisons[name]
        color = "tab:green" if c.low > 0 else ("tab:red" if c.high < 0 else "tab:gray")
        ax.errorbar(c.diff, i, xerr=[[c.diff - c.low], [c.high - c.diff]], fmt="o", color=color, capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("difference in NDCG@10 (95 % paired-bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    return _titled(fig, ax, title or "Does reranking help?")


def attention_mask(tokens: list[str], mask, title: str = ""):
    """The bridge reranker's additive attention mask for one pair (rows attend to columns): 0 inside each
    segment, the cross-segment bias between them. Introduced in ``14_bridge_reranker``."""
    mask = np.asarray(mask, dtype=float)
    n = len(tokens)
    fig, ax = plt.subplots(figsize=(min(9, 2 + 0.28 * n), min(8, 1.6 + 0.26 * n)))
    lo = float(mask.min()) if mask.min() < 0 else -1.0
    im = ax.imshow(mask, cmap="RdBu", vmin=lo, vmax=-lo)
    ax.set_xticks(range(n), tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(n), tokens, fontsize=7)
    ax.set(xlabel="key (attended to)", ylabel="query token (attending)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="added to the attention score")
    return _titled(fig, ax, title or "Bridge attention mask: each segment sees itself; across, a learnable bias")


def top_k_tradeoff(rows: list[dict], metric: str = "ndcg@10", title: str = "", others: Mapping[str, list[dict]] | None = None,
                   name: str = "first stage"):
    """NDCG@10 of reranking the top-K and the first stage's Recall@K (the ceiling) against K, with the
    latency per query (p50, p95 band) on a second axis. Rows from ``pipeline.top_k_tradeoff``; ``others`` maps
    the names of more first stages to their rows (e.g. the fine-tuned bi-encoder), drawn in other colours on
    the same K (their latency is the same model's, so only ``rows``' is drawn). Introduced in ``04_evaluation``."""
    ks = [r["k"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6.5, 3.8))
    ax1.plot(ks, [r[metric] for r in rows], "o-", color="tab:green", label=f"{metric}, {name} reranked top-K")
    ax1.plot(ks, [r["first_stage_recall@k"] for r in rows], "s--", color="tab:gray", label=f"{name} Recall@K (ceiling)")
    for (other, orows), color in zip((others or {}).items(), ("tab:red", "tab:orange", "tab:brown")):
        if [r["k"] for r in orows] != ks:
            raise ValueError(f"top_k_tradeoff: {other!r} was measured at K={[r['k'] for r in orows]}, the first rows at K={ks}")
        ax1.plot(ks, [r[metric] for r in orows], "o-", color=color, label=f"{metric}, {other} reranked top-K")
        ax1.plot(ks, [r["first_stage_recall@k"] for r in orows], "s--", color=color, alpha=0.5, label=f"{other} Recall@K (ceiling)")
    ax1.set_xscale("log")
    ax1.set_xticks(ks, [str(k) for k in ks])
    ax1.set(ylim=(0, 1.02), xlabel="candidates reranked per query (K)", ylabel="quality")
    ax2 = ax1.twinx()
    p50, p95 = [r["p50_ms"] for r in rows], [r["p95_ms"] for r in rows]
    ax2.plot(ks, p50, "^-", color="tab:purple", alpha=0.8, label="ms per query, p50")
    ax2.fill_between(ks, p50, p95, color="tab:purple", alpha=0.15, label="p50–p95")
    ax2.set_ylabel("ms per query", color="tab:purple")
    _legend_of_both(ax1, ax2, loc="lower right")
    ax1.grid(alpha=0.3)
    return _titled(fig, ax1, title or "Choosing top-K: quality against cost")


def learning_curve(rows: list[dict], baselines: Mapping[str, float] | None = None, title: str = ""):
    """Test NDCG@10 of the fine-tuned reranker against the number of training queries (rows from
    ``recipes.learning_curve``), with each first stage alone as a dashed line; where every row also has
    ``test NDCG@10 FT bi`` (the retriever fine-tuned on the same queries) and ``FT bi+CE`` (it, reranked), those
    are drawn too. Introduced in ``04_evaluation``."""
    n = [r["train_queries"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    curves = (("test NDCG@10 bi+CE", "tab:green", "o-"), ("test NDCG@10 BM25+CE", "tab:blue", "o-"),
              ("test NDCG@10 FT bi", "tab:red", "s-"), ("test NDCG@10 FT bi+CE", "tab:orange", "D-"))
    for key, color, style in curves:  # the FT bi rows: the labels spent on the retriever (and on both)
        if all(key in r for r in rows):
            ax.plot(n, [r[key] for r in rows], style, color=color, label=key.replace("test NDCG@10 ", "") + " (test)")
    for (name, value), color in zip((baselines or {}).items(), ("tab:green", "tab:blue", "tab:gray")):
        ax.axhline(value, color=color, ls="--", alpha=0.6, label=f"{name} alone")
    pairs_per_query = rows[0]["labelled_pairs"] / rows[0]["train_queries"]
    secondary = ax.secondary_xaxis("top", functions=(lambda q: q * pairs_per_query, lambda p: p / pairs_per_query))
    secondary.set_xlabel("labelled pairs (the guide's samples)")
    ax.set(xlabel="training queries", ylabel="NDCG@10", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _titled(fig, ax, title or "How much data? NDCG@10 against training queries", pad=28)


def backend_speeds(rows: list[dict], title: str = ""):
    """Pairs/s of the same reranker on each backend (rows from ``latency.compare_backends`` with ``qrels``),
    each bar labelled with its speed-up over the first row and its NDCG@10 change. Introduced in
    ``05_deployment``."""
    if not rows:
        raise ValueError("backend_speeds: no rows")
    names = [r["backend"] for r in rows]
    speeds = [r["pairs_per_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(rows) + 1.4))
    bars = ax.barh(names[::-1], speeds[::-1], color="tab:blue")
    bars[-1].set_color("tab:gray")  # the reference (first row) is drawn last in a reversed barh
    for bar, r in zip(bars, rows[::-1]):
        label = f" {r['pairs_per_s'] / speeds[0]:.2f}x"
        if "ndcg@10_change" in r:
            label += f", NDCG@10 {r['ndcg@10_change']:+.3f}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
    ax.set(xlim=(0, max(speeds) * 1.45), xlabel="(query, passage) pairs scored per second")
    ax.grid(axis="x", alpha=0.3)
    return _titled(fig, ax, title or "The same reranker, faster: speed-up and quality change against the first row")


def faq_sweeps(sweeps: Mapping[str, tuple[str, list[dict]]], first_stage: float | None = None,
               metric: str = "val NDCG@10 (best)", title: str = ""):
    """One panel per FAQ cause: ``sweeps[panel title] = (x_key, rows)`` with rows from
    ``troubleshooting.FaqExperiments.run``; ``metric`` against the knob ``x_key`` (log scale when it spans
    20x or more), the first stage alone as a dashed line. Introduced in ``12_troubleshooting``."""
    n = max(len(sweeps), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.5), sharey=True, squeeze=False)
    for ax, (name, (x_key, rows)) in zip(axes[0], sweeps.items()):
        rows = sorted(rows, key=lambda r: r[x_key])
        xs, ys = [r[x_key] for r in rows], [r[metric] for r in rows]
        ax.plot(xs, ys, "o-", color="tab:green", label="fine-tuned (best epoch)")
        if first_stage is not None:
            ax.axhline(first_stage, color="gray", ls="--", label="first stage alone")
        if len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 20:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_xlabel(x_key.replace("_", " "))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title or "No gain after fine-tuning? One cause at a time, measured")
    fig.tight_layout()
    return fig


def early_stopping_curves(curves: Mapping[str, list[float]], first_stage: float | None = None, title: str = ""):
    """Validation NDCG@10 by epoch for each run (``curves[label] = [value after epoch 1, 2, ...]``), each run's
    best epoch circled; an early-stopped run's line ends where it stopped. Introduced in ``12_troubleshooting``."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for (label, values), style in zip(curves.items(), ("o-", "s--", "^:", "d-.")):
        epochs = list(range(1, len(values) + 1))
        line, = ax.plot(epochs, values, style, label=f"{label} ({len(values)} epochs)")
        if values:
            best = max(range(len(values)), key=lambda i: values[i])
            ax.scatter([best + 1], [values[best]], s=180, facecolors="none", edgecolors=line.get_color(), linewidths=1.5)
    if first_stage is not None:
        ax.axhline(first_stage, color="gray", ls="--", alpha=0.7, label="first stage alone")
    longest = max((len(v) for v in curves.values()), default=1)
    ax.set(xticks=range(1, longest + 1), xlabel="epoch", ylabel="validation NDCG@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _titled(fig, ax, title or "Over-fitting: validation by epoch, best epoch circled")


def training_speed(rows: list[dict], reference_rows: list[dict] | None = None, reference_label: str = "short real pairs",
                   title: str = ""):
    """Training pairs/s against ``max_length``, one line per batch size (rows from
    ``troubleshooting.training_throughput``); ``reference_rows`` (e.g. the data's own short pairs) as hollow
    markers. Introduced in ``12_troubleshooting``."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    reference_rows = reference_rows or []
    sizes = sorted({r["batch_size"] for r in [*rows, *reference_rows]})
    colors = dict(zip(sizes, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    for b in sizes:
        mine = sorted((r for r in rows if r["batch_size"] == b), key=lambda r: r["max_length"])
        if mine:
            ax.plot([r["max_length"] for r in mine], [r["pairs_per_s"] for r in mine], "o-", color=colors[b], label=f"batch {b}")
        for r in reference_rows:
            if r["batch_size"] == b:
                ax.scatter([r["max_length"]], [r["pairs_per_s"]], s=90, facecolors="none", edgecolors=colors[b],
                           label=f"batch {b}, {reference_label} ({r['tokens_per_pair']:.0f} tokens)")
    lengths = sorted({r["max_length"] for r in [*rows, *reference_rows]})
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set_xticks(lengths, [str(x) for x in lengths])
    ax.set(xlabel="max_length (tokens)", ylabel="training pairs per second", ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _titled(fig, ax, title or "Training speed: max_length and batch size")


def label_curves(curves: Mapping[str, list[dict]], n_queries: int, title: str = ""):
    """Two panels, one line per labelling run (e.g. per first stage): queries with a relevant passage
    found, and negatives per positive, as labels accumulate; the guide's 1:1 to 1:4 band is shaded. Rows from
    ``labelling.labelling_comparison``. Introduced in ``13_labelling_your_own_data``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in curves.items():
        x = [r["labels"] for r in rows]
        left.plot(x, [r["queries_with_positive"] / n_queries for r in rows], label=name)
        ratio = [(r["labels"], r["negatives_per_positive"]) for r in rows if r["negatives_per_positive"] is not None]
        right.plot([a for a, _ in ratio], [b for _, b in ratio], label=name)
    left.set(xlabel="pairs labelled, hardest first", ylabel="share of queries with a relevant passage", ylim=(0, 1.02))
    right.axhspan(*GUIDE_RATIO, color="green", alpha=0.12, label="guide: 1:1 to 1:4")
    right.set(xlabel="pairs labelled, hardest first", ylabel="negatives per positive")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "What labelling finds as the labels accumulate")
    fig.tight_layout()
    return fig
