"""The guide's four rerankers and the packaged model: parameters and CPU speed, measured here without the hub.

Speed does not depend on the weights, only on the architecture: each hub model is built from its
architecture's configuration (the published sizes: MiniLM-L6/L12 with hidden 384, XLM-RoBERTa base and
large for bge-reranker) with random weights, and scores the same (query, passage) pairs as the packaged
all-MiniLM-L6-v2 (whose real weights are used). All models read the packaged model's WordPiece ids, so every
model sees the same sequence lengths; bge's own SentencePiece tokenizer would give somewhat different
lengths on real text. Parameters are counted from the built model (exact for the architecture; the
classification head included).

    .venv/bin/python benchmarks/model_speed.py          # about 5 min on 2 cores

Writes results/model_speed.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "model_speed.json"

ARCHS = {  # name: (config class, config kwargs, languages)
    "cross-encoder/ms-marco-MiniLM-L-6-v2": ("bert", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, vocab_size=30522), "English"),
    "cross-encoder/ms-marco-MiniLM-L-12-v2": ("bert", dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536, vocab_size=30522), "English"),
    "BAAI/bge-reranker-base": ("xlm-roberta", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=250002, max_position_embeddings=514, type_vocab_size=1), "Chinese and English"),
    "BAAI/bge-reranker-large": ("xlm-roberta", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, vocab_size=250002, max_position_embeddings=514, type_vocab_size=1), "Chinese and English"),
}


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=16, help="test questions; each with its bi-encoder top-20 (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from rerank_utils.data.faq import load_faq
    from rerank_utils.models.loading import load_bi_encoder, load_cross_encoder
    from rerank_utils.retrieval.dense import DenseRetriever

    faq = load_faq("en")
    qids = list(faq.queries)[: args.queries]
    queries = {q: faq.queries[q] for q in qids}
    run = DenseRetriever(faq.corpus, load_bi_encoder("default")).search(queries, top_k=20)
    pairs = [(queries[q], faq.corpus[d]) for q in qids for d in run[q]]
    packaged = load_cross_encoder("default", device="cpu", max_length=args.max_length)
    tokenizer = packaged.tokenizer
    batches = []
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))  # as predict() sorts
    for i in range(0, len(order), args.batch_size):
        chunk = [pairs[j] for j in order[i : i + args.batch_size]]
        batches.append(tokenizer([a for a, _ in chunk], [b for _, b in chunk], padding=True, truncation=True,
                                 max_length=args.max_length, return_tensors="pt"))

    def measure(model, keys=("input_ids", "attention_mask", "token_type_ids")) -> dict:
        model.eval()
        with torch.inference_mode():
            model(**{k: v[:2] for k, v in batches[0].items() if k in keys})  # warm-up
            t0 = time.perf_counter()
            for b in batches:
                model(**{k: v for k, v in b.items() if k in keys})
            seconds = time.perf_counter() - t0
        return {"parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "pairs": len(pairs),
                "seconds": round(seconds, 2), "pairs_per_s": round(len(pairs) / seconds, 1)}

    results = {"all-MiniLM-L6-v2 (packaged, as a cross-encoder)": {**measure(packaged.model), "languages": "English", "weights": "real"}}
    print(results)
    for name, (kind, kw, langs) in ARCHS.items():
        torch.manual_seed(0)
        config = AutoConfig.for_model(kind, num_labels=1, **kw)
        model = AutoModelForSequenceClassification.from_config(config)
        keys = ("input_ids", "attention_mask") if kind == "xlm-roberta" else ("input_ids", "attention_mask", "token_type_ids")
        results[name] = {**measure(model, keys), "languages": langs, "weights": "random (architecture only)"}
        print(name, results[name], flush=True)
        del model
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "max_length": args.max_length,
                                    "results": results}, indent=1))
    print("\n| model | parameters | languages | CPU pairs/s (2 cores, fp32, batch 32) |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['parameters_m']} M | {r['languages']} | {r['pairs_per_s']} |")


if __name__ == "__main__":
    main()
