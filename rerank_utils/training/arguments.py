""":class:`TrainingConfig`: a fine-tuning run's hyper-parameters (the guide's defaults, with comments), checked by
``validate()``, and :func:`resolve_precision` (bf16/fp16 only where the device supports it). The role
sentence-transformers' ``training_args.py`` plays for its trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rerank_utils.models.precision import cpu_has_bf16

LOSSES = ("bce", "mnrl", "lambda", "listnet", "softmax")
LIST_LOSSES = ("lambda", "listnet", "softmax")  # rows {query, docs, labels}: one list per query


@dataclass
class TrainingConfig:
    """The guide's hyper-parameters (section 12) and a few more. Defaults follow the guide."""
    loss: str = "bce"  # "bce" (BinaryCrossEntropy with pos_weight), "mnrl", "lambda" (LambdaLoss), "listnet", "softmax"
    epochs: int = 3
    batch_size: int = 16  # the guide: 16 (8 on an 8 GB GPU)
    learning_rate: float = 2e-5  # the guide: 2e-5 (1e-5 … 5e-5)
    warmup_ratio: float = 0.1  # the guide: about 10 % of the steps
    warmup_steps: int | None = None  # absolute warm-up steps; overrides warmup_ratio (the guide's engine: 100)
    weight_decay: float = 0.01
    max_length: int = 256  # the guide: 512 (or 256)
    gradient_accumulation_steps: int = 1
    pos_weight: float | None = None  # BCE: weight of positives; None = negatives per positive in the data
    mnrl_scale: float = 10.0
    eval_steps: int | None = None  # validate every N optimiser steps; None = once per epoch
    early_stopping_patience: int | None = 2  # evaluations without improvement before stopping; None = never
    seed: int = 42
    precision: str = "auto"  # "auto" (bf16/fp16 only on a GPU that supports it), "fp32", "fp16", "bf16"
    logging_steps: int = 10
    save_total_limit: int = 2
    lr_scheduler_type: str = "linear"
    # bridge reranker only (rerank_utils.models.bridge): learning rate of its cross-segment biases and scale,
    # which start far from where gradients of size 2e-5 could move them in a few hundred steps
    bridge_learning_rate: float = 5e-2
    # pairs per forward pass, sorted by token count inside each batch so each pass is padded to its own longest pair
    # (rerank_utils.training.micro_batches: notebook 03's recipes trained 1.23-1.27x faster on 2 CPU cores, and along
    # another random path); None: sentence-transformers' own passes. Off by default (benchmarks/README.md says why)
    sorted_micro_batch: int | None = None

    def validate(self) -> "TrainingConfig":
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "max_length", "gradient_accumulation_steps", "logging_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                problems.append(f"{name}={v!r}: a positive integer")
        if not (0 < self.learning_rate < 1):
            problems.append(f"learning_rate={self.learning_rate!r}: a number in (0, 1), e.g. 2e-5")
        if not (0 < self.bridge_learning_rate < 10):
            problems.append(f"bridge_learning_rate={self.bridge_learning_rate!r}: a number in (0, 10), e.g. 5e-2")
        if not (0 <= self.warmup_ratio < 1):
            problems.append(f"warmup_ratio={self.warmup_ratio!r}: a share of the steps in [0, 1)")
        if self.sorted_micro_batch is not None and (not isinstance(self.sorted_micro_batch, int) or self.sorted_micro_batch < 1):
            problems.append(f"sorted_micro_batch={self.sorted_micro_batch!r}: a positive integer (pairs per forward pass), or None")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            problems.append(f"precision={self.precision!r}: auto, fp32, fp16 or bf16")
        if problems:
            raise ValueError("invalid TrainingConfig: " + "; ".join(problems))
        return self


def _on_gpu(device: str | None) -> bool:
    return torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))


def resolve_precision(precision: str, device: str | None = None) -> tuple[bool, bool]:
    """``(fp16, bf16)`` flags for the Trainer. "auto" is half precision only on a CUDA GPU that supports it, fp32 on
    every CPU. "bf16" on a CPU is allowed only where the CPU computes bf16 natively (AVX512-BF16 or AMX: a training
    step 1.45-1.57x fp32's, ``benchmarks/bf16_training_step.py``); elsewhere it is emulated, 13-15x slower, and refused.
    "auto" stays fp32 on every CPU, so one recipe trains one model whatever the processor: bf16 training of the bridge
    recipe was 1.14x fp32's at -0.0002 test NDCG@10 (``benchmarks/bf16_training_quality.py``), an opt-in."""
    on_gpu = _on_gpu(device)
    if precision == "fp32":
        return False, False
    if precision == "bf16" and not on_gpu:
        if not cpu_has_bf16():
            raise ValueError("precision='bf16' on this CPU is emulated (no AVX512-BF16 or AMX) and 13-15x slower than fp32: "
                             "use 'auto' or 'fp32', or a GPU")
        return False, True
    if precision == "fp16" and not on_gpu:
        raise ValueError(f"precision={precision!r} needs a CUDA GPU; this run is on the CPU: use 'auto' or 'fp32'")
    if precision == "fp16":
        return True, False
    if precision == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16: use 'fp16' or 'auto'")
        return False, True
    if on_gpu:  # auto
        return (False, True) if torch.cuda.is_bf16_supported() else (True, False)
    return False, False
