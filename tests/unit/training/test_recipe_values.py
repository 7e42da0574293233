"""A recipe has one home (rerank_utils.training.recipe_values): notebooks 03 and 14 and the CLI build it by one function
of the same values. The notebooks' own `parameters` cells are executed here, as papermill would run them."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from rerank_utils.cli.config_files import load_config
from rerank_utils.cli.steps import recipe_for
from rerank_utils.training.recipe_schema import RECIPE_KEYS
from rerank_utils.training.recipe_values import (
    recipe_from_parameters,
    recipe_from_values,
    retriever_recipe_from_values,
)
from rerank_utils.tutorial.profiles import PROFILES

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


def parameters_of(notebook: str, profile: str) -> dict:
    """The notebook's namespace after its `parameters` cell and the profile's injected values (the runner's order)."""
    nb = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102 - the repository's own notebook cell
    namespace.update(PROFILES[profile].parameters_for(notebook))
    return namespace


@pytest.mark.parametrize("profile", list(PROFILES))
def test_notebook_03_builds_the_recipes_the_cli_builds(profile):
    params, cfg = parameters_of("03_fine_tuning", profile), load_config(profile=profile)
    for arch in ("standard", "bridge"):
        assert recipe_from_parameters(params, "03_fine_tuning", arch) == recipe_for(cfg, arch), (profile, arch)
    assert recipe_for(cfg).architecture == params["default_reranker"]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_notebook_14_builds_notebook_03s_bridge_so_it_reuses_it(profile):
    assert (recipe_from_parameters(parameters_of("14_bridge_reranker", profile), "14_bridge_reranker", "bridge")
            == recipe_from_parameters(parameters_of("03_fine_tuning", profile), "03_fine_tuning", "bridge")), profile


def test_the_cpu_defaults_of_the_cell_are_the_cpu_profile():
    """Executed without injection, notebook 03's cell already holds the cpu profile's recipe."""
    nb = nbformat.read(NOTEBOOKS / "03_fine_tuning.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102
    assert recipe_from_parameters(namespace, "03_fine_tuning", "bridge") == recipe_for(load_config(profile="cpu"), "bridge")


def test_values_build_each_architectures_recipe_and_wrong_keys_are_named():
    values = {"loss": "softmax", "negatives": "mixed", "num_negatives": 7, "hard_fraction": 0.57, "hard_source": "dense",
              "relative_margin": 0.05, "epochs": 2, "learning_rate": 5e-5, "bias_learning_rate": 5e-2, "batch_size": 4,
              "max_length": 256, "warmup_ratio": 0.1, "early_stopping_patience": 2, "bias_mode": "layer", "bias_start": -8.0}
    r = recipe_from_values("bridge", values, seed=7)
    assert r.architecture == "bridge" and r.bridge == {"bias_mode": "layer", "bias_start": -8.0}
    assert r.training.bridge_learning_rate == 5e-2 and r.mining.seed == r.training.seed == 7 and r.mining.hard_fraction == 0.57
    assert set(values) == set(RECIPE_KEYS["bridge"])
    with pytest.raises(ValueError, match=r"missing \['weight_decay'\]; unknown \['bias_learning_rate', 'bias_mode', 'bias_start'\]"):
        recipe_from_values("standard", values, seed=7)
    with pytest.raises(ValueError, match="architecture='colbert'"):
        recipe_from_values("colbert", values, seed=7)
    with pytest.raises(ValueError, match=r"14_bridge_reranker's parameters lack \['bridge_learning_rate'\]"):
        recipe_from_parameters({**values, "seed": 1}, "14_bridge_reranker", "bridge")


@pytest.mark.parametrize("profile", list(PROFILES))
def test_notebook_03s_retriever_recipe_is_the_clis(profile):
    """Notebook 03's retriever recipe (its parameters cell run with the profile's values) is what
    `rerank-utils finetune-retriever` builds from the same values, so either reuses the other's model."""
    ns = parameters_of("03_fine_tuning", profile)
    recipe = recipe_from_parameters(ns, "03_fine_tuning", "retriever")
    assert recipe == retriever_recipe_from_values(ns["seed"], negatives=ns["retriever_negatives"], epochs=ns["retriever_epochs"],
                                                  learning_rate=ns["retriever_learning_rate"], batch_size=ns["retriever_batch_size"])
    assert recipe.mining.strategy == "dense" and recipe.mining.num_negatives == ns["retriever_negatives"] and recipe.seed == ns["seed"]
    del ns["retriever_epochs"]
    with pytest.raises(ValueError, match="lack \\['retriever_epochs'\\]"):
        recipe_from_parameters(ns, "03_fine_tuning", "retriever")


def test_recipe_values_are_checked_by_the_schema():
    """recipe_from_values validates through training.recipe_schema's models: a wrong type or bound is named."""
    values = dict(parameters_of("03_fine_tuning", "smoke"))
    params = {k: values[p] for k, p in {**{k: k for k in ("loss", "negatives", "num_negatives", "hard_fraction", "hard_source",
                                                          "relative_margin", "epochs", "learning_rate", "batch_size",
                                                          "max_length", "warmup_ratio", "weight_decay",
                                                          "early_stopping_patience")}}.items()}
    assert recipe_from_values("standard", params, 1).training.epochs == params["epochs"]
    with pytest.raises(ValueError, match="epochs"):
        recipe_from_values("standard", {**params, "epochs": "three"}, 1)
    with pytest.raises(ValueError, match="hard_fraction"):
        recipe_from_values("standard", {**params, "hard_fraction": 1.5}, 1)
    with pytest.raises(ValueError, match="loss"):
        recipe_from_values("standard", {**params, "loss": "hinge"}, 1)
