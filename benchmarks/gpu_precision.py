"""fp32, TF32, fp16 and bf16 on a GPU: `predict` pairs/s and latency, NDCG@10, and training steps, in ONE run.

Two halves, because the GPU machine lent to some sessions has no network, no project install and no Hugging Face
hub, and takes at most 64 MiB with it:

    .venv/bin/python benchmarks/gpu_precision.py prepare      # here, after notebook 03 on the cpu profile
    python3 benchmarks/gpu_precision.py measure --out $OUT/gpu_precision.json     # there (torch, transformers,
                                                              # sentence-transformers and pandas of its own image)

``prepare`` writes ``.gpu_bench/`` (git-ignored): the fine-tuned standard cross-encoder of
``artifacts/cpu/models/standard`` with its weights stored in fp16 (45 MB instead of 91: the transfer limit), its
tokenizer, the 99 test queries' bi-encoder top-100 (ids, texts, qrels) and 256 labelled training pairs (each of 64
training queries with its answer and three bi-encoder negatives). It also scores the test top-20 here on the CPU with
the original fp32 weights and with the fp16-rounded ones, so the rounding of the stored copy is measured, not assumed.

``measure`` (CUDA) reports, for the fine-tuned MiniLM-L6 cross-encoder: NDCG@10 of the reranked top-20 on the test
queries and pairs/s of ``CrossEncoder.predict`` (tokenising included, as users call it) and of the forward pass alone
(tokenised once, sorted by length, padded per batch), with per-query latency at top-20 and top-100, in fp32 (TF32
off), fp32 with TF32 matmuls, fp16 and bf16 weights, and bf16 autocast. The same forward-pass speeds, and training
steps (AdamW, BCE-with-logits, 32 pairs) in fp32, TF32, bf16 autocast and fp16 autocast with a GradScaler, are
measured for the architectures of the `gpu` and `zh` profiles' hub rerankers, built from their configs with random
weights (speed does not depend on the weights; the hub is out of reach there): ms-marco-MiniLM-L-12-v2 (BERT, 12 x
384) and bge-reranker-base (XLM-RoBERTa, 12 x 768, a 250k vocabulary), fed token ids of the real pairs' lengths.
Timings: CUDA synchronised, warm-ups first, medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".gpu_bench"
OUT = ROOT / "benchmarks" / "results" / "gpu_precision.json"
DEVICE = "cuda"  # `measure --device cpu --limit 3 --steps 2`: a dry run of the script's code paths, not a measurement
sys.path.insert(0, str(ROOT))  # rerank_utils.evaluation.metrics (numpy + pandas) on a machine without the install


# ---------------------------------------------------------------------------------------------------- prepare (here)
def prepare() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from safetensors.torch import load_file, save_file

    from rerank_utils.data.saved_splits import prepare_splits
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.paths import artifacts_dir
    from rerank_utils.retrieval.dense import DenseRetriever

    source = artifacts_dir("cpu", "models", "standard", create=False)
    model = load_cross_encoder(str(source), device="cpu")
    folder = BENCH / "standard"
    model.save_pretrained(str(folder))
    for weights in folder.rglob("*.safetensors"):
        state = load_file(str(weights))
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()}, str(weights), metadata={"format": "pt"})

    splits = prepare_splits("cpu", "faq-en", seed=42)
    test, train = splits["test"], splits["train"]
    bi = load_bi_encoder("default")
    run100 = DenseRetriever(test.corpus, bi).search(test.queries, top_k=100)
    candidates = {q: sorted(run100[q], key=lambda d: -run100[q][d]) for q in test.queries}
    docs = sorted({d for ds in candidates.values() for d in ds})
    train_run = DenseRetriever(train.corpus, bi).search(train.queries, top_k=20)
    rng = np.random.default_rng(0)
    train_pairs = []
    for q in rng.choice(sorted(train.queries), size=64, replace=False):
        positives = [d for d, g in train.qrels[q].items() if g > 0]
        negatives = [d for d in sorted(train_run[q], key=lambda d: -train_run[q][d]) if d not in train.qrels[q]][:3]
        train_pairs += [[train.queries[q], train.corpus[positives[0]], 1.0]] + [[train.queries[q], train.corpus[d], 0.0] for d in negatives]

    def ndcg(scorer) -> float:
        run = {}
        for q, ds in candidates.items():
            scores = scorer.predict([(test.queries[q], test.corpus[d]) for d in ds[:20]], batch_size=32, show_progress_bar=False)
            run[q] = {d: float(s) for d, s in zip(ds[:20], scores)}
        return evaluate_run(run, test.qrels, ["ndcg@10"]).aggregate["ndcg@10"]

    rounded = load_cross_encoder(str(folder), device="cpu")
    rounded.to(torch.float32)
    cpu = {"fp32 weights": ndcg(model), "fp16-rounded weights, computed in fp32": ndcg(rounded)}
    data = {"queries": {q: test.queries[q] for q in candidates}, "candidates": candidates, "corpus": {d: test.corpus[d] for d in docs},
            "qrels": {q: test.qrels[q] for q in candidates}, "train_pairs": train_pairs, "cpu_ndcg@10": cpu}
    (BENCH / "data.json").write_text(json.dumps(data), encoding="utf-8")
    size = sum(p.stat().st_size for p in BENCH.rglob("*") if p.is_file()) / 2**20
    print(f"wrote {BENCH} ({size:.1f} MiB): {len(candidates)} test queries, {len(docs)} documents, {len(train_pairs)} training pairs; CPU NDCG@10 {cpu}")


# -------------------------------------------------------------------------------------------------- measure (there)
def _sync_time(fn, warmup: int, repeat: int) -> list[float]:
    import torch

    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _batches(lengths: list[int], batch: int) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into batches: each padded to its own longest."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i: i + batch] for i in range(0, len(order), batch)]


def _inputs(ids: list[list[int]], batch_idx: list[int], device) -> dict:
    import torch

    longest = max(len(ids[i]) for i in batch_idx)
    input_ids = torch.zeros((len(batch_idx), longest), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, i in enumerate(batch_idx):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
        mask[row, : len(ids[i])] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _precision_context(name: str):
    import contextlib

    import torch

    if name == "bf16 autocast":
        return torch.autocast(DEVICE, dtype=torch.bfloat16)
    if name == "fp16 autocast":
        return torch.autocast(DEVICE, dtype=torch.float16)
    return contextlib.nullcontext()


def _set_tf32(on: bool) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def _hf_model(cross_encoder):
    """The ``*ForSequenceClassification`` inside a sentence-transformers ``CrossEncoder`` (6.x names it
    ``transformers_model``; its first module's ``auto_model`` otherwise)."""
    return getattr(cross_encoder, "transformers_model", None) or cross_encoder[0].auto_model


WEIGHT_DTYPES = {"fp32": "float32", "fp32 + TF32": "float32", "fp16": "float16", "bf16": "bfloat16", "bf16 autocast": "float32"}


def forward_speed(model, ids: list[list[int]], precision: str, batch: int = 32, repeat: int = 5) -> float:
    """Pairs/s of the forward pass alone over every pair (tokenised once, sorted by length, padded per batch)."""
    import torch

    batches = [_inputs(ids, b, DEVICE) for b in _batches([len(x) for x in ids], batch)]

    def once():
        with torch.inference_mode(), _precision_context(precision):
            for inputs in batches:
                model(**inputs)

    return len(ids) / float(np.median(_sync_time(once, 2, repeat)))


def train_speed(model, ids: list[list[int]], labels: list[float], precision: str, batch: int = 32, steps: int = 30) -> dict:
    """Training steps/s (forward, BCE-with-logits, backward, AdamW) on batches of ``batch`` real-length pairs."""
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    scaler = torch.amp.GradScaler(DEVICE, enabled=precision == "fp16 autocast")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(0)
    chunks = [rng.choice(len(ids), size=batch, replace=False).tolist() for _ in range(steps + 5)]
    batches = [(_inputs(ids, c, DEVICE), torch.tensor([labels[i] for i in c], device=DEVICE)) for c in chunks]
    losses, k = [], [0]

    def step():
        inputs, y = batches[k[0] % len(batches)]
        k[0] += 1
        opt.zero_grad(set_to_none=True)
        with _precision_context(precision):
            logits = model(**inputs).logits.view(-1).float()
            loss = loss_fn(logits, y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))

    times = _sync_time(step, 5, steps)
    model.eval()
    return {"steps_per_s": 1 / float(np.median(times)), "pairs_per_s": batch / float(np.median(times)),
            "loss_finite": bool(np.all(np.isfinite(losses))), "last_loss": losses[-1]}


def measure(out: Path, repeat: int, steps: int, limit: int | None) -> None:
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, BertConfig, XLMRobertaConfig

    from rerank_utils.evaluation.metrics import evaluate_run

    assert DEVICE != "cuda" or torch.cuda.is_available(), "no CUDA device"
    data = json.loads((BENCH / "data.json").read_text(encoding="utf-8"))
    queries, corpus, candidates, qrels = data["queries"], data["corpus"], data["candidates"], data["qrels"]
    candidates = dict(list(candidates.items())[:limit])
    qrels = {q: qrels[q] for q in candidates}
    top20 = [(queries[q], corpus[d]) for q, ds in candidates.items() for d in ds[:20]]
    facts = {"gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "none (dry run on the CPU)", "torch": torch.__version__, "transformers": transformers.__version__,
             "at": time.strftime("%Y-%m-%d %H:%M"), "cpu_ndcg@10": data["cpu_ndcg@10"]}
    print(facts, flush=True)
    results: dict = {"_run": facts, "finetuned_minilm_l6": {}, "architectures": {}}

    # --- the fine-tuned standard cross-encoder: NDCG@10 and predict / forward speed per precision
    tokenizer = None
    for precision, dtype in WEIGHT_DTYPES.items():
        _set_tf32(precision == "fp32 + TF32")
        ce = CrossEncoder(str(BENCH / "standard"), device=DEVICE)
        ce.to(getattr(torch, dtype))
        tokenizer = ce.tokenizer
        run = {}
        with _precision_context(precision):
            for q, ds in candidates.items():
                scores = ce.predict([(queries[q], corpus[d]) for d in ds[:20]], batch_size=32, show_progress_bar=False)
                run[q] = {d: float(s) for d, s in zip(ds[:20], scores)}
            ndcg = evaluate_run(run, qrels, ["ndcg@10"]).aggregate["ndcg@10"]
            predict_times = _sync_time(lambda: ce.predict(top20, batch_size=32, show_progress_bar=False), 1, repeat)
            latency = {}
            for k in (20, 100):
                per_query = []
                for q, ds in list(candidates.items())[:30]:
                    pairs = [(queries[q], corpus[d]) for d in ds[:k]]
                    per_query += _sync_time(lambda: ce.predict(pairs, batch_size=128, show_progress_bar=False), 0, 1)
                latency[f"top{k}_p50_ms"] = float(np.percentile(per_query, 50) * 1000)
                latency[f"top{k}_p95_ms"] = float(np.percentile(per_query, 95) * 1000)
        ids = [tokenizer(q, d, truncation=True, max_length=512)["input_ids"] for q, d in top20]
        row = {"ndcg@10": ndcg, "predict_pairs_per_s": len(top20) / float(np.median(predict_times)),
               "forward_pairs_per_s": forward_speed(_hf_model(ce), ids, precision, repeat=repeat), **latency}
        results["finetuned_minilm_l6"][precision] = row
        print("MiniLM-L6 (fine-tuned)", precision, row, flush=True)
        ce = None  # free it before the next precision
        torch.cuda.empty_cache()
    _set_tf32(False)

    # --- the gpu / zh profiles' architectures, random weights: forward and training speed per precision
    ids = [tokenizer(q, d, truncation=True, max_length=512)["input_ids"] for q, d in top20]
    train_ids = [tokenizer(q, d, truncation=True, max_length=512)["input_ids"] for q, d, _ in data["train_pairs"]]
    labels = [float(y) for _, _, y in data["train_pairs"]]
    configs = {
        "MiniLM-L6 (fine-tuned, as above)": None,
        "MiniLM-L12-H384 (ms-marco-MiniLM-L-12-v2's shape)": BertConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                                                                       intermediate_size=1536, num_labels=1),
        "XLM-R base (bge-reranker-base's shape)": XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                                   intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                                                                   num_labels=1),
    }
    if DEVICE == "cpu":  # the dry run: the same code on 2-layer, 64-wide copies (the real shapes take an hour on a CPU)
        for cfg in configs.values():
            if cfg is not None:
                cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads = 2, 64, 128, 2
    for name, cfg in configs.items():
        rows = {}
        for precision in ("fp32", "fp32 + TF32", "bf16 autocast", "fp16 autocast", "bf16", "fp16"):
            _set_tf32(precision == "fp32 + TF32")
            torch.manual_seed(0)
            if cfg is None:
                model = _hf_model(CrossEncoder(str(BENCH / "standard"), device="cpu").to(torch.float32))
            else:
                model = AutoModelForSequenceClassification.from_config(cfg)
            model.to(DEVICE, dtype=getattr(torch, WEIGHT_DTYPES.get(precision, "float32"))).eval()
            row = {"forward_pairs_per_s": forward_speed(model, ids, precision, repeat=repeat)}
            if precision in ("fp32", "fp32 + TF32", "bf16 autocast", "fp16 autocast"):  # pure-bf16/fp16 AdamW is not a recipe anyone should use
                row.update({f"train_{k}": v for k, v in train_speed(model, train_ids, labels, precision, steps=steps).items()})
            rows[precision] = row
            print(name, precision, row, flush=True)
            del model
            torch.cuda.empty_cache()
        results["architectures"][name] = rows
    _set_tf32(False)

    for section in (results["finetuned_minilm_l6"], *results["architectures"].values()):
        base = section["fp32"]
        for row in section.values():
            for key in list(row):
                if key.endswith("pairs_per_s") and key in base:
                    row[key.replace("pairs_per_s", "speed-up")] = row[key] / base[key]
            if "ndcg@10" in row:
                row["ndcg@10 change"] = row["ndcg@10"] - base["ndcg@10"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(table(results))


def table(results: dict) -> str:
    lines = ["| model | precision | NDCG@10 (change) | predict pairs/s (x) | forward pairs/s (x) | train pairs/s (x) |", "|---|---|---|---|---|---|"]

    def cell(row, key):
        if key not in row:
            return ""
        speed = row.get(key.replace("pairs_per_s", "speed-up"))
        return f"{row[key]:,.0f} ({speed:.2f}x)" if speed is not None else f"{row[key]:,.0f}"

    for precision, row in results["finetuned_minilm_l6"].items():
        lines.append(f"| MiniLM-L6, fine-tuned | {precision} | {row['ndcg@10']:.4f} ({row['ndcg@10 change']:+.4f}) | "
                     f"{cell(row, 'predict_pairs_per_s')} | {cell(row, 'forward_pairs_per_s')} | |")
    for name, rows in results["architectures"].items():
        for precision, row in rows.items():
            lines.append(f"| {name} | {precision} | | | {cell(row, 'forward_pairs_per_s')} | {cell(row, 'train_pairs_per_s')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "measure", "table"])
    ap.add_argument("--out", type=Path, default=OUT, help="results file of `measure`, read by `table` (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats of each whole-set measurement (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per precision (default: %(default)s)")
    ap.add_argument("--limit", type=int, help="only the first N test queries (a dry run)")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the code paths (default: %(default)s)")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare()
    elif args.step == "measure":
        global DEVICE
        DEVICE = args.device
        measure(args.out, args.repeat, args.steps, args.limit)
    else:
        print(table(json.loads(args.out.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
