"""Reading, checking and writing ``rerank-utils`` config files.

:func:`load_config` reads a YAML file (a key given twice is an error, not a silent overwrite), fills every key the
file leaves out from the profile it names (default ``cpu``), applies ``--set KEY=VALUE`` overrides and validates the
whole with :class:`rerank_utils.cli.schema.PipelineSchema`; a path (``data_source``, a model folder) is then looked
for from the working directory, the repository and the file's own folder. Every problem is reported at once, each as
``<file>: <dotted key>: <problem>`` (:class:`~rerank_utils.cli.errors.ConfigError`; the CLI exits with status 2).
:func:`config_yaml` writes ``configs/<profile>.yaml`` and :func:`reference_markdown` the key table of
``configs/README.md``; ``python -m rerank_utils.cli.config_files`` rewrites both after a profile or the schema changed.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from rerank_utils.cli.errors import ConfigError
from rerank_utils.cli.schema import (
    KEYS,
    NAMED_SOURCES,
    SCHEMA,
    SECTIONS,
    Key,
    children,
    choice_problem,
    get,
    profile_config,
    put,
    suggest,
    validate,
)
from rerank_utils.models.resolve import model_kind
from rerank_utils.paths import repo_root, resolve_path
from rerank_utils.tutorial.profiles import DEFAULT_PROFILE, PROFILES, get_profile


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
    """The mapping a YAML config file holds; :class:`~rerank_utils.cli.errors.ConfigError` naming the file (and line) otherwise."""
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
    if key.kind == "data":
        if value.strip().lower() in NAMED_SOURCES:
            return value, None
        found = _locate(value, base_dir, as_written=True)
        if found is None:
            return value, f"{value!r} is neither a named source nor an existing path; expected {key.allowed}"
        return found, None
    kind, found = model_kind(value), _locate(value, base_dir, as_written=False)
    if kind == "packaged" or (kind == "hub" and found is None):  # the packaged model, or a hub id
        return value, None
    if found is None:
        return value, f"model folder {value!r} does not exist; expected {key.allowed}"
    return found, None


@dataclass
class PipelineConfig:
    """A loaded, validated config: ``data`` is the full nested mapping (profile values + file + overrides)."""
    data: dict[str, Any]
    source: str  # the file, or "profile <name>"

    def __getitem__(self, path: str) -> Any:
        return get(self.data, path)

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
        siblings = children(section) if section in SECTIONS or not section else []
        raise ConfigError(f"--set {path}: unknown key{suggest(path, siblings)} (every key: configs/README.md, "
                          f"or `rerank-utils init-config`)")
    try:
        return path, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {path}: the value {raw!r} is not valid YAML ({exc})") from None


def load_config(path: str | Path | None = None, profile: str | None = None, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Read ``path`` (or start from ``profile`` alone), fill every missing key from the profile the file
    names (default ``cpu``), apply ``overrides`` (``KEY=VALUE`` strings, as ``--set`` gives them) and
    validate. Raises :class:`~rerank_utils.cli.errors.ConfigError` listing every problem, each as ``<file>: <key>: <problem>``."""
    if path is not None and profile is not None:
        raise ConfigError("give a config file or a profile, not both (a file names its profile with `profile:`)")
    raw = read_yaml(path) if path is not None else {"profile": profile or DEFAULT_PROFILE}
    source = str(path) if path is not None else f"profile {raw['profile']}"
    base_dir = Path(path).resolve().parent if path is not None else None
    sets = dict(parse_override(o) for o in overrides)

    prof = sets.get("profile", raw.get("profile", DEFAULT_PROFILE))
    if not isinstance(prof, str) or prof not in PROFILES:
        where = "--set profile" if "profile" in sets else "profile"
        raise ConfigError(f"{source}: {where}: {choice_problem(prof, tuple(PROFILES))}")
    merged = _deep_merge(profile_config(prof), raw)  # profile_config sets name = the profile's
    for k, v in sets.items():
        put(merged, k, v)

    validated, found = validate(merged)
    for key in SCHEMA:  # the paths: only a valid string is looked for
        value = get(merged, key.path, None)
        if key.kind not in ("data", "model") or key.path in found or not isinstance(value, str) or not value.strip():
            continue
        value, problem = _check_path(key, value, None if key.path in sets else base_dir)
        if problem is not None:
            found[key.path] = problem
        elif validated is not None:
            put(validated, key.path, value)
    if found:
        lines = [f"{'--set ' if path in sets else ''}{path}: {problem}" for path, problem in found.items()]
        head = f"{source}: " if len(lines) == 1 else f"{source}: {len(lines)} problems:\n  - "
        raise ConfigError(head + "\n  - ".join(lines))
    return PipelineConfig(validated, source)


# ---------------------------------------------------------------------------------------------- writing
def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) + "}"
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    return text[:-3].strip() if text.endswith("...") else text


def to_yaml(data: dict[str, Any], only: Iterable[str] | None = None) -> str:
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
                lines.append("  " * (depth - 1) + f"{parts[depth - 1]}:  # {SECTIONS[section]}")
        entry = "  " * (len(parts) - 1) + f"{parts[-1]}: {_scalar(get(data, key.path))}"
        lines.append(f"{entry:<44} # {key.help}")
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
        f"# Every value is the profile's (rerank_utils/tutorial/profiles.py PROFILES[{profile!r}]), so the commands run what the\n"
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
        value = _scalar(get(cpu, key.path)).replace("|", "\\|")
        allowed, source, meaning = (html.escape(t, quote=False) for t in (key.allowed, key.source_text, key.help))
        rows.append(f"| `{key.path}` | {allowed} | `{value}` | {source} | {meaning} |")
    return "\n".join(rows) + "\n"


README_BEGIN = "<!-- BEGIN generated by rerank_utils.cli.config_files.reference_markdown; do not edit -->"
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


if __name__ == "__main__":  # pragma: no cover
    for p in write_examples(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"wrote {p}")
