"""BM25's tokeniser: English (bm25s' lower-casing, stop words and stemmer) or Chinese (jieba words, Chinese stop
words), chosen per text by :func:`detect_lang` when ``lang="auto"``. Introduced in notebook ``00_concepts``; the
Chinese path in ``11_chinese_reranker``.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Sequence

import bm25s
from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN

LANGS = ("en", "zh", "auto")


# CJK Unified Ideographs (+ extension A, compatibility ideographs); enough to tell Chinese text apart
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_lang(texts: str | Sequence[str]) -> str:
    """``"zh"`` if any of ``texts`` contains a CJK ideograph, else ``"en"``."""
    if isinstance(texts, str):
        texts = [texts]
    return "zh" if any(_CJK_RE.search(t) for t in texts) else "en"


def _resolve_lang(lang: str, texts: Sequence[str]) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return detect_lang(texts) if lang == "auto" else lang


@functools.cache
def _get_jieba():
    """Import jieba once, with its "Building prefix dict ..." messages silenced."""
    import jieba  # local: jieba builds its dictionary when imported (about a second), needed for Chinese text only

    jieba.setLogLevel(logging.WARNING)
    return jieba


_ZH_STOPWORDS = frozenset(STOPWORDS_CHINESE) | frozenset(STOPWORDS_EN)  # English too, for mixed text


def tokenize(texts: str | Sequence[str], lang: str = "en", stopwords: bool = True) -> list[list[str]]:
    """Split ``texts`` into BM25 tokens: one list of string tokens per text.

    ``lang`` is ``"en"`` (bm25s tokenizer), ``"zh"`` (jieba) or ``"auto"`` (``"zh"`` if any text has
    CJK characters); see the module docstring. ``stopwords=False`` keeps stopwords.
    A text may yield no token at all (e.g. only stopwords): its list is then empty.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    lang = _resolve_lang(lang, texts)
    if not texts:
        return []
    if lang == "en":
        return bm25s.tokenize(
            texts, stopwords="en" if stopwords else None, return_ids=False, show_progress=False
        )
    jieba = _get_jieba()
    stop = _ZH_STOPWORDS if stopwords else frozenset()
    out = []
    for text in texts:
        toks = (tok.strip().lower() for tok in jieba.lcut(text))
        # drop whitespace and tokens without any letter/digit/ideograph (punctuation, symbols)
        out.append([tok for tok in toks if any(ch.isalnum() for ch in tok) and tok not in stop])
    return out
