"""The losses a recipe names (``bce``, ``mnrl``, ``lambda``, ``listnet``, ``softmax``) as sentence-transformers
cross-encoder losses; ``softmax`` is a listwise cross-entropy that sentence-transformers does not ship
(:class:`ListwiseSoftmaxLoss`, a subclass of its ``ListNetLoss``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from sentence_transformers.cross_encoder import losses
from sentence_transformers.cross_encoder.losses import ListNetLoss

from rerank_utils.training.arguments import TrainingConfig


def _make_loss(model, config: TrainingConfig, rows: Sequence[dict]):
    if config.loss == "bce":
        pos = sum(1 for r in rows if r["label"] >= 0.5)
        neg = len(rows) - pos
        weight = config.pos_weight if config.pos_weight is not None else (neg / pos if pos else 1.0)
        return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(weight)))
    if config.loss == "mnrl":
        n_neg = len(rows[0]) - 2 if rows else 0
        return losses.MultipleNegativesRankingLoss(model, num_negatives=n_neg, scale=config.mnrl_scale)
    if config.loss == "lambda":
        return losses.LambdaLoss(model)
    if config.loss == "softmax":
        return ListwiseSoftmaxLoss(model)
    return losses.ListNetLoss(model)


class ListwiseSoftmaxLoss(ListNetLoss):
    """Cross-entropy between ``softmax(scores)`` over each query's list and ``labels / sum(labels)``.

    With one positive per list this is the softmax (InfoNCE) loss over the query's own candidates, no
    in-batch negatives. ListNet proper compares with ``softmax(labels)``, which for 0/1 labels puts only
    e/(e + n - 1) of the target on the positive (0.28 for 8 candidates); feeding ``log(labels)`` to it
    gives ``labels / sum(labels)`` instead (a label 0 becomes log 0 = -inf, i.e. probability 0).
    """
    def forward(self, inputs, labels, prompt=None, task=None):
        logged = []
        for i, lab in enumerate(labels):
            lab = torch.as_tensor(lab, dtype=torch.float32)
            if not bool((lab > 0).any()):
                raise ValueError(f"softmax loss: list {i} of this batch has no positive label; every list needs one")
            if bool((lab < 0).any()):
                raise ValueError(f"softmax loss: list {i} has a negative label; labels must be >= 0")
            logged.append(torch.where(lab > 0, torch.log(lab.clamp(min=1e-30)), torch.full_like(lab, float("-inf"))))
        return super().forward(inputs, logged, prompt=prompt, task=task)
