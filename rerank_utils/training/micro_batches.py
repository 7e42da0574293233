"""Training batches fed by length: the pairs of one batch sorted by token count and run through the model in
micro-batches, each padded only to its own longest pair (``TrainingConfig.sorted_micro_batch``, off by default).

A training pass is padded to its longest pair. sentence-transformers' listwise losses run a batch of 4 queries x 8
candidates in passes of 4 pairs in input order: on notebook 03's recipes 22 % of the tokens computed are padding, in
small matrix products. With this knob the loss hands over the whole batch, and passes of 8 pairs sorted by length
leave 11 % (``benchmarks/sorted_micro_batch_training.py``: a whole training 1.23-1.27x faster on 2 CPU cores). The
scores are the same (padding is masked; the micro-batches are put back in the batch's order before the loss), so the
loss and its gradient are the same up to float rounding, and the batch, the loss over it and the optimiser step are
unchanged. What does change: dropout draws its masks per micro-batch, so a training run follows another random path
(notebook 03's standard recipe came out 0.046 and 0.019 NDCG@10 lower on test in two seeds, the bridge +0.004 and
-0.003: why it is off by default, in benchmarks/README.md).

Hand-written because sentence-transformers' listwise losses split a batch into ``mini_batch_size`` pieces in input
order (each padded to its longest; :func:`~rerank_utils.training.trainer.fine_tune` sets it to the whole batch when
this knob is on), and the Trainer's ``group_by_length`` regroups whole batches across the data set, which changes
which queries share a batch; neither sorts inside a batch. It wraps the model's ``forward`` for the length of
``trainer.train``, so every loss, pointwise or listwise, sees it alike.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def _right_padded(mask: torch.Tensor) -> bool:
    """Every row's tokens come first, then its padding (what sorting by length and cutting columns needs)."""
    return bool((mask.cumprod(dim=1).sum(dim=1) == mask.sum(dim=1)).all())


def sorted_forward(forward, features: dict, size: int, **kwargs) -> dict:
    """``forward(features)`` computed in micro-batches of ``size`` rows, longest first, each cut to its own longest
    row; ``features["scores"]`` back in the rows' order. A batch of at most ``size`` rows, or one not padded on the
    right, goes through ``forward`` whole."""
    mask = features.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[0] <= size or not _right_padded(mask):
        return forward(features, **kwargs)
    rows, width = mask.shape
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    scores = []
    for start in range(0, rows, size):
        idx = order[start: start + size]
        cut = int(lengths[idx[0]])
        part = {}
        for name, value in features.items():
            if torch.is_tensor(value) and value.dim() >= 2 and tuple(value.shape[:2]) == (rows, width):
                part[name] = value[idx, :cut]
            elif torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == rows:
                part[name] = value[idx]
            else:
                part[name] = value
        scores.append(forward(part, **kwargs)["scores"])
    return {**features, "scores": torch.cat(scores)[torch.argsort(order)]}


@contextmanager
def sorted_micro_batches(model: torch.nn.Module, size: int | None) -> Iterator[torch.nn.Module]:
    """Within the block, ``model`` (a sentence-transformers ``CrossEncoder``) runs every batch through
    :func:`sorted_forward` with micro-batches of ``size`` rows; ``None`` or 0 leaves it as it is. The model's own
    ``forward`` is back afterwards (what is saved, predicted or exported is never wrapped)."""
    if not size:
        yield model
        return
    had_own = "forward" in vars(model)
    inner = model.forward

    def forward(features, **kwargs):
        return sorted_forward(inner, features, size, **kwargs)

    model.forward = forward
    try:
        yield model
    finally:
        if had_own:
            model.forward = inner
        else:
            del model.forward
