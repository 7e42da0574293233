"""Tests for rerank_utils.retrieval: tokenisation (English and Chinese), BM25, exact dense search."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rerank_utils.data.records import RetrievalDataset
from rerank_utils.evaluation.metrics import evaluate_run
from rerank_utils.retrieval.bm25 import BM25Retriever
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.retrieval.queries import first_stage_run, rank
from rerank_utils.retrieval.tokenize import detect_lang, tokenize
from tests.extras import dev_extra

EN_CORPUS = {
    "cat": "The cat sat on the mat and purred at the kitten.",
    "dog": "A dog barks loudly at the postman every morning.",
    "qc": "Quantum computers use qubits, which can be in superposition.",
    "bread": "To bake bread you need flour, water, yeast and salt.",
    "tax": "Income tax is paid on salaries, pensions and other earnings.",
}

ZH_CORPUS = {
    "securities": "证券法是规范证券发行和交易行为、保护投资者合法权益的法律。",
    "civil": "民法典是调整平等主体的自然人、法人和非法人组织之间的人身关系和财产关系的法律。",
    "company": "公司法是规范公司的组织和行为、保护公司股东和债权人合法权益的法律。",
    "criminal": "刑法是规定犯罪和刑罚的法律。",
}


# --------------------------------------------------------------------------------------------------
# tokenize
# --------------------------------------------------------------------------------------------------


def test_tokenize_en_lowercases_and_drops_stopwords():
    toks = tokenize(["The Cat sat on the MAT!", "the and of"], lang="en")
    assert toks[0] == ["cat", "sat", "mat"]
    assert toks[1] == []  # only stopwords
    assert tokenize("A single text") == [["single", "text"]]
    assert "the" in tokenize(["the cat"], lang="en", stopwords=False)[0]


def test_tokenize_zh_uses_jieba_and_drops_punctuation():
    toks = tokenize(["什么是证券法？", "《公司法》 规范 公司。"], lang="zh")
    assert toks[0] == ["证券法"]  # 什么 / 是 are stopwords, ？ is punctuation
    assert "公司法" in toks[1] and "公司" in toks[1]
    assert all(t.strip() and any(c.isalnum() for c in t) for t in toks[1])  # no 《 》 。 or spaces
    assert tokenize(["什么是证券法？"], lang="zh", stopwords=False)[0] == ["什么", "是", "证券法"]
    # Latin words inside Chinese text are lower-cased
    assert tokenize(["BM25 检索"], lang="zh")[0] == ["bm25", "检索"]


def test_tokenize_auto_and_detect_lang():
    assert detect_lang("hello world") == "en"
    assert detect_lang(["hello", "民法典"]) == "zh"
    assert tokenize(["什么是证券法"], lang="auto") == tokenize(["什么是证券法"], lang="zh")
    assert tokenize(["The cat"], lang="auto") == [["cat"]]
    with pytest.raises(ValueError, match="lang"):
        tokenize(["x"], lang="fr")


def test_jieba_loading_message_is_silenced():
    # in a fresh interpreter, jieba's first use would print "Building prefix dict ..." to stderr
    code = "from rerank_utils.retrieval.tokenize import tokenize; print(tokenize(['什么是证券法'], lang='zh'))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "证券法" in proc.stdout
    assert "prefix dict" not in proc.stderr and "Loading model" not in proc.stderr


# --------------------------------------------------------------------------------------------------
# BM25
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bm25_en():
    return BM25Retriever(EN_CORPUS, lang="en")


def test_bm25_ranks_obvious_doc_first(bm25_en):
    run = bm25_en.search(
        {"q1": "where did the cat sit?", "q2": "qubits and superposition", "q3": "how to bake bread with yeast"},
        top_k=3,
    )
    assert rank(run["q1"])[0] == "cat"
    assert rank(run["q2"])[0] == "qc"
    assert rank(run["q3"])[0] == "bread"


def test_bm25_output_shape_and_sorted_scores(bm25_en):
    run = bm25_en.search({"q": "the dog barks at the cat"}, top_k=5)
    scores = list(run["q"].values())
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(d, str) and isinstance(s, float) and s > 0 for d, s in run["q"].items())
    assert list(run["q"]) == rank(run["q"])  # dict order is the ranking
    assert set(run["q"]) == {"dog", "cat"}  # only docs sharing a token are returned


def test_bm25_list_queries_get_string_indices(bm25_en):
    run = bm25_en.search(["cat on a mat", "income tax"], top_k=2)
    assert list(run) == ["0", "1"]
    assert rank(run["1"])[0] == "tax"


def test_bm25_top_k_clamped(bm25_en):
    run = bm25_en.search({"q": "cat dog qubits bread tax"}, top_k=1000)
    assert len(run["q"]) == len(EN_CORPUS)
    assert len(bm25_en.search({"q": "cat dog qubits bread tax"}, top_k=2)["q"]) == 2


def test_bm25_stopword_only_or_unknown_query_returns_empty(bm25_en):
    run = bm25_en.search({"stop": "the and of a", "unknown": "zzyzx blorf", "empty": "", "ok": "cat"}, top_k=3)
    assert run["stop"] == {} and run["unknown"] == {} and run["empty"] == {}
    assert rank(run["ok"]) == ["cat"]


def test_bm25_rejects_bad_top_k_and_empty_corpus(bm25_en):
    for bad in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match="top_k"):
            bm25_en.search(["cat"], top_k=bad)
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever({})
    assert bm25_en.search({}, top_k=3) == {}


def test_bm25_chinese_with_jieba():
    bm25 = BM25Retriever(ZH_CORPUS, lang="zh")
    run = bm25.search({"q1": "什么是证券法", "q2": "民法典调整哪些关系？", "q3": "公司股东的权益", "q4": "刑罚"}, top_k=4)
    assert rank(run["q1"])[0] == "securities"
    assert rank(run["q2"])[0] == "civil"
    assert rank(run["q3"])[0] == "company"
    assert rank(run["q4"])[0] == "criminal"


def test_bm25_chinese_auto_detects_and_en_tokenizer_fails():
    auto = BM25Retriever(ZH_CORPUS, lang="auto")
    assert auto.lang == "zh"
    assert rank(auto.search({"q": "什么是证券法"}, top_k=2)["q"])[0] == "securities"
    # The English tokenizer keeps whole runs of ideographs as one "word", so the query
    # "什么是证券法" is one token that no document contains: nothing is found. This is why
    # Chinese needs a word segmenter such as jieba.
    en = BM25Retriever(ZH_CORPUS, lang="en")
    assert en.search({"q": "什么是证券法"}, top_k=2)["q"] == {}


def test_first_stage_run_and_evaluation():
    ds = RetrievalDataset(
        corpus=EN_CORPUS,
        queries={"q1": "cat on the mat", "q2": "bake bread"},
        qrels={"q1": {"cat": 1}, "q2": {"bread": 1}},
    )
    run = first_stage_run(BM25Retriever(ds.corpus), ds, top_k=3)
    assert set(run) == {"q1", "q2"}
    assert evaluate_run(run, ds.qrels, metrics=("hit@1",)).aggregate["hit@1"] == 1.0


# --------------------------------------------------------------------------------------------------
# Dense retrieval with a fake deterministic encoder
# --------------------------------------------------------------------------------------------------


class BagOfLetters:
    """Fake encoder: a text -> its 26 letter counts (integers, so float32 dot products are exact)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _random_texts(rng, n, vocab="abcde"):
    # a tiny alphabet gives many exact score ties (anagrams, equal counts)
    return ["".join(rng.choice(list(vocab), size=rng.integers(1, 6))) for _ in range(n)]


def _brute_force(queries, corpus, k, enc):
    """Reference: the FULL query x doc score matrix, each row fully sorted by (score desc, doc id desc)."""
    doc_ids = list(corpus)
    Q = enc.encode(list(queries.values()))
    D = enc.encode([corpus[d] for d in doc_ids])
    S = Q @ D.T
    out = {}
    for qid, row in zip(queries, S):
        pairs = sorted(zip(row.tolist(), doc_ids), reverse=True)[:k]
        out[qid] = [(d, s) for s, d in pairs]
    return out


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
@pytest.mark.parametrize("top_k", [1, 4, 10, 500])
def test_dense_chunked_search_equals_brute_force(chunk_size, top_k):
    rng = np.random.default_rng(0)
    corpus = {f"d{i:02d}": t for i, t in enumerate(_random_texts(rng, 40))}
    queries = {f"q{i}": t for i, t in enumerate(_random_texts(rng, 13))}
    enc = BagOfLetters()
    dense = DenseRetriever(corpus, enc, normalize=False)
    run = dense.search(queries, top_k=top_k, chunk_size=chunk_size)
    expected = _brute_force(queries, corpus, min(top_k, len(corpus)), BagOfLetters())
    assert list(run) == list(queries)
    for qid in queries:
        got = list(run[qid].items())
        assert got == expected[qid], qid  # same docs, same order (ties included), same scores
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        assert list(run[qid]) == rank(run[qid])  # dict order agrees with the evaluation tie rule


def test_dense_brute_force_reference_has_ties_at_the_cut():
    # make sure the test above exercises the tie handling at the cut-off
    rng = np.random.default_rng(0)
    corpus = {f"d{i:02d}": t for i, t in enumerate(_random_texts(rng, 40))}
    queries = {f"q{i}": t for i, t in enumerate(_random_texts(rng, 13))}
    full = _brute_force(queries, corpus, len(corpus), BagOfLetters())
    assert any(full[q][3][1] == full[q][4][1] for q in queries)


def test_dense_chunks_bound_the_score_matrix(monkeypatch):
    corpus = {f"d{i}": t for i, t in enumerate(["abc", "bcd", "cde", "dea", "eab"])}
    dense = DenseRetriever(corpus, BagOfLetters(), normalize=False)
    shapes = []
    original = dense.encode_queries

    def spy(texts):
        emb = original(texts)
        shapes.append(emb.shape[0])
        return emb

    monkeypatch.setattr(dense, "encode_queries", spy)
    run = dense.search([f"{c}x" for c in "abcdefg"], top_k=2, chunk_size=3)
    assert shapes == [3, 3, 1]  # never more than chunk_size queries scored at once
    assert list(run) == [str(i) for i in range(7)]


def test_dense_normalized_cosine():
    corpus = {"a": "aaaa b", "b": "bbb", "c": "abc"}
    enc = BagOfLetters()
    dense = DenseRetriever(corpus, enc, normalize=True)
    assert dense.doc_embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(dense.doc_embeddings, axis=1), 1.0, atol=1e-6)
    assert dense.encode_seconds >= 0.0
    run = dense.search({"q": "aab"}, top_k=3)
    # cosine in float64: q = (2,1,0), docs a=(4,1,0), b=(0,3,0), c=(1,1,1)
    q = np.array([2, 1, 0.0])
    docs = {"a": np.array([4, 1, 0.0]), "b": np.array([0, 3, 0.0]), "c": np.array([1, 1, 1.0])}
    cos = {d: float(q @ v / np.linalg.norm(q) / np.linalg.norm(v)) for d, v in docs.items()}
    assert list(run["q"]) == sorted(cos, key=cos.get, reverse=True)
    for d, s in run["q"].items():
        assert s == pytest.approx(cos[d], abs=1e-6)


def test_dense_normalizes_even_if_encoder_does_not():
    class Unnormalized(BagOfLetters):
        def encode(self, texts, **kw):
            kw["normalize_embeddings"] = False
            return super().encode(texts, **kw)

    dense = DenseRetriever({"a": "aaa", "b": "ab"}, Unnormalized(), normalize=True)
    assert np.allclose(np.linalg.norm(dense.encode_queries(["abab"]), axis=1), 1.0, atol=1e-6)


def test_dense_query_prompt_and_corpus_encoded_once():
    enc = BagOfLetters()
    dense = DenseRetriever({"a": "abc", "b": "cde"}, enc, query_prompt="query: ")
    assert enc.calls == [["abc", "cde"]]  # the corpus, once, without prompt
    dense.search({"q1": "ab"}, top_k=1)
    dense.search({"q2": "cd"}, top_k=1)
    assert enc.calls[1:] == [["query: ab"], ["query: cd"]]
    assert dense.encode_queries(["x"]).shape == (1, 26)
    assert dense.encode_queries([]).shape == (0, 26)


def test_dense_top_k_clamped_and_validation():
    dense = DenseRetriever({"a": "abc", "b": "cde"}, BagOfLetters())
    assert len(dense.search(["abc"], top_k=100)["0"]) == 2
    with pytest.raises(ValueError, match="top_k"):
        dense.search(["abc"], top_k=0)
    with pytest.raises(ValueError, match="chunk_size"):
        dense.search(["abc"], chunk_size=0)
    with pytest.raises(ValueError, match="empty corpus"):
        DenseRetriever({}, BagOfLetters())
    assert dense.search({}, top_k=3) == {}


def test_dense_with_tiny_sentence_transformer(tmp_path, monkeypatch):
    """A real SentenceTransformer (tiny, random, built offline) plugs in as the encoder."""
    import sentence_transformers as st  # core dependencies: a broken install fails here, never skips
    import transformers
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "mat", "bark", "loud"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    # a plain Hugging Face folder: SentenceTransformer adds mean pooling itself
    model = st.SentenceTransformer(str(tmp_path / "bert"), device="cpu")
    corpus = {"c": "the cat sat", "d": "the dog bark loud", "m": "mat"}
    dense = DenseRetriever(corpus, model, batch_size=2)
    assert dense.doc_embeddings.shape == (3, 16)
    run = dense.search({"q": "the cat sat"}, top_k=3)
    assert rank(run["q"])[0] == "c"  # identical text -> cosine 1
    assert run["q"]["c"] == pytest.approx(1.0, abs=1e-5)
    # a path is loaded with SentenceTransformer
    by_path = DenseRetriever(corpus, tmp_path / "bert")
    assert np.allclose(by_path.doc_embeddings, dense.doc_embeddings, atol=1e-5)


class RandomVectors:
    """A fake encoder: a fixed random unit vector per text (no ties in practice)."""

    def __init__(self, dim=16, seed=0):
        self.dim, self.rng, self.table = dim, np.random.default_rng(seed), {}

    def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, **kw):
        for t in texts:
            if t not in self.table:
                self.table[t] = self.rng.normal(size=self.dim)
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_faiss_flat_backend_equals_exact_search():
    dev_extra("faiss")
    enc = RandomVectors()
    corpus = {f"d{i}": f"doc {i}" for i in range(300)}
    queries = {f"q{i}": f"query {i}" for i in range(40)}
    exact = DenseRetriever(corpus, enc).search(queries, top_k=10)
    flat = DenseRetriever(corpus, enc, backend="faiss").search(queries, top_k=10, chunk_size=7)
    for q in queries:
        assert list(flat[q]) == list(exact[q])
        assert list(flat[q].values()) == pytest.approx(list(exact[q].values()), abs=1e-5)


def test_faiss_hnsw_backend_recalls_the_exact_neighbours():
    dev_extra("faiss")
    enc = RandomVectors(dim=32, seed=1)
    corpus = {f"d{i}": f"doc {i}" for i in range(2000)}
    queries = {f"q{i}": f"query {i}" for i in range(50)}
    exact = DenseRetriever(corpus, enc).search(queries, top_k=10)
    hnsw = DenseRetriever(corpus, enc, backend="faiss", faiss_index="hnsw").search(queries, top_k=10)
    recall = np.mean([len(set(hnsw[q]) & set(exact[q])) / 10 for q in queries])
    assert recall >= 0.9


def test_backend_arguments_are_checked():
    with pytest.raises(ValueError, match="backend must be 'exact' or 'faiss'"):
        DenseRetriever({"d": "x"}, RandomVectors(), backend="annoy")
    with pytest.raises(ValueError, match="faiss_index must be 'flat' or 'hnsw'"):
        DenseRetriever({"d": "x"}, RandomVectors(), backend="faiss", faiss_index="ivf")
