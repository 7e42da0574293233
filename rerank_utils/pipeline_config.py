"""The YAML config that drives ``rerank-utils prepare | mine | finetune | evaluate | export``, and those steps.

A config is a profile's values (:data:`rerank_utils.config.PROFILES`) with a team's changes on top::

    profile: cpu                         # every key not set here takes the cpu profile's value
    name: my-team                        # artifacts/my-team/ instead of artifacts/cpu/
    data_source: data/my_triples.jsonl   # the guide's {query, passage, score} records

:data:`SCHEMA` lists every key: its type, its allowed values, what it means and which notebook parameter
it mirrors. :func:`profile_config` builds a profile's full config from ``PROFILES`` through those links, so
``configs/<profile>.yaml`` (written by :func:`config_yaml`, checked by the tests) cannot drift from the
notebooks. :func:`load_config` reads a file, fills it from its profile, applies ``--set`` overrides and
validates; every problem names the file, the key, the value and what is allowed (an unknown key gets a
"did you mean"). The steps (:func:`run_prepare`, :func:`run_mine`, :func:`run_finetune`,
:func:`run_evaluate`, :func:`run_export`) call the same package functions as notebooks 01, 02/03, 03, 04 and
05, and write under ``artifacts/<name>/``.

``python -m rerank_utils.pipeline_config`` rewrites ``configs/<profile>.yaml`` and the key table in
``configs/README.md`` after a profile or the schema changed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from .config import DEFAULT_PROFILE, PROFILES, artifacts_dir, get_profile, repo_root, resolve_path
from .recipe_values import PARAMETER_NAMES, recipe_from_values
from .recipes import ARCHITECTURES

# Allowed values, as the package defines them (tests/unit/test_cli_pipeline.py checks these copies: importing
# rerank_utils.training, .mining or .bridge here would make `rerank-utils --help` load torch).
LOSSES = ("bce", "mnrl", "lambda", "listnet", "softmax")  # rerank_utils.training.LOSSES
NEGATIVE_STRATEGIES = ("random", "bm25", "dense", "mixed")  # rerank_utils.mining.STRATEGIES
HARD_SOURCES = ("dense", "bm25")  # rerank_utils.mining.HARD_SOURCES
BIAS_MODES = ("shared", "layer", "head")  # rerank_utils.bridge.BIAS_MODES
NAMED_SOURCES = ("faq-en", "faq-sv", "faq", "qasper")  # rerank_utils.datasets.build_dataset's named sources
SPLITS = ("train", "val", "test")

NB01, NB03, NB04, NB05 = "01_data_preparation", "03_fine_tuning", "04_evaluation", "05_deployment"
EVALUATE_SPLITS = ("test", "val")


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem, each naming the file and the key."""


class PipelineError(RuntimeError):
    """A step that cannot run as asked (missing model, splits made from other data, ...), said plainly."""


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


# ---------------------------------------------------------------------------------------------- reading
class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not a silent overwrite."""


def _construct_mapping(loader, node, deep=False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (lines {seen[key]} and {line})", key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; :class:`ConfigError` naming the file (and line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys such as `profile: cpu`, found {type(data).__name__} {data!r}")
    return data


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


def _locate(value: str, base_dir: Path | None, as_written: bool) -> str | None:
    """Where the path ``value`` is: from the working directory or the repository (kept as written when
    ``as_written``, so a data_source matches what notebooks record; else absolute), else from ``base_dir``
    (the config file's folder, absolute); None when it is nowhere."""
    if resolve_path(value).exists():
        return value if as_written else str(resolve_path(value))
    if base_dir is not None and not Path(value).expanduser().is_absolute() and (base_dir / value).exists():
        return str((base_dir / value).resolve())
    return None


def _check_path(key: Key, value: str, base_dir: Path | None) -> tuple[str, str | None]:
    from .models import model_kind

    if key.kind == "data":
        if value.strip().lower() in NAMED_SOURCES:
            return value, None
        found = _locate(value, base_dir, as_written=True)
        if found is None:
            return value, f"{value!r} is neither a named source nor an existing path; expected {key.allowed}"
        return found, None
    kind = model_kind(value)
    if kind == "local" or (kind == "hub" and _locate(value, base_dir, as_written=False)):  # a folder, not a hub id
        found = _locate(value, base_dir, as_written=False)
        if found is None:
            return value, f"model folder {value!r} does not exist; expected {key.allowed}"
        return found, None
    return value, None


@dataclass
class PipelineConfig:
    """A loaded, validated config: ``data`` is the full nested mapping (profile values + file + overrides)."""

    data: dict[str, Any]
    source: str  # the file, or "profile <name>"

    def __getitem__(self, path: str) -> Any:
        return _get(self.data, path)

    @property
    def profile(self) -> str:
        return self.data["profile"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def device(self) -> str:
        return self.data["device"]

    def yaml(self) -> str:
        return to_yaml(self.data)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "split_fractions" else v
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"finetune.bridge.epochs=1"`` -> ``("finetune.bridge.epochs", 1)`` (the value read as YAML)."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set finetune.bridge.epochs=1")
    if path not in KEYS:
        section = path.rpartition(".")[0]
        siblings = _children(section) if section in _sections() or not section else []
        raise ConfigError(f"--set {path}: unknown key{_suggest(path, siblings)} (every key: configs/README.md, "
                          f"or `rerank-utils init-config`)")
    try:
        return path, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {path}: the value {raw!r} is not valid YAML ({exc})") from None


def load_config(path: str | Path | None = None, profile: str | None = None, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Read ``path`` (or start from ``profile`` alone), fill every missing key from the profile the file
    names (default ``cpu``), apply ``overrides`` (``KEY=VALUE`` strings, as ``--set`` gives them) and
    validate. Raises :class:`ConfigError` listing every problem, each as ``<file>: <key>: <problem>``."""
    if path is not None and profile is not None:
        raise ConfigError("give a config file or a profile, not both (a file names its profile with `profile:`)")
    raw = read_yaml(path) if path is not None else {"profile": profile or DEFAULT_PROFILE}
    source = str(path) if path is not None else f"profile {raw['profile']}"
    base_dir = Path(path).resolve().parent if path is not None else None
    sets = dict(parse_override(o) for o in overrides)

    problems = _unknown_keys(raw)
    prof = sets.get("profile", raw.get("profile", DEFAULT_PROFILE))
    if prof not in PROFILES:
        where = "--set profile" if "profile" in sets else "profile"
        _, problem = _check_value(KEYS["profile"], prof)
        raise ConfigError(f"{source}: {where}: {problem}")
    merged = _deep_merge(profile_config(prof), _known_only(raw))  # profile_config sets name = the profile's
    for k, v in sets.items():
        _set(merged, k, v)

    for key in SCHEMA:
        value = _get(merged, key.path, None)
        value, problem = _check_value(key, value)
        if problem is None and key.kind in ("data", "model"):
            value, problem = _check_path(key, value, None if key.path in sets else base_dir)
        if problem is None:
            _set(merged, key.path, value)
        else:
            origin = "--set " if key.path in sets else ""
            problems.append(f"{origin}{key.path}: {problem}")
    if problems:
        head = f"{source}: " if len(problems) == 1 else f"{source}: {len(problems)} problems:\n  - "
        raise ConfigError(head + "\n  - ".join(problems))
    return PipelineConfig(merged, source)


# ---------------------------------------------------------------------------------------------- writing
def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) + "}"
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    return text[:-3].strip() if text.endswith("...") else text


def to_yaml(data: dict[str, Any], comments: bool = True, only: Iterable[str] | None = None) -> str:
    """``data`` (a nested config) as YAML, in schema order, each key with its meaning as a comment.
    ``only``: write just these keys (and the sections above them)."""
    keep = set(only) if only is not None else None
    lines: list[str] = []
    opened: set[str] = set()
    for key in SCHEMA:
        if keep is not None and key.path not in keep:
            continue
        parts = key.path.split(".")
        for depth in range(1, len(parts)):
            section = ".".join(parts[:depth])
            if section not in opened:
                opened.add(section)
                if depth == 1 and lines:
                    lines.append("")
                note = f"  # {SECTIONS[section]}" if comments and section in SECTIONS else ""
                lines.append("  " * (depth - 1) + f"{parts[depth - 1]}:{note}")
        entry = "  " * (len(parts) - 1) + f"{parts[-1]}: {_scalar(_get(data, key.path))}"
        if comments:
            entry = f"{entry:<44} # {key.help}"
        lines.append(entry)
    return "\n".join(lines) + "\n"


def config_yaml(profile: str, minimal: bool = False) -> str:
    """The text of ``configs/<profile>.yaml``: the profile's full config with comments, or (``minimal``) the
    few keys a team changes first, the rest coming from the profile."""
    prof = get_profile(profile)
    data = profile_config(profile)
    if minimal:
        data["name"] = "my-reranker"
        head = (f"# rerank-utils pipeline config: the {profile!r} profile's values, except the keys below.\n"
                f"# Every key: configs/README.md (or `rerank-utils init-config --profile {profile}` for all of them).\n\n")
        return head + to_yaml(data, only=("profile", "name", "data_source", "embedding_model", "reranker_model"))
    head = (
        f"# rerank-utils pipeline config, profile {profile!r}: {prof.description}\n"
        f"# Every value is the profile's (rerank_utils/config.py PROFILES[{profile!r}]), so the commands run what the\n"
        f"# notebooks run. Written by `rerank-utils init-config --profile {profile}`. A team's config can be short:\n"
        f"# `profile: {profile}` and the keys it changes (configs/README.md lists them all).\n"
        f"# Use: rerank-utils prepare --config THIS_FILE (then mine, finetune, evaluate, export).\n\n"
    )
    return head + to_yaml(data)


def reference_markdown() -> str:
    """The table of every key for configs/README.md (generated; a test keeps the README equal to it)."""
    cpu = profile_config("cpu")
    rows = ["| key | allowed values | `cpu` value | from (notebook parameter) | meaning |", "|---|---|---|---|---|"]
    for key in SCHEMA:
        value = _scalar(_get(cpu, key.path)).replace("|", "\\|")
        allowed, source, meaning = (_html(t) for t in (key.allowed, key.source_text, key.help))
        rows.append(f"| `{key.path}` | {allowed} | `{value}` | {source} | {meaning} |")
    return "\n".join(rows) + "\n"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


README_BEGIN = "<!-- BEGIN generated by rerank_utils.pipeline_config.reference_markdown; do not edit -->"
README_END = "<!-- END generated -->"


def write_examples(folder: str | Path | None = None) -> list[Path]:
    """Rewrite ``configs/<profile>.yaml`` for every profile and the key table in ``configs/README.md``."""
    folder = Path(folder) if folder else (repo_root() or Path.cwd()) / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PROFILES:
        path = folder / f"{name}.yaml"
        path.write_text(config_yaml(name), encoding="utf-8")
        written.append(path)
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
        readme.write_text(text[:start] + "\n" + reference_markdown() + text[end:], encoding="utf-8")
        written.append(readme)
    return written


# ------------------------------------------------------------------------------------------------- steps
def recipe_for(cfg: PipelineConfig, architecture: str | None = None):
    """The :class:`~rerank_utils.recipes.Recipe` of ``architecture`` (default: ``finetune.architecture``) from the
    config's ``finetune.<architecture>`` values, by the function notebook 03 calls too
    (:func:`rerank_utils.recipe_values.recipe_from_values`), so a model 03 trained with the same values is reused."""
    arch = architecture or cfg["finetune.architecture"]
    if arch not in ARCHITECTURES:
        raise ConfigError(f"architecture={arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    return recipe_from_values(arch, cfg.data["finetune"][arch], cfg["seed"])


def base_model_for(cfg: PipelineConfig, architecture: str) -> str:
    """What training starts from: ``reranker_model`` for the standard cross-encoder, ``embedding_model`` for
    the bridge (as in notebook 03)."""
    return cfg["reranker_model"] if architecture == "standard" else cfg["embedding_model"]


def split_params_of(cfg: PipelineConfig) -> dict[str, Any]:
    from .artifacts import split_params

    return split_params(cfg["data_source"], cfg["seed"], cfg["prepare.split_fractions"], cfg["prepare.group_key"], cfg["max_queries"])


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise PipelineError(f"device: {device!r}, but torch sees no CUDA GPU here; set `device: cpu` (or --set device=cpu)")


def _splits(cfg: PipelineConfig, rebuild: bool = False):
    """``(splits, how)``: the config's split from artifacts/<name>/data/splits when it was made with these
    values, else built and saved there. Splits made from other values are never replaced silently."""
    from .artifacts import prepare_splits, saved_split_params, splits_dir

    params = split_params_of(cfg)
    saved = saved_split_params(cfg.name)
    if saved is not None and saved != params and not rebuild:
        differ = ", ".join(f"{k}: {saved.get(k)!r} there, {params[k]!r} here" for k in params if saved.get(k) != params[k])
        raise PipelineError(
            f"{splits_dir(cfg.name)} holds a split made from other values ({differ}). Run `rerank-utils prepare "
            f"--config ... --rebuild` to replace it (models trained on the old split must then be trained again), or "
            f"set `name:` to another artifacts folder."
        )
    how = "reused" if saved == params and not rebuild else "built"
    splits = prepare_splits(cfg.name, cfg["data_source"], seed=cfg["seed"], fractions=cfg["prepare.split_fractions"],
                            group_key=cfg["prepare.group_key"], max_queries=cfg["max_queries"], rebuild=rebuild)
    return splits, how


def _first_stages(cfg: PipelineConfig, corpus: dict[str, str]):
    from .models import load_bi_encoder
    from .recipes import FirstStages

    return FirstStages(corpus, load_bi_encoder(cfg["embedding_model"], device=cfg.device))


def _sizes(splits) -> str:
    return ", ".join(f"{name} {len(s)}" for name, s in splits.items())


def run_prepare(cfg: PipelineConfig, rebuild: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``prepare``: build and save the leak-free split (notebook 01), or reuse the one saved with these values."""
    from .artifacts import splits_dir
    from .data import check_splits

    splits, how = _splits(cfg, rebuild=rebuild)
    leakage = check_splits(splits)
    leak_free = all(r.ok for r in leakage.values())
    folder = splits_dir(cfg.name)
    corpus = next(iter(splits.values())).corpus
    log(f"split of {cfg['data_source']!r} ({how}): {_sizes(splits)} queries; {len(corpus)} documents")
    log(f"leak-free (no query or positive shared between splits): {'yes' if leak_free else 'NO: ' + str(leakage)}")
    log(f"saved in {folder} (BEIR qrels/<split>.tsv, triples/<split>.jsonl, split_meta.json)")
    if not leak_free:
        raise PipelineError(f"the split shares queries or positives between splits: {leakage}")
    return {"splits": {k: len(v) for k, v in splits.items()}, "documents": len(corpus), "folder": str(folder), "how": how,
            "leak_free": leak_free}


def run_mine(cfg: PipelineConfig, architecture: str | None = None, output: str | Path | None = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """``mine``: the negatives of the training split as the recipe of ``architecture`` mines them (notebooks
    02 and 03), written as the guide's triples; ``finetune`` mines the same ones again (seeded)."""
    from .data import write_triples
    from .mining import mine_negatives, negatives_to_triples

    _check_device(cfg.device)
    arch = architecture or cfg["finetune.architecture"]
    recipe = recipe_for(cfg, arch)
    splits, how = _splits(cfg)
    train = splits["train"]
    stages = _first_stages(cfg, train.corpus)
    mined = mine_negatives(train, recipe.mining, retriever=stages.retriever_for(recipe.mining))
    out = Path(output) if output else artifacts_dir(cfg.name, "mined") / f"{arch}.jsonl"
    write_triples(negatives_to_triples(train, mined), out)
    report = {"architecture": arch, "mining": recipe.to_dict()["mining"], "split": split_params_of(cfg), **mined.report.row(),
              "short_queries": list(mined.report.short_queries)}
    report_path = out.with_name(out.stem + "_report.json")
    report_path.write_text(json.dumps(report, indent=1, default=_json_default), encoding="utf-8")
    log(f"split ({how}): {_sizes(splits)} queries")
    log(mined.report.summary())
    log(f"wrote {out} (the guide's {{query, passage, score}} triples) and {report_path}")
    return {"triples": str(out), "report": str(report_path), "negatives": mined.report.total}


PIPELINE_FILE = "pipeline.json"  # beside a model `finetune` trained: the split and config it was trained with


def _same_training_data(model_dir: Path, params: dict, n_train: int) -> bool:
    """True when the model in ``model_dir`` was trained on this split: its pipeline.json says so, or (a model
    notebook 03 trained) its training.json counts as many training queries."""
    side = model_dir / PIPELINE_FILE
    if side.is_file():
        return json.loads(side.read_text(encoding="utf-8")).get("split") == params
    facts = model_dir / "training.json"
    return facts.is_file() and f": {n_train} training queries" in str(json.loads(facts.read_text(encoding="utf-8")).get("data", ""))


def run_finetune(cfg: PipelineConfig, architecture: str | None = None, retrain: bool = False, publish: bool = True,
                 output: str | Path | None = None, progress: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``finetune``: train the recipe of ``architecture`` as notebook 03 does (validation after each epoch,
    early stopping, the best epoch kept) into artifacts/<name>/models/<architecture>, reusing the model saved
    there when it was trained with this very recipe, base model and split; then publish it as
    artifacts/<name>/models/reranker, the model ``evaluate``, ``export`` and ``serve`` use."""
    from .artifacts import publish_reranker
    from .recipes import load_or_train_recipe, train_recipe

    _check_device(cfg.device)
    arch = architecture or cfg["finetune.architecture"]
    recipe = recipe_for(cfg, arch)
    base = base_model_for(cfg, arch)
    splits, how = _splits(cfg)
    train, val = splits["train"], splits["val"]
    stages = _first_stages(cfg, train.corpus)
    model_dir = Path(output) if output else artifacts_dir(cfg.name, "models", arch)
    params = split_params_of(cfg)
    top_k = cfg["finetune.top_k"]
    t = recipe.training
    log(f"split ({how}): {_sizes(splits)} queries")
    log(f"{arch} reranker from {base!r}: loss {t.loss}, {recipe.mining.num_negatives} {recipe.mining.strategy} negatives per query, "
        f"{t.epochs} epoch(s), lr {t.learning_rate:g}, batch {t.batch_size}, max_length {t.max_length}")
    if not retrain and (model_dir / "training.json").is_file() and _same_training_data(model_dir, params, len(train)):
        _, facts, reused = load_or_train_recipe(recipe, train, val, stages, model_dir, base_model=base, top_k=top_k, device=cfg.device)
    else:
        train_recipe(recipe, train, val, stages, model_dir, base_model=base, top_k=top_k, device=cfg.device, show_progress=progress)
        facts, reused = json.loads((model_dir / "training.json").read_text(encoding="utf-8")), False
    (model_dir / PIPELINE_FILE).write_text(json.dumps(
        {"config": cfg.source, "name": cfg.name, "architecture": arch, "base_model": base, "split": params,
         "recipe": recipe.to_dict()}, indent=1), encoding="utf-8")
    best = facts.get("best_validation_ndcg@10")
    log(("reused the model saved with this recipe in " if reused else "trained in ") + f"{model_dir}"
        + (f" ({facts.get('train_seconds', 0):.0f} s)" if not reused else ""))
    log(f"best validation NDCG@10 (bi-encoder top-{top_k} reranked): {best if best is None else round(best, 4)}")
    out = {"architecture": arch, "model_dir": str(model_dir), "reused": reused, "best_validation_ndcg@10": best,
           "train_seconds": facts.get("train_seconds")}
    if publish:
        published = publish_reranker(cfg.name, model_dir, arch, reason=f"rerank-utils finetune ({cfg.source})")
        log(f"published as {published} (what evaluate, export and serve use)")
        out["published"] = str(published)
    return out


def run_finetune_retriever(cfg: PipelineConfig, recipe=None, retrain: bool = False, output: str | Path | None = None,
                           progress: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``finetune-retriever``: fine-tune the config's ``embedding_model`` on the training split (the guide's step
    before the reranker; :mod:`rerank_utils.retriever_training`) into artifacts/<name>/models/retriever, reusing the
    model saved there when its recipe, base model and data fingerprint match. ``evaluate --retriever`` then adds
    it as a first stage, alone and reranked."""
    from .mining import MiningConfig
    from .retriever_training import RetrieverRecipe, load_or_train_retriever

    _check_device(cfg.device)
    recipe = recipe or RetrieverRecipe(MiningConfig(strategy="dense", num_negatives=1, range_max=10, seed=cfg["seed"]), seed=cfg["seed"])
    splits, how = _splits(cfg)
    train, val = splits["train"], splits["val"]
    out = Path(output) if output else artifacts_dir(cfg.name, "models", "retriever")
    log(f"split ({how}): {_sizes(splits)} queries")
    log(f"retriever from {cfg['embedding_model']!r}: MultipleNegativesRankingLoss, {recipe.mining.num_negatives} "
        f"{recipe.mining.strategy} negative(s) per query from the top {recipe.mining.range_max}, {recipe.epochs} epoch(s), "
        f"lr {recipe.learning_rate:g}, batch {recipe.batch_size}, max_length {recipe.max_length}")
    run = load_or_train_retriever(train, val, out, recipe, base_model=cfg["embedding_model"], device=cfg.device,
                                  retrain=retrain, show_progress=progress)
    f = run.facts
    log(("reused the retriever saved with this recipe and data in " if run.reused else "trained in ") + str(out)
        + ("" if run.reused else f" ({f['train_seconds']:.0f} s)"))
    log(f"validation NDCG@10 (retrieval from the whole corpus): base {f['base_validation_ndcg@10']:.4f}, "
        + ", ".join(f"epoch {r['epoch']:g} {r['val ndcg@10']:.4f}" for r in f["validation_by_epoch"])
        + f"; kept epoch {f['best_epoch']:g}")
    return {"model_dir": str(out), "reused": run.reused, "best_validation_ndcg@10": run.best_metric,
            "base_validation_ndcg@10": f["base_validation_ndcg@10"], "best_epoch": f["best_epoch"], "train_seconds": f["train_seconds"]}


def default_model_dir(cfg: PipelineConfig) -> Path:
    return artifacts_dir(cfg.name, "models", "reranker", create=False)


def _model_folder(path: str | Path | None, cfg: PipelineConfig) -> Path:
    folder = Path(path).expanduser().resolve() if path else default_model_dir(cfg)
    if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
        hint = "" if path else f": run `rerank-utils finetune --config {cfg.source}` first (or pass --model DIR)"
        raise PipelineError(f"{folder} holds no saved model{hint}")
    return folder


def _label(folder: Path, taken: dict) -> str:
    label = folder.name
    return label if label not in taken else f"{label} ({len(taken) + 1})"


def run_evaluate(cfg: PipelineConfig, models: Iterable[str | Path] | None = None, split: str = "test",
                 output: str | Path | None = None, retriever: str | Path | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """``evaluate``: BM25 and the bi-encoder alone, and their top-``evaluate.top_k`` reranked by each model
    (default: the published reranker), on the ``split`` queries, with paired bootstrap intervals and p-values
    (notebooks 03/04); prints the tables and writes them as JSON."""
    from .models import load_cross_encoder
    from .recipes import comparison_frame, evaluate_rerankers, guide_claim

    _check_device(cfg.device)
    if split not in EVALUATE_SPLITS:
        raise ConfigError(f"split={split!r}: choose one of {', '.join(EVALUATE_SPLITS)}")
    folders = [_model_folder(m, cfg) for m in (models or [None])]
    params = split_params_of(cfg)
    for folder in folders:
        side = folder / PIPELINE_FILE
        if side.is_file() and json.loads(side.read_text(encoding="utf-8")).get("split") != params:
            raise PipelineError(f"{folder} was trained on another split than this config's ({side}): its {split} queries may be "
                                f"among its training queries. Train it again with `rerank-utils finetune`.")
    splits, how = _splits(cfg)
    ds = splits[split]
    top_k = cfg["evaluate.top_k"]
    stages = _first_stages(cfg, ds.corpus)
    runs = stages.runs(ds.queries, top_k=top_k)
    if retriever is not None:  # the fine-tuned embedding model: a third first stage, alone and reranked (issue 12)
        from .models import load_bi_encoder
        from .retrieval import DenseRetriever
        from .retriever_training import FACTS_FILE, data_fingerprint

        rfolder = Path(retriever)
        facts_path = rfolder / FACTS_FILE
        rfacts = json.loads(facts_path.read_text(encoding="utf-8")) if facts_path.is_file() else {}
        if rfacts.get("kind") != "retriever":
            raise PipelineError(f"{rfolder} holds no fine-tuned retriever (no {FACTS_FILE} written by finetune-retriever): "
                                f"run `rerank-utils finetune-retriever` first, or pass its folder")
        if rfacts.get("data_fingerprint") != data_fingerprint(splits["train"], splits["val"]):
            raise PipelineError(f"{rfolder} was trained on other data than this config's split: its {split} queries may be "
                                f"among its training queries. Train it again with `rerank-utils finetune-retriever --retrain`.")
        runs["fine-tuned bi-encoder"] = DenseRetriever(ds.corpus, load_bi_encoder(str(rfolder), device=cfg.device)).search(ds.queries, top_k=top_k)
    rerankers: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for folder in folders:
        label = _label(folder, rerankers)
        rerankers[label] = load_cross_encoder(str(folder), device=cfg.device)
        paths[label] = str(folder)
    ev = evaluate_rerankers(rerankers, ds, runs, top_k=top_k, seed=cfg["seed"])
    table, comparisons = ev.table(), comparison_frame(ev.comparisons)
    claim = guide_claim({k: c for k, c in ev.comparisons.items() if k.count(" + ") == 1})
    verdicts = {}  # issue 12: each reranker judged against the strongest row, the fine-tuned retriever included
    if retriever is not None:
        from .retriever_training import strongest_verdict

        verdicts = {label: strongest_verdict(ev.results, ev.comparisons, f"fine-tuned bi-encoder + {label}") for label in rerankers}
    out_path = Path(output) if output else artifacts_dir(cfg.name, "pipeline") / f"evaluate_{split}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "config": cfg.source, "name": cfg.name, "split": split, "queries": len(ds), "top_k": top_k, "models": paths,
        "retriever": None if retriever is None else str(retriever),
        "table": table.to_dict(orient="index"), "comparisons": {k: vars(c) for k, c in ev.comparisons.items()}, "guide_claim": claim,
        "verdicts": verdicts,
    }
    out_path.write_text(json.dumps(result, indent=1, default=_json_default), encoding="utf-8")
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        log(f"{len(ds)} {split} queries ({how} split), first-stage top-{top_k} reranked by: "
            + ", ".join(f"{k} ({v})" for k, v in paths.items()))
        log(table.round(3).to_string())
        log("\nNDCG@10, paired bootstrap 95 % intervals and randomisation p-values:")
        log(comparisons.infer_objects().round(3).to_string())
    for name, verdict in claim.items():
        log(f"{name}: {verdict}")
    for label, verdict in verdicts.items():
        log(f"\nagainst the strongest first stage ({label}): {verdict}")
    log(f"wrote {out_path}")
    return result


STANDARD_EXPORT_ERROR = (
    "{folder} is a standard cross-encoder: `rerank-utils export` writes ONNX for the bridge reranker only. "
    "The standard cross-encoder's export goes through sentence-transformers' backend=\"onnx\", which needs optimum-onnx, "
    "and optimum-onnx requires transformers<4.58 while this project runs transformers 5. Serve it with PyTorch "
    "(`rerank-utils serve {folder}`), or train a bridge (`rerank-utils finetune --architecture bridge`) and export that."
)


def run_export(cfg: PipelineConfig, model: str | Path | None = None, output: str | Path | None = None,
               quantize: bool | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``export``: a bridge reranker to ONNX (``model.onnx`` + tokenizer; with ``quantize`` also the int8
    ``model_qint8.onnx``), as notebook 05 does, then checked: the ONNX scores of a few pairs against PyTorch's."""
    from .bridge import OnnxBridgeReranker, export_onnx, is_bridge_folder, quantize_onnx
    from .models import load_cross_encoder

    folder = _model_folder(model, cfg)
    if not is_bridge_folder(folder):
        raise PipelineError(STANDARD_EXPORT_ERROR.format(folder=folder))
    quantize = cfg["export.quantize"] if quantize is None else quantize
    out = Path(output) if output else artifacts_dir(cfg.name, "models", "reranker_onnx")
    reranker = load_cross_encoder(str(folder), device="cpu")
    try:
        path = export_onnx(reranker, out)
        files = [path]
        if quantize:
            files.append(quantize_onnx(out))
    except ImportError as exc:
        raise PipelineError(f"ONNX export needs onnx and onnxruntime: pip install -e '.[onnx]' ({exc})") from None
    pairs = [("what does a building permit cost", "A building permit costs a fee set by the municipality."),
             ("who pays the tax", "The buyer of the service pays it."),
             ("how long does it take", "About ten weeks, sometimes longer for a larger house or a complete renovation.")]
    import numpy as np

    reference = np.asarray(reranker.predict(pairs))
    checks = {}
    for f in files:
        scores = OnnxBridgeReranker(out, file_name=f.name).predict(pairs)
        checks[f.name] = float(np.abs(scores - reference).max())
    span = f"PyTorch's scores (scale x cosine) run from {reference.min():.2f} to {reference.max():.2f}"
    for f in files:
        log(f"wrote {f} ({f.stat().st_size / 1e6:.1f} MB): largest score difference from PyTorch on {len(pairs)} pairs {checks[f.name]:.2g}")
    log(span + (" (int8 moves scores a little; benchmarks/README.md measures what it does to NDCG)" if quantize else ""))
    log(f"serve it: rerank-utils serve {out} --backend onnx" + (" --onnx-file model_qint8.onnx" if quantize else ""))
    return {"folder": str(out), "files": [str(f) for f in files], "max_abs_diff": checks}


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


if __name__ == "__main__":  # pragma: no cover
    for p in write_examples(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"wrote {p}")
