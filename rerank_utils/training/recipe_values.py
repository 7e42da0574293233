"""A recipe's one home (issue 13): the :class:`~rerank_utils.training.recipes.Recipe` built from a profile's values.

Notebook 03 (both architectures), notebook 14 (the bridge) and the CLI (``finetune``, from a config's
``finetune.<architecture>`` section) all call :func:`recipe_from_values`, so a model one of them trained is the
model the others reuse: a saved model is reused only when its recipe is equal. The notebooks name their
parameters their own way (03 prefixes the bridge's with ``bridge_``; 14, which trains only the bridge, does not);
:data:`~rerank_utils.training.recipe_schema.PARAMETER_NAMES` maps each recipe value to the parameter that holds it, and :func:`recipe_from_parameters`
reads them out of a notebook's namespace.
"""

from __future__ import annotations

from typing import Any, Mapping

from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.mining import MiningConfig
from rerank_utils.training.recipe_schema import (
    PARAMETER_NAMES,
    RECIPE_KEYS,
    RECIPE_VALUES,
)
from rerank_utils.training.recipes import ARCHITECTURES, Recipe
from rerank_utils.training.retriever import RetrieverRecipe


def recipe_from_values(architecture: str, values: Mapping[str, Any], seed: int, name: str | None = None) -> Recipe:
    """The recipe of ``architecture`` from ``values`` (:data:`~rerank_utils.training.recipe_schema.RECIPE_KEYS`; extra keys are an error, so a value
    nobody reads cannot be set by mistake). ``name`` defaults to the architecture."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r}: choose one of {', '.join(ARCHITECTURES)}")
    want = set(RECIPE_KEYS[architecture])
    missing, extra = sorted(want - set(values)), sorted(set(values) - want)
    if missing or extra:
        raise ValueError(f"the {architecture} recipe takes exactly {', '.join(RECIPE_KEYS[architecture])}: "
                         + "; ".join(f"{what} {keys}" for what, keys in (("missing", missing), ("unknown", extra)) if keys))
    v = RECIPE_VALUES[architecture].model_validate(dict(values)).model_dump()  # types, choices and bounds
    mining = MiningConfig(strategy=v["negatives"], num_negatives=v["num_negatives"], hard_fraction=v["hard_fraction"],
                          hard_source=v["hard_source"], relative_margin=v["relative_margin"], seed=seed)
    common = dict(loss=v["loss"], epochs=v["epochs"], learning_rate=v["learning_rate"], batch_size=v["batch_size"],
                  max_length=v["max_length"], warmup_ratio=v["warmup_ratio"], early_stopping_patience=v["early_stopping_patience"],
                  seed=seed)
    if architecture == "standard":
        return Recipe(name or "standard", mining, TrainingConfig(**common, weight_decay=v["weight_decay"]))
    return Recipe(name or "bridge", mining, TrainingConfig(**common, bridge_learning_rate=v["bias_learning_rate"]),
                  architecture="bridge", bridge={"bias_mode": v["bias_mode"], "bias_start": v["bias_start"]})


#: notebook 03's parameters of the retriever's recipe (issue 12's stock recipe), by argument of
#: :func:`retriever_recipe_from_values`
RETRIEVER_PARAMETER_NAMES = {"negatives": "retriever_negatives", "epochs": "retriever_epochs",
                             "learning_rate": "retriever_learning_rate", "batch_size": "retriever_batch_size"}


def retriever_recipe_from_values(seed: int, negatives: int = 1, epochs: int = 2, learning_rate: float = 5e-5,
                                 batch_size: int = 32, max_length: int = 256) -> RetrieverRecipe:
    """The embedding model's fine-tuning recipe: ``negatives`` dense hard negatives per query from the base model's
    top 10, MultipleNegativesRankingLoss. Notebook 03 (through :func:`recipe_from_parameters` with
    ``architecture="retriever"``) and ``rerank-utils finetune-retriever`` build it here, so either reuses the
    other's model."""
    mining = MiningConfig(strategy="dense", num_negatives=negatives, range_max=10, seed=seed)
    return RetrieverRecipe(mining, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                           seed=seed).validate()


def recipe_values_from_parameters(params: Mapping[str, Any], notebook: str, architecture: str) -> dict[str, Any]:
    """The recipe values held by a notebook's parameters (``params``: its namespace or its profile's values);
    ``architecture="retriever"``: the arguments of :func:`retriever_recipe_from_values`, in any notebook."""
    try:
        names = RETRIEVER_PARAMETER_NAMES if architecture == "retriever" else PARAMETER_NAMES[(notebook, architecture)]
    except KeyError:
        raise ValueError(f"no {architecture} recipe in {notebook}: known are {sorted(PARAMETER_NAMES)}") from None
    missing = [p for p in names.values() if p not in params]
    if missing:
        raise ValueError(f"{notebook}'s parameters lack {missing} (the {architecture} recipe's values)")
    return {key: params[p] for key, p in names.items()}


def recipe_from_parameters(params: Mapping[str, Any], notebook: str, architecture: str) -> Recipe | RetrieverRecipe:
    """The recipe a notebook trains, from its parameters (in the notebook: ``recipe_from_parameters(globals(),
    "03_fine_tuning", "bridge")``; ``architecture="retriever"``: notebook 03's embedding-model recipe): the same
    function of the same values as the CLI's."""
    values = recipe_values_from_parameters(params, notebook, architecture)
    if architecture == "retriever":
        return retriever_recipe_from_values(params["seed"], **values)
    return recipe_from_values(architecture, values, params["seed"])
