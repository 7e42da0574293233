"""TODO docstring
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from rerank_utils.training.recipe_values import PARAMETER_NAMES
from rerank_utils.training.recipes import ARCHITECTURES
from rerank_utils.tutorial.profiles import PROFILES, get_profile

# Allowed values, as the package defines them (tests/unit/test_cli_pipeline.py checks these copies: importing
# rerank_utils.training, .mining or .bridge here would make `rerank-utils --help` load torch).
LOSSES = ("bce", "mnrl", "lambda", "listnet", "softmax")  # rerank_utils.training.arguments.LOSSES


NEGATIVE_STRATEGIES = ("random", "bm25", "dense", "mixed")  # rerank_utils.training.mining.STRATEGIES


HARD_SOURCES = ("dense", "bm25")  # rerank_utils.training.mining.HARD_SOURCES


BIAS_MODES = ("shared", "layer", "head")  # rerank_utils.models.bridge.BIAS_MODES


NAMED_SOURCES = ("faq-en", "faq-sv", "faq", "qasper")  # rerank_utils.data.sources.build_dataset's named sources


SPLITS = ("train", "val", "test")


NB01, NB03, NB04, NB05 = "01_data_preparation", "03_fine_tuning", "04_evaluation", "05_deployment"




# ------------------------------------------------------------------------------------------------ schema
@dataclass(frozen=True)
class Key:
    """One config key. ``kind``: int, float, str, bool, fractions, device, name, data or model.
    ``source``: where a profile's value comes from: ``("profile",)``, ``("name",)``, ``("common", param)`` or
    ``(notebook stem, param)``."""

    path: str
    kind: str
    help: str
    source: tuple
    choices: tuple = ()
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound `low` itself is not allowed
    high_open: bool = False

    @property
    def allowed(self) -> str:
        """What the key accepts, in words (error messages and configs/README.md)."""
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = _KIND_WORDS[self.kind]
            if self.low is not None or self.high is not None:
                lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {_num(self.low)}"
                hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {_num(self.high)}"
                text += " " + (f"{lo} and {hi}" if lo and hi else lo or hi)
        return text + (", or null" if self.nullable else "")

    @property
    def source_text(self) -> str:
        kind = self.source[0]
        if kind == "profile":
            return "the profile's name"
        if kind == "name":
            return "the profile's name (artifacts/<profile>/)"
        if kind == "common":
            return f"`{self.source[1]}` (every notebook)"
        return f"`{self.source[1]}` ({self.source[0]})"


_KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "fractions": "a mapping {train: x, val: y, test: z} of numbers > 0 (normalised to sum 1)",
    "device": "cpu, cuda, cuda:N or mps",
    "name": "a folder name (letters, digits, '.', '_', '-')",
    "data": "faq-en, faq-sv, faq, qasper, or the path of a BEIR folder, an MS MARCO folder, or a .json/.jsonl/.csv/.tsv triples file",
    "model": "'default' (the packaged all-MiniLM-L6-v2), a hub id (needs the hub) or a saved model folder",
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _recipe_keys(section: str, names: dict[str, str]) -> list[Key]:
    """The keys of one fine-tuning recipe; ``names`` maps a key to its 03_fine_tuning parameter."""
    spec = {
        "loss": dict(kind="str", choices=LOSSES, help="bce pointwise; lambda, listnet, softmax listwise; mnrl"),
        "negatives": dict(kind="str", choices=NEGATIVE_STRATEGIES, help="random, bm25, dense (bi-encoder) or mixed (hard + random)"),
        "num_negatives": dict(kind="int", low=1, help="negatives per query: the ratio 1 positive : N negatives"),
        "hard_fraction": dict(kind="float", low=0, high=1, help="mixed: the share of hard negatives, the rest random"),
        "hard_source": dict(kind="str", choices=HARD_SOURCES, help="mixed: the retriever that supplies the hard negatives"),
        "relative_margin": dict(kind="float", low=0, nullable=True, help="drop candidates above (1 - margin) x the positive's score: likely false negatives"),
        "epochs": dict(kind="int", low=1, help="training epochs (the best epoch on validation is kept)"),
        "learning_rate": dict(kind="float", low=0, high=1, low_open=True, high_open=True, help="learning rate of the encoder"),
        "bias_learning_rate": dict(kind="float", low=0, high=10, low_open=True, high_open=True, help="learning rate of the cross-segment biases and the scale"),
        "batch_size": dict(kind="int", low=1, help="pairs per step (bce); queries per step (listwise losses)"),
        "max_length": dict(kind="int", low=2, help="tokens the model reads per (query, passage) pair"),
        "warmup_ratio": dict(kind="float", low=0, high=1, high_open=True, help="share of the steps spent warming the learning rate up"),
        "weight_decay": dict(kind="float", low=0, help="AdamW weight decay"),
        "early_stopping_patience": dict(kind="int", low=1, nullable=True, help="epochs without a better val NDCG@10 before stopping; null: never"),
        "bias_mode": dict(kind="str", choices=BIAS_MODES, help="cross-segment biases: one shared, one per layer, or one per head"),
        "bias_start": dict(kind="float", help="-8: attention across segments scaled by e^-8, step 0 = the bi-encoder"),
    }
    return [Key(f"finetune.{section}.{k}", source=(NB03, p), **spec[k]) for k, p in names.items()]


_STANDARD = PARAMETER_NAMES[(NB03, "standard")]  # config key -> notebook 03's parameter


_BRIDGE = PARAMETER_NAMES[(NB03, "bridge")]


#: Every key a config may hold, in the order configs are written.
SCHEMA: tuple[Key, ...] = (
    Key("profile", "str", "its values fill every key this file does not set", ("profile",), choices=tuple(PROFILES)),
    Key("name", "name", "artifacts/<name>/ holds the splits, negatives and models; give your own data its own name", ("name",)),
    Key("seed", "int", "seed of the sample, split, mining and training", ("common", "seed")),
    Key("device", "device", "torch device for the models", ("common", "device")),
    Key("data_source", "data", "a named source or a path (relative to the working directory, the repository or this file)", ("common", "data_source")),
    Key("embedding_model", "model", "the bi-encoder: first stage, dense negatives, the bridge's start", ("common", "embedding_model")),
    Key("reranker_model", "model", "the model the standard cross-encoder is fine-tuned from", ("common", "reranker_model")),
    Key("max_queries", "int", "use a seeded sample of this many queries; null: all", ("common", "max_queries"), nullable=True, low=1),
    Key("prepare.split_fractions", "fractions", "train: training; val: every choice; test: the reported result", (NB01, "split_fractions")),
    Key("prepare.group_key", "str", "keep queries sharing this metadata value on one side (category, paper_id); null: none", (NB01, "group_key"), nullable=True),
    Key("finetune.architecture", "str", "the reranker mine, finetune, evaluate and export work on", (NB03, "default_reranker"), choices=ARCHITECTURES),
    Key("finetune.top_k", "int", "first-stage candidates reranked on validation each epoch", (NB03, "top_k"), low=1),
    *_recipe_keys("standard", _STANDARD),
    *_recipe_keys("bridge", _BRIDGE),
    Key("evaluate.top_k", "int", "first-stage candidates the reranker reorders", (NB04, "top_k"), low=1),
    Key("export.quantize", "bool", "also write the int8 ONNX model (model_qint8.onnx)", (NB05, "quantize")),
)


KEYS: dict[str, Key] = {k.path: k for k in SCHEMA}


#: What each section is for (comments in the YAML files, headings in configs/README.md).
SECTIONS = {
    "prepare": "the leak-free split (notebook 01_data_preparation): `rerank-utils prepare`",
    "finetune": "the recipes (notebook 03_fine_tuning): `rerank-utils mine` mines their negatives, `rerank-utils finetune` trains",
    "finetune.standard": "the standard cross-encoder: a new scoring head on reranker_model",
    "finetune.bridge": "the bridge reranker (notebook 14): grown from embedding_model, step 0 is the bi-encoder",
    "evaluate": "test-split evaluation with paired intervals (notebook 04_evaluation): `rerank-utils evaluate`",
    "export": "ONNX export of a bridge reranker (notebook 05_deployment): `rerank-utils export`",
}


#: Parameters of the notebooks that no key mirrors, and why (a test checks every other parameter has a key).
NOTEBOOK_ONLY = {
    NB01: {"max_length": "the token length notebook 01 measures against"},
    NB03: {"engine_train_queries": "the guide-engine demo", "engine_epochs": "the guide-engine demo"},
}


def _sections() -> list[str]:
    out: list[str] = []
    for key in SCHEMA:
        parts = key.path.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            s = ".".join(parts[:i])
            if s not in out:
                out.append(s)
    return out


def _get(tree: dict, path: str, default: Any = KeyError) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def _set(tree: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def profile_config(name: str) -> dict[str, Any]:
    """A profile's full config (nested dict), every value taken from ``PROFILES[name]``."""
    prof = get_profile(name)
    out: dict[str, Any] = {}
    for key in SCHEMA:
        kind = key.source[0]
        if kind in ("profile", "name"):
            value = prof.name
        elif kind == "common":
            value = prof.common[key.source[1]]
        else:
            value = prof.parameters_for(key.source[0])[key.source[1]]
        _set(out, key.path, json.loads(json.dumps(value)))  # a copy, tuples as lists
    return out


def _suggest(path: str, section_keys: Iterable[str]) -> str:
    """"; did you mean X?" for an unknown key ``path``: a close key of its own section, else the keys
    elsewhere with that name (or a close one), e.g. a recipe key written at the top level; "" when none."""
    parent, _, leaf = path.rpartition(".")
    close = difflib.get_close_matches(leaf, list(section_keys), n=2, cutoff=0.6)
    if close:
        found = [f"{parent + '.' if parent else ''}{c}" for c in close]
    else:
        by_leaf: dict[str, list[str]] = {}
        for p in [k.path for k in SCHEMA] + _sections():
            by_leaf.setdefault(p.rsplit(".", 1)[-1], []).append(p)
        leaves = [leaf] if leaf in by_leaf else difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.75)
        found = [p for name in leaves for p in by_leaf[name]][:4]
    return ("; did you mean " + " or ".join(found) + "?") if found else ""


def _children(section: str) -> list[str]:
    """The keys (leaves and sub-sections) directly under ``section`` ("" = the top level)."""
    prefix = section + "." if section else ""
    out: list[str] = []
    for path in [k.path for k in SCHEMA] + _sections():
        if path.startswith(prefix) and "." not in path[len(prefix):]:
            name = path[len(prefix):]
            if name not in out:
                out.append(name)
    return out


def _unknown_keys(data: dict, section: str = "") -> list[str]:
    problems = []
    sections = set(_sections())
    for k, v in data.items():
        path = f"{section}.{k}" if section else str(k)
        if path in KEYS:
            continue
        if path in sections:
            if isinstance(v, dict):
                problems += _unknown_keys(v, path)
            else:
                problems.append(f"{path}: expected a section (a mapping of {', '.join(_children(path))}), found {v!r}")
            continue
        where = f"the keys of {section}" if section else "the top-level keys"
        problems.append(f"{path}: unknown key{_suggest(path, _children(section))} ({where}: {', '.join(_children(section))})")
    return problems


def _known_only(data: dict, section: str = "") -> dict:
    """``data`` without its unknown keys and misplaced values (:func:`_unknown_keys` reports those)."""
    out = {}
    for k, v in data.items():
        path = f"{section}.{k}" if section else str(k)
        if path in KEYS:
            out[k] = v
        elif path in _sections() and isinstance(v, dict):
            out[k] = _known_only(v, path)
    return out


def _check_value(key: Key, value: Any) -> tuple[Any, str | None]:
    """``(value, None)`` when ``value`` suits ``key`` (a float written as YAML 1.1 reads "1e-4" becomes a
    number), else ``(value, problem)``."""
    if value is None:
        return value, (None if key.nullable else f"null is not allowed; expected {key.allowed}")
    kind = key.kind
    if kind == "float" and isinstance(value, str):
        try:  # PyYAML reads 1e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if kind in ("int", "float"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
            return value, f"{value!r} is not {'an integer' if kind == 'int' else 'a finite number'}; expected {key.allowed}"
        if kind == "float":
            value = float(value)
        bad = (key.low is not None and (value < key.low or (key.low_open and value == key.low))) or (
            key.high is not None and (value > key.high or (key.high_open and value == key.high)))
        return value, (f"{value!r} is out of range; expected {key.allowed}" if bad else None)
    if kind == "bool":
        return value, (None if isinstance(value, bool) else f"{value!r} is not true or false")
    if kind == "fractions":
        if not isinstance(value, dict) or set(value) != set(SPLITS):
            return value, f"{value!r}: expected {key.allowed}"
        bad = [s for s, x in value.items() if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0]
        return value, (f"{value!r}: the fraction of {', '.join(bad)} is not a number > 0" if bad else None)
    if not isinstance(value, str) or not value.strip():
        return value, f"{value!r} is not a non-empty string; expected {key.allowed}"
    if key.choices and value not in key.choices:
        close = difflib.get_close_matches(value, [str(c) for c in key.choices], n=1)
        return value, f"{value!r} is not allowed; choose one of {', '.join(map(str, key.choices))}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "device" and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", value):
        return value, f"{value!r} is not a device; expected {key.allowed}"
    if kind == "name" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        return value, f"{value!r} is not a folder name; expected {key.allowed}"
    return value, None
