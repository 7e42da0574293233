"""Property-based fuzzing (hypothesis) of the service's request schemas: the TEI body, the guide's body and Cohere
v1/v2, with values of every JSON type where text is expected, Unicode that breaks naive code (combining marks,
emoji, right-to-left marks, NUL), huge single texts, many tiny documents, deep nesting and raw bytes. Whatever
comes in: never a 5xx; every refusal is the service's {error, error_type}; a 422 names the field; a 200 is the
full, well-formed answer."""

from __future__ import annotations

import json

import pytest

from tests.extras import dev_extra

dev_extra("fastapi")
hypothesis = dev_extra("hypothesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rerank_utils.serving.app import RerankService, create_app  # noqa: E402


class WordScorer:
    def predict(self, pairs, batch_size=32, show_progress_bar=False):
        return [float(sum(w in t.split() for w in q.split()) - 1) for q, t in pairs]


SERVICE = RerankService(WordScorer(), model_name="words", max_documents=200, max_text_chars=5000)
CLIENT = TestClient(create_app(SERVICE, max_body_bytes=200_000))
FIELDS = {"query", "texts", "passages", "documents", "top_n", "raw_scores", "return_text", "truncate", "return_documents",
          "model", "max_tokens_per_doc", "body"}
ODD = ["e\u0301", "\U0001F3E0 roof", "\u202eroof\u202c", "\u05d2\u05d2 roof", "a\x00b", "\ufeff", " ", "", "\u0000", "\U0010FFFF",
       "roof " * 2000]  # the last: over max_text_chars, cut (or 413 with truncate false)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

texts = st.one_of(st.sampled_from(ODD), st.text(max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**12, max_value=10**12) | st.floats(allow_nan=False) | texts,  # infinities too (sent as Infinity)
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
maybe = lambda s: st.one_of(s, json_values)  # noqa: E731: the right type or anything at all


def tei_bodies():
    return st.fixed_dictionaries(
        {"query": maybe(texts)},
        optional={"texts": maybe(st.lists(texts, max_size=30)), "passages": maybe(st.lists(texts, max_size=5)),
                  "top_n": maybe(st.integers(-3, 40)), "raw_scores": maybe(st.booleans()), "return_text": maybe(st.booleans()),
                  "truncate": maybe(st.booleans())},
    )


def cohere_bodies():
    document = st.one_of(texts, st.fixed_dictionaries({"text": maybe(texts)}), json_values)
    return st.fixed_dictionaries(
        {"query": maybe(texts), "documents": maybe(st.lists(document, max_size=30))},
        optional={"top_n": maybe(st.integers(-3, 40)), "return_documents": maybe(st.booleans()), "model": maybe(texts),
                  "max_tokens_per_doc": maybe(st.integers(-2, 10))},
    )


def post(route, body):
    """JSON as Python writes it by default: Infinity and -Infinity stay in (clients do send them)."""
    return CLIENT.post(route, content=json.dumps(body).encode("utf-8"), headers={"content-type": "application/json"})


def check(response, n_texts=None, top_n=None, shape="tei"):
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code != 200:
        assert set(body) == {"error", "error_type"} and body["error"] and body["error_type"], body
        assert response.status_code in (400, 413, 422), response.status_code
        if response.status_code == 422 and body["error_type"] == "validation" and not body["error"].startswith("the body is not valid JSON"):
            assert any(name in body["error"] for name in FIELDS), body["error"]  # the field is named
        return
    results = body if shape == "tei" else body["results"]
    indices = [r["index"] for r in results]
    assert len(set(indices)) == len(indices) and all(0 <= i < n_texts for i in indices)
    assert len(indices) == (min(top_n, n_texts) if isinstance(top_n, int) and top_n >= 1 else n_texts)
    scores = [r["score" if shape == "tei" else "relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)  # best first


@SETTINGS
@given(tei_bodies())
def test_tei_and_guide_bodies_never_fail_the_server(body):
    r = post("/rerank", body)
    listed = body.get("texts") if isinstance(body.get("texts"), list) else body.get("passages")
    check(r, n_texts=len(listed) if isinstance(listed, list) else None, top_n=body.get("top_n"))


@SETTINGS
@given(cohere_bodies(), st.sampled_from(["/v1/rerank", "/v2/rerank"]))
def test_cohere_bodies_never_fail_the_server(body, route):
    r = post(route, body)
    docs = body.get("documents")
    check(r, n_texts=len(docs) if isinstance(docs, list) else None, top_n=body.get("top_n"), shape="cohere")


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["/rerank", "/v1/rerank", "/v2/rerank"]))
def test_raw_bytes_get_a_4xx_in_the_services_shape(raw, route):
    r = CLIENT.post(route, content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and set(r.json()) == {"error", "error_type"}, (raw, r.text)


@pytest.mark.parametrize("depth", [50, 1000, 20_000])
def test_deep_nesting_anywhere_is_refused_cleanly(depth):
    for body in ('{"query": "q", "texts": ' + "[" * depth + "]" * depth + "}", "[" * depth + "]" * depth,
                 '{"query": ' + '{"a": ' * depth + "1" + "}" * depth + ', "documents": ["x"]}'):
        r = CLIENT.post("/v2/rerank", content=body.encode(), headers={"content-type": "application/json"})
        assert r.status_code in (400, 413, 422) and set(r.json()) == {"error", "error_type"}, r.text[:200]


def test_many_tiny_documents_and_one_huge_text():
    tiny = CLIENT.post("/v2/rerank", json={"query": "roof", "documents": ["roof"] * 200, "top_n": 3})
    assert tiny.status_code == 200 and len(tiny.json()["results"]) == 3
    over = CLIENT.post("/v2/rerank", json={"query": "roof", "documents": ["a"] * 10_000})
    assert over.status_code == 413 and over.json()["error_type"] in ("too_many_documents", "payload_too_large")
    huge = CLIENT.post("/rerank", json={"query": "roof", "texts": ["roof " * 30_000]})  # 150 kB, under the body limit
    assert huge.status_code == 200
    refused = CLIENT.post("/rerank", json={"query": "roof", "texts": ["roof " * 30_000], "truncate": False})
    assert refused.status_code == 413 and refused.json()["error_type"] == "text_too_long"
    assert json.loads(CLIENT.get("/health").text)["status"] == "ok"
