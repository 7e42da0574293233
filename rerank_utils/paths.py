"""Where things are: the package, the repository (when run from a clone), ``notebooks/`` and the artifacts folder
(``artifacts/<name>/``, or ``$RERANK_ARTIFACTS_DIR``), and :func:`resolve_path` for a path a user wrote relative to
the working directory or the repository. Every stage saves under :func:`artifacts_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


ENV_ARTIFACTS = "RERANK_ARTIFACTS_DIR"
#: The folder of the corpus-embedding cache (retrieval/embedding_cache), set by run-notebooks and the CLI per profile.
ENV_EMBEDDING_CACHE = "RERANK_EMBEDDING_CACHE"
#: The folder of the reranker score memo's files (models/score_memo), set by run-notebooks and the CLI per profile.
ENV_SCORE_CACHE = "RERANK_SCORE_CACHE"
#: Both caches' variables: what run-notebooks and the CLI set for a profile (:func:`profile_caches`) and then restore.
CACHE_VARIABLES = (ENV_EMBEDDING_CACHE, ENV_SCORE_CACHE)


def repo_root() -> Path | None:
    """The repository this package was installed from (editable install), else ``None``."""
    candidate = PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").is_file() and (candidate / "notebooks").is_dir() else None


def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            "notebooks/ not found: rerank_utils is not installed from a clone of the repository. "
            "Clone it and run `make setup` (an editable install)."
        )
    return root / "notebooks"


#: The numbered notebooks (``00_concepts.ipynb`` ...): what one whole run executes and times.
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def discover_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """Every ``NN_*.ipynb`` in ``folder`` (default ``notebooks/``), in number order."""
    folder = Path(folder) if folder is not None else notebooks_dir()
    return sorted(folder.glob(NOTEBOOK_GLOB))


def artifacts_root() -> Path:
    """Root of all artifacts: ``$RERANK_ARTIFACTS_DIR``, else ``<repo>/artifacts``, else ``./artifacts``."""
    env = os.environ.get(ENV_ARTIFACTS)
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / "artifacts") if root is not None else Path.cwd().resolve() / "artifacts"


def artifacts_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """``artifacts/<profile>/<parts...>``: where a profile's data, models, metrics and figures live."""
    path = artifacts_root().joinpath(profile, *parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_path(path: str | os.PathLike) -> Path:
    """A data path as a user wrote it: absolute, relative to the working directory, or relative to
    the repository root (so ``data/zh_legal_sample.jsonl`` works from ``notebooks/`` too)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    root = repo_root()
    if root is not None and (root / p).exists():
        return (root / p).resolve()
    return p.resolve()


def profile_caches(profile: str) -> dict[str, str]:
    """The cache folders a profile's notebooks and CLI steps share, by the variable that names each:
    ``artifacts/<profile>/cache/embeddings`` (corpus embeddings) and ``.../scores`` (reranker scores). Each cache
    creates its folder when it first writes."""
    return {ENV_EMBEDDING_CACHE: str(artifacts_dir(profile, "cache", "embeddings", create=False)),
            ENV_SCORE_CACHE: str(artifacts_dir(profile, "cache", "scores", create=False))}
