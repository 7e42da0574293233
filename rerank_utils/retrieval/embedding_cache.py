"""Corpus embeddings kept on disk, keyed by the encoder's weights and the texts (issue 15: no needless work).

Every notebook builds its first stages over the same corpus with the same embedding model: on the packaged FAQ
that is 503 passages, about 7 s of encoding on 2 CPU cores each time, some twenty times in one run of the tutorial.
:func:`cached_embeddings` computes them once and reads them back afterwards.

The key is the model itself, not its name: a digest of every weight tensor, the model's module summary
(``repr``: the transformer, the pooling, the normalisation), its ``max_seq_length``, its tokenizer class and its
device, together with the encoding settings and every text. A model fine-tuned in place under the same path, a
changed corpus or another ``max_seq_length`` is therefore a miss, never a stale hit; a hit returns the very array
the same computation wrote. A file that cannot be read back (cut short, wrong shape) is recomputed and replaced.

Opt-in: nothing is written unless a folder is given (``DenseRetriever(cache_dir=...)``) or the environment
variable ``RERANK_EMBEDDING_CACHE`` names one; ``rerank-utils run-notebooks`` sets it to
``artifacts/<profile>/cache/embeddings`` for the kernels it starts, so a library user's process writes nothing
it did not ask for. Only encoders with weights (a ``torch.nn.Module``, as ``SentenceTransformer`` is) are cached.

Hand-written because sentence-transformers keeps no embeddings between calls (``encode`` computes every time) and
no library here keys a cache on a model's weights.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rerank_utils.models.fingerprint import model_fingerprint
from rerank_utils.paths import ENV_EMBEDDING_CACHE



def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder to use: ``cache_dir`` when given, else ``$RERANK_EMBEDDING_CACHE``, else ``None`` (no cache)."""
    chosen = cache_dir if cache_dir is not None else os.environ.get(ENV_EMBEDDING_CACHE)
    return Path(chosen).expanduser() if chosen else None


def embeddings_key(fingerprint: str, texts: Sequence[str], settings: str) -> str:
    """The file name's key: the model's fingerprint, the encoding ``settings`` and every text (length-prefixed)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(fingerprint.encode())
    h.update(settings.encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def cached_embeddings(
    model, texts: Sequence[str], settings: str, compute: Callable[[list[str]], np.ndarray], cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, bool]:
    """``(embeddings, from_cache)``: ``compute(texts)``, or the array an earlier identical call saved in the cache
    folder (:func:`cache_folder`). ``settings`` names whatever else changes the result (batch size, normalisation)."""
    texts = list(texts)
    folder = cache_folder(cache_dir)
    fingerprint = model_fingerprint(model) if folder is not None else None
    if fingerprint is None:
        return compute(texts), False
    path = folder / f"{embeddings_key(fingerprint, texts, settings)}.npy"
    try:
        emb = np.load(path, allow_pickle=False)
        if emb.ndim == 2 and emb.shape[0] == len(texts) and emb.dtype == np.float32:
            return emb, True
    except (OSError, ValueError):  # missing, cut short or not an array: recompute below, replace the file
        pass
    emb = compute(texts)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:  # never a half-written file
        np.save(tmp, emb, allow_pickle=False)
    os.replace(tmp.name, path)
    return emb, False
