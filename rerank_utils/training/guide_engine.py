"""The guide's ``CrossEncoderFinetuneEngine`` (``llama-index-finetuning``, deprecated and broken on today's stack)
kept as a thin class over :func:`rerank_utils.training.trainer.fine_tune`, so the guide's code runs as written.
Shown in notebook ``03_fine_tuning``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from llama_index.core.postprocessor import SentenceTransformerRerank
from sentence_transformers import CrossEncoder

from rerank_utils.data.triples import validate_triples
from rerank_utils.models.resolve import hub_reachable, is_offline
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.samples import _as_triple, samples_from_triples
from rerank_utils.training.trainer import FineTuneResult, fine_tune


def _validated(records: Sequence[Any], source: str):
    """``(records, report)`` of the guide's triples (or LlamaIndex-style samples), bad ones rejected."""
    return validate_triples([_as_triple(x) for x in records], source=source, mode="strict", require_positive=False)


class CrossEncoderFinetuneEngine:
    """The guide's fine-tuning engine, working on today's libraries.

    The guide imports ``CrossEncoderFinetuneEngine`` from ``llama_index.finetuning``; that package is
    deprecated, does not import on current packages, and never had this signature. Change only the import::
    ``train_dataset`` / ``val_dataset``: the guide's records ``{"query", "passage", "score"}`` or
    LlamaIndex-style samples with ``query``, ``context``, ``score``. Bad records are rejected with the
    validator's errors (record index and field). Training runs :func:`~rerank_utils.training.trainer.fine_tune` with BCE.
    """
    def __init__(
        self,
        train_dataset: Sequence[Any] | None = None,
        val_dataset: Sequence[Any] | None = None,
        model_id: str = "cross-encoder/ms-marco-MiniLM-L-12-v2",
        model_output_path: str = "exp_finetune",
        batch_size: int = 16,
        epochs: int = 3,
        learning_rate: float = 2e-5,
        warmup_steps: int | None = 100,
        show_progress: bool = True,
        max_length: int = 256,
        loss: str = "bce",
        weight_decay: float = 0.01,
        seed: int = 42,
        device: str | None = None,
        early_stopping_patience: int | None = 2,
        dataset: Sequence[Any] | None = None,  # the name llama-index-finetuning used for train_dataset
    ):
        train_dataset = dataset if train_dataset is None else train_dataset
        if train_dataset is None:
            raise ValueError("CrossEncoderFinetuneEngine needs train_dataset (a list of {query, passage, score} records)")
        self.train_records, self.train_report = _validated(train_dataset, "train_dataset")
        self.val_records = None
        if val_dataset:
            self.val_records, self.val_report = _validated(val_dataset, "val_dataset")
        if loss != "bce":
            raise ValueError("the engine trains on labelled pairs: loss must be 'bce' (use fine_tune for ranking losses)")
        self.model_id, self.model_output_path = model_id, Path(model_output_path)
        self.show_progress, self.device = show_progress, device
        self.config = TrainingConfig(
            loss=loss, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, warmup_steps=warmup_steps,
            max_length=max_length, weight_decay=weight_decay, seed=seed, early_stopping_patience=early_stopping_patience,
        ).validate()
        self.result: FineTuneResult | None = None

    def finetune(self) -> FineTuneResult:
        """Train and save to ``model_output_path`` (the best validation checkpoint when a val set is given)."""
        rows = [{"query": r["query"], "passage": r["passage"], "label": float(r["score"])} for r in self.train_records]
        val = samples_from_triples(self.val_records) if self.val_records else None
        self.result = fine_tune(
            self.model_id, rows, self.model_output_path, self.config, val_samples=val, device=self.device, show_progress=self.show_progress,
            card={"base_model": self.model_id, "data": f"{len(rows)} labelled pairs (guide format)"},
        )
        return self.result

    def _require_model(self) -> None:
        if not (self.model_output_path / "config.json").is_file():
            raise FileNotFoundError(f"no fine-tuned model in {self.model_output_path}: call finetune() first")

    def get_finetuned_model(self, top_n: int = 3, **kwargs):
        """The fine-tuned model as a LlamaIndex node postprocessor (``SentenceTransformerRerank``)."""
        self._require_model()
        kwargs.setdefault("device", self.device or "cpu")
        return SentenceTransformerRerank(model=str(self.model_output_path), top_n=top_n, **kwargs)

    def push_to_hub(self, repo_id: str, private: bool = True, token: str | None = None) -> str:
        """Upload the fine-tuned model to the Hugging Face hub (needs the hub and a write token)."""
        self._require_model()
        if not hub_reachable():
            why = "offline mode is on (HF_HUB_OFFLINE=1)" if is_offline() else "the Hugging Face hub cannot be reached"
            raise ConnectionError(
                f"push_to_hub({repo_id!r}) needs the Hugging Face hub, but {why}. The model is saved in "
                f"{self.model_output_path}; copy that folder, or push it later from a machine with network access "
                "(`hf upload <repo_id> <folder>`)."
            )
        return CrossEncoder(str(self.model_output_path)).push_to_hub(repo_id, private=private, token=token)
