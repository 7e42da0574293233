"""The schema of a ``rerank-utils`` config, as pydantic v2 models, and the messages its errors become.

:class:`PipelineSchema` is the whole config: unknown keys, wrong types, choices and bounds are refused by the models
themselves (``extra="forbid"``, strict types, ``Literal`` choices, ``ge``/``gt``/``le``/``lt`` bounds). The recipe
sections are :mod:`rerank_utils.training.recipe_schema`'s models, the ones every recipe is built through.

Each field's ``description`` is the key's meaning and its ``json_schema_extra`` says where a profile's value comes
from (``source``: the profile's name, a parameter every notebook has, or one notebook's parameter), so
:func:`profile_config` builds a profile's config from ``PROFILES`` and ``configs/<profile>.yaml`` cannot drift from
the notebooks. :data:`SCHEMA` is the same fields flattened to :class:`Key` rows (dotted path, allowed values in
words, source), which the YAML writer and ``configs/README.md``'s table read.

:func:`problems` turns a pydantic ``ValidationError`` into the lines users read: the dotted key, the value and what
is allowed, with "did you mean" for an unknown key or a near-miss choice.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Optional, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, StrictBool, StrictInt, ValidationError

from rerank_utils.training.recipe_schema import (
    ARCHITECTURES,
    PARAMETER_NAMES,
    BridgeRecipeValues,
    Number,
    StandardRecipeValues,
    Strict,
    key,
)
from rerank_utils.tutorial.profiles import PROFILES, get_profile

NAMED_SOURCES = ("faq-en", "faq-sv", "faq", "qasper")  # rerank_utils.data.sources.build_dataset's named sources
SPLITS = ("train", "val", "test")
NB01, NB03, NB04, NB05 = "01_data_preparation", "03_fine_tuning", "04_evaluation", "05_deployment"

_PATTERNS = {"device": r"cpu|cuda(:\d+)?|mps", "name": r"[A-Za-z0-9][A-Za-z0-9._-]*", "str": r"(?s).*\S.*",
             "data": r"(?s).*\S.*", "model": r"(?s).*\S.*"}


def _key(help: str, kind: str, source: tuple, **constraints: Any) -> Any:
    if kind in _PATTERNS:
        constraints["pattern"] = f"^(?:{_PATTERNS[kind]})$"
    field = key(help, kind, **constraints)
    field.json_schema_extra["source"] = source
    return field


def _recipe_sources(model: type[BaseModel], architecture: str) -> None:
    """Each recipe value's source: the notebook-03 parameter that holds it."""
    for name, field in model.model_fields.items():
        field.json_schema_extra = {**field.json_schema_extra, "source": (NB03, PARAMETER_NAMES[(NB03, architecture)][name])}


_recipe_sources(StandardRecipeValues, "standard")
_recipe_sources(BridgeRecipeValues, "bridge")


class SplitFractions(Strict):
    train: Number = _key("share of the queries trained on", "float", (NB01, "split_fractions"), gt=0)
    val: Number = _key("share of the queries every choice is made on", "float", (NB01, "split_fractions"), gt=0)
    test: Number = _key("share of the queries the result is reported on", "float", (NB01, "split_fractions"), gt=0)


class PrepareSection(Strict):
    """the leak-free split (notebook 01_data_preparation): `rerank-utils prepare`"""
    split_fractions: SplitFractions = _key("train: training; val: every choice; test: the reported result", "fractions", (NB01, "split_fractions"))
    group_key: Optional[str] = _key("keep queries sharing this metadata value on one side (category, paper_id); null: none", "str",
                                    (NB01, "group_key"))
    resplit: StrictBool = _key("a BEIR folder with its own qrels/train.tsv (dev.tsv) and test.tsv keeps those splits; true: re-split it",
                               "bool", (NB01, "resplit"))


class FinetuneSection(Strict):
    """the recipes (notebook 03_fine_tuning): `rerank-utils mine` mines their negatives, `rerank-utils finetune` trains"""
    architecture: Literal[ARCHITECTURES] = _key("the reranker mine, finetune, evaluate and export work on", "str", (NB03, "default_reranker"))
    top_k: StrictInt = _key("first-stage candidates reranked on validation each epoch", "int", (NB03, "top_k"), ge=1)
    standard: StandardRecipeValues = _key("the standard cross-encoder: a new scoring head on reranker_model", "section", ())
    bridge: BridgeRecipeValues = _key("the bridge reranker (notebook 14): grown from embedding_model, step 0 is the bi-encoder", "section", ())


class EvaluateSection(Strict):
    """test-split evaluation with paired intervals (notebook 04_evaluation): `rerank-utils evaluate`"""
    top_k: StrictInt = _key("first-stage candidates the reranker reorders", "int", (NB04, "top_k"), ge=1)
    fast_inference: StrictBool = _key("rerank through OpenVINO bf16 where this CPU computes bf16 natively (about 2x; bf16 rounding can swap "
                                      "near ties); false: PyTorch fp32, notebook 03's numbers exactly", "bool", (NB04, "fast_inference"))


class ExportSection(Strict):
    """ONNX export of the reranker (notebook 05_deployment): `rerank-utils export`"""
    quantize: StrictBool = _key("also write the int8 models (model_qint8.onnx; openvino_int8.xml with OpenVINO)", "bool", (NB05, "quantize"))


class PipelineSchema(Strict):
    """A whole config, every key present (a file's keys on top of its profile's values)."""
    profile: Literal[tuple(PROFILES)] = _key("its values fill every key this file does not set", "str", ("profile",))
    name: str = _key("artifacts/<name>/ holds the splits, negatives and models; give your own data its own name", "name", ("name",))
    seed: StrictInt = _key("seed of the sample, split, mining and training", "int", ("common", "seed"))
    device: str = _key("torch device for the models", "device", ("common", "device"))
    data_source: str = _key("a named source or a path (relative to the working directory, the repository or this file)", "data",
                            ("common", "data_source"))
    embedding_model: str = _key("the bi-encoder: first stage, dense negatives, the bridge's start", "model", ("common", "embedding_model"))
    reranker_model: str = _key("the model the standard cross-encoder is fine-tuned from", "model", ("common", "reranker_model"))
    max_queries: Optional[StrictInt] = _key("use a seeded sample of this many queries; null: all", "int", ("common", "max_queries"), ge=1)
    prepare: PrepareSection = _key(PrepareSection.__doc__, "section", ())
    finetune: FinetuneSection = _key(FinetuneSection.__doc__, "section", ())
    evaluate: EvaluateSection = _key(EvaluateSection.__doc__, "section", ())
    export: ExportSection = _key(ExportSection.__doc__, "section", ())


# --------------------------------------------------------------------------------------- the keys, flat
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


@dataclass(frozen=True)
class Key:
    """One config key, read off the pydantic field: ``kind`` (int, float, str, bool, fractions, device, name, data,
    model), ``source`` (``("profile",)``, ``("name",)``, ``("common", param)`` or ``(notebook stem, param)``)."""
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


def _walk(model: type[BaseModel], prefix: str = ""):
    """``(dotted path, field)`` of every field of ``model``, each section followed by its own fields."""
    for name, field in model.model_fields.items():
        yield prefix + name, field
        if field.json_schema_extra["kind"] == "section":
            yield from _walk(field.annotation, prefix + name + ".")


def _key_row(path: str, field: Any) -> Key:
    """A leaf field as a :class:`Key`: null allowed, choices and bounds read off its annotation and metadata."""
    annotation, nullable = field.annotation, False
    if get_origin(annotation) is not None and type(None) in get_args(annotation):  # Optional[X]
        nullable = True
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    choices = get_args(annotation) if get_origin(annotation) is Literal else ()
    bounds: dict[str, Any] = {}
    for m in field.metadata:
        if isinstance(m, (Ge, Gt)):
            bounds.update(low=float(m.ge if isinstance(m, Ge) else m.gt), low_open=isinstance(m, Gt))
        elif isinstance(m, (Le, Lt)):
            bounds.update(high=float(m.le if isinstance(m, Le) else m.lt), high_open=isinstance(m, Lt))
    extra = field.json_schema_extra
    return Key(path, extra["kind"], field.description, tuple(extra["source"]), tuple(choices), nullable, **bounds)


#: Every key a config may hold, in the order configs are written.
SCHEMA: tuple[Key, ...] = tuple(_key_row(path, f) for path, f in _walk(PipelineSchema) if f.json_schema_extra["kind"] != "section")
KEYS: dict[str, Key] = {k.path: k for k in SCHEMA}
#: What each section is for (comments in the YAML files, headings in configs/README.md).
SECTIONS: dict[str, str] = {path: f.description for path, f in _walk(PipelineSchema) if f.json_schema_extra["kind"] == "section"}

#: Parameters of the notebooks that no key mirrors, and why (a test checks every other parameter has a key).
NOTEBOOK_ONLY = {
    NB01: {"max_length": "the token length notebook 01 measures against"},
    NB03: {"engine_train_queries": "the guide-engine demo", "engine_epochs": "the guide-engine demo",
           "retriever_epochs": "finetune-retriever --epochs (default 2, the cpu value)"},
}


def get(tree: dict, path: str, default: Any = KeyError) -> Any:
    """The value at the dotted ``path`` of a nested config."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def put(tree: dict, path: str, value: Any) -> None:
    """Set the dotted ``path`` of a nested config to ``value``, creating the sections on the way."""
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def profile_config(name: str) -> dict[str, Any]:
    """A profile's full config (nested dict), every value taken from ``PROFILES[name]``."""
    prof = get_profile(name)
    out: dict[str, Any] = {}
    for k in SCHEMA:
        kind = k.source[0]
        if kind in ("profile", "name"):
            value = prof.name
        elif kind == "common":
            value = prof.common[k.source[1]]
        else:
            value = prof.parameters_for(k.source[0])[k.source[1]]
        put(out, k.path, json.loads(json.dumps(value)))  # a copy, tuples as lists
    return out


# ------------------------------------------------------------------------------------- error messages
def children(section: str) -> list[str]:
    """The keys (leaves and sub-sections) directly under ``section`` ("" = the top level), in schema order."""
    prefix = section + "." if section else ""
    return list(dict.fromkeys(k.path[len(prefix):].split(".")[0] for k in SCHEMA if k.path.startswith(prefix)))


def suggest(path: str, section_keys: Iterable[str]) -> str:
    """"; did you mean X?" for an unknown key ``path``: a close key of its own section, else the keys
    elsewhere with that name (or a close one), e.g. a recipe key written at the top level; "" when none."""
    parent, _, leaf = path.rpartition(".")
    close = difflib.get_close_matches(leaf, list(section_keys), n=2, cutoff=0.6)
    if close:
        found = [f"{parent + '.' if parent else ''}{c}" for c in close]
    else:
        by_leaf: dict[str, list[str]] = {}
        for p in [*KEYS, *SECTIONS]:
            by_leaf.setdefault(p.rsplit(".", 1)[-1], []).append(p)
        leaves = [leaf] if leaf in by_leaf else difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.75)
        found = [p for name in leaves for p in by_leaf[name]][:4]
    return ("; did you mean " + " or ".join(found) + "?") if found else ""


def choice_problem(value: Any, choices: tuple) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"{value!r} is not allowed; choose one of {', '.join(map(str, choices))}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _leaf_problem(k: Key, value: Any, error_type: str) -> str:
    if value is None:
        return f"null is not allowed; expected {k.allowed}"
    if k.choices:
        return choice_problem(value, k.choices)
    if error_type in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{value!r} is out of range; expected {k.allowed}"
    if k.kind == "bool":
        return f"{value!r} is not true or false"
    if k.kind not in ("int", "float") and (not isinstance(value, str) or not value.strip()):
        return f"{value!r} is not a non-empty string; expected {k.allowed}"
    what = {"int": "an integer", "float": "a finite number", "device": "a device", "name": "a folder name"}.get(k.kind)
    return f"{value!r} is not {what}; expected {k.allowed}" if what else f"{value!r}: expected {k.allowed}"


def problems(exc: ValidationError, data: dict) -> dict[str, str]:
    """``{dotted key: problem}`` for every error of ``exc`` (raised validating ``data``), one per key."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc)
        fractions = "prepare.split_fractions"
        if path.startswith(fractions):  # one message for the mapping as a whole
            value = get(data, fractions, None)
            if path == fractions or err["type"] in ("missing", "extra_forbidden"):
                out.setdefault(fractions, f"{value!r}: expected {KEYS[fractions].allowed}")
            else:
                bad = [s for s in SPLITS if isinstance(value, dict) and s in value and not _positive_number(value[s])]
                out.setdefault(fractions, f"{value!r}: the fraction of {', '.join(bad)} is not a number > 0")
            continue
        if err["type"] == "extra_forbidden":
            section = ".".join(loc[:-1])
            where = f"the keys of {section}" if section else "the top-level keys"
            out[path] = f"unknown key{suggest(path, children(section))} ({where}: {', '.join(children(section))})"
        elif path in SECTIONS:
            out[path] = f"expected a section (a mapping of {', '.join(children(path))}), found {err['input']!r}"
        elif path in KEYS:
            value = None if err["type"] == "missing" else err["input"]
            out.setdefault(path, _leaf_problem(KEYS[path], value, err["type"]))
        else:  # pragma: no cover - every location is a key or a section
            out[path] = err["msg"]
    return out


def _positive_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def validate(data: dict) -> tuple[dict | None, dict[str, str]]:
    """``(validated nested config, {})`` or ``(None, {dotted key: problem})``."""
    try:
        model = PipelineSchema.model_validate(data)
    except ValidationError as exc:
        return None, problems(exc, data)
    return model.model_dump(), {}


