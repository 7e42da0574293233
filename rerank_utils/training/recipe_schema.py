"""The values a fine-tuning recipe is made of, as pydantic models: what each value means, its type, its allowed
values and bounds. One definition serves three readers: :func:`rerank_utils.training.recipe_values.recipe_from_values`
(notebooks 03 and 14 and the CLI build every recipe through it), the config schema of ``rerank-utils``
(:mod:`rerank_utils.cli.schema`: a config's ``finetune.standard`` and ``finetune.bridge`` sections are these
models) and the generated key table of ``configs/README.md``.

This module imports pydantic only, so ``rerank-utils check-config`` validates a config without loading torch; the
allowed values are copies of the package's (``training.arguments.LOSSES``, ``training.mining.STRATEGIES`` and
``HARD_SOURCES``, ``models.bridge.BIAS_MODES``), and ``tests/unit/cli/test_cli_pipeline.py`` checks the copies are equal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

ARCHITECTURES = ("standard", "bridge")
LOSSES = ("bce", "mnrl", "lambda", "listnet", "softmax")
NEGATIVE_STRATEGIES = ("random", "bm25", "dense", "mixed")
HARD_SOURCES = ("dense", "bm25")
BIAS_MODES = ("shared", "layer", "head")


def _number(value: Any) -> Any:
    """YAML 1.1 (PyYAML) reads ``1e-4`` (no dot) as a string: such a string is the number it spells. Booleans and
    non-finite numbers stay as they are, for the model to refuse them."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: a finite number (an int is one too); a numeric string is read as the number
Number = Annotated[float, BeforeValidator(_number), Field(strict=True, allow_inf_nan=False)]


def key(help: str, kind: str, **constraints: Any) -> Any:
    """A field with its meaning (``help``, written beside the key in configs and their README) and its ``kind``
    (how the error messages and the README say what it accepts)."""
    return Field(..., description=help, json_schema_extra={"kind": kind}, **constraints)


class Strict(BaseModel):
    """A section of a config: unknown keys are errors, never ignored."""
    model_config = ConfigDict(extra="forbid", strict=True)


class _RecipeValues(Strict):
    loss: Literal[LOSSES] = key("bce pointwise; lambda, listnet, softmax listwise; mnrl", "str")
    negatives: Literal[NEGATIVE_STRATEGIES] = key("random, bm25, dense (bi-encoder) or mixed (hard + random)", "str")
    num_negatives: StrictInt = key("negatives per query: the ratio 1 positive : N negatives", "int", ge=1)
    hard_fraction: Number = key("mixed: the share of hard negatives, the rest random", "float", ge=0, le=1)
    hard_source: Literal[HARD_SOURCES] = key("mixed: the retriever that supplies the hard negatives", "str")
    relative_margin: Optional[Number] = key("drop candidates above (1 - margin) x the positive's score: likely false negatives", "float", ge=0)
    epochs: StrictInt = key("training epochs (the best epoch on validation is kept)", "int", ge=1)
    learning_rate: Number = key("learning rate of the encoder", "float", gt=0, lt=1)


class StandardRecipeValues(_RecipeValues):
    """The standard cross-encoder's recipe: a new scoring head on ``reranker_model``."""
    batch_size: StrictInt = key("pairs per step (bce); queries per step (listwise losses)", "int", ge=1)
    max_length: StrictInt = key("tokens the model reads per (query, passage) pair", "int", ge=2)
    warmup_ratio: Number = key("share of the steps spent warming the learning rate up", "float", ge=0, lt=1)
    weight_decay: Number = key("AdamW weight decay", "float", ge=0)
    early_stopping_patience: Optional[StrictInt] = key("epochs without a better val NDCG@10 before stopping; null: never", "int", ge=1)


class BridgeRecipeValues(_RecipeValues):
    """The bridge reranker's recipe (notebook 14): grown from ``embedding_model``, step 0 is the bi-encoder."""
    bias_learning_rate: Number = key("learning rate of the cross-segment biases and the scale", "float", gt=0, lt=10)
    batch_size: StrictInt = key("pairs per step (bce); queries per step (listwise losses)", "int", ge=1)
    max_length: StrictInt = key("tokens the model reads per (query, passage) pair", "int", ge=2)
    warmup_ratio: Number = key("share of the steps spent warming the learning rate up", "float", ge=0, lt=1)
    early_stopping_patience: Optional[StrictInt] = key("epochs without a better val NDCG@10 before stopping; null: never", "int", ge=1)
    bias_mode: Literal[BIAS_MODES] = key("cross-segment biases: one shared, one per layer, or one per head", "str")
    bias_start: Number = key("-8: attention across segments scaled by e^-8, step 0 = the bi-encoder", "float")


RECIPE_VALUES: dict[str, type[_RecipeValues]] = {"standard": StandardRecipeValues, "bridge": BridgeRecipeValues}

#: the values each architecture's recipe is built from (the keys of a config's ``finetune.<architecture>``)
RECIPE_KEYS: dict[str, tuple[str, ...]] = {arch: tuple(model.model_fields) for arch, model in RECIPE_VALUES.items()}

_SHARED_IN_03 = ("negatives", "hard_source", "relative_margin", "batch_size", "warmup_ratio", "early_stopping_patience")

#: (notebook, architecture) -> {recipe value: the notebook's parameter name}. Notebook 03 prefixes the bridge's own
#: values with ``bridge_``; 14, which trains only the bridge, does not.
PARAMETER_NAMES: dict[tuple[str, str], dict[str, str]] = {
    ("03_fine_tuning", "standard"): {k: k for k in RECIPE_KEYS["standard"]},
    ("03_fine_tuning", "bridge"): {k: (k if k in _SHARED_IN_03 else "bridge_" + k) for k in RECIPE_KEYS["bridge"]},
    ("14_bridge_reranker", "bridge"): {**{k: k for k in RECIPE_KEYS["bridge"]}, "bias_learning_rate": "bridge_learning_rate"},
}

