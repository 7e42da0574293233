"""Property-based fuzzing (hypothesis) of the data readers (triples as JSONL / JSON / CSV, grouped JSONL, BEIR
folders): files mixing valid records, values of every JSON type where text or a score is expected, odd Unicode
(combining marks, emoji, right-to-left, NUL), bytes that are not UTF-8, truncated lines and deep nesting. Whatever
is in the file: no exception but DataValidationError (whose message names the file); in mode "drop" the report
adds up (kept + dropped = read), every problem names the file and its line or record, and a problem about a
field names that field."""

from __future__ import annotations

import json

from tests.extras import dev_extra

hypothesis = dev_extra("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rerank_utils.data.beir import read_beir  # noqa: E402
from rerank_utils.data.grouped import read_grouped
from rerank_utils.data.records import DataValidationError
from rerank_utils.data.triples import read_triples

FIELD_REASONS = {"missing_field", "wrong_type", "empty_text", "score_not_number", "score_out_of_range", "extra_field"}
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                    derandomize=True)
ODD = ["e\u0301", "\U0001F3E0", "\u202eroof", "a\x00b", "\ufeff", " ", "", "roof " * 500]
texts = st.one_of(st.sampled_from(ODD), st.text(max_size=20))
values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | texts,
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)
maybe = lambda s: st.one_of(s, values)  # noqa: E731


def triple():
    return st.fixed_dictionaries({}, optional={"query": maybe(texts), "passage": maybe(texts), "score": maybe(st.sampled_from([0, 1, 0.5, 2]))})


def group():
    return st.fixed_dictionaries({}, optional={"query": maybe(texts), "positives": maybe(st.lists(texts, max_size=3)),
                                               "negatives": maybe(st.lists(texts, max_size=3))})


def lines(record):
    """JSONL lines: records as JSON, or garbage (bytes that are not UTF-8, cut lines, deep nesting, bare values)."""
    junk = st.sampled_from([b"\xff\xfe not utf-8", b'{"query": "cut', b"[" * 3000 + b"]" * 3000, b"null", b"42", b"", b"   "])
    return st.lists(st.one_of(record.map(lambda r: json.dumps(r, allow_nan=True).encode("utf-8")), junk), max_size=8)


def check_report(report, path):
    assert report.n_input == report.n_kept + sum(report.dropped.values())
    for p in report.problems:
        assert p.source == str(path) and p.location and p.message
        assert p.location.startswith(("line ", "record ")), p.location
        if p.reason in FIELD_REASONS:
            assert p.field, p


def read_both_modes(reader, path):
    for mode in ("strict", "drop"):
        try:
            out, report = reader(path, mode=mode)
        except DataValidationError as err:
            assert str(path) in str(err)
            continue
        check_report(report, path)
        if mode == "strict":
            assert not report.problems


@SETTINGS
@given(st.one_of(lines(triple()).map(lambda rows: ("triples", rows)), lines(group()).map(lambda rows: ("grouped", rows))))
def test_triples_and_grouped_jsonl(tmp_path_factory, kind_and_rows):
    kind, rows = kind_and_rows
    path = tmp_path_factory.mktemp("fuzz") / f"{kind}.jsonl"
    path.write_bytes(b"\n".join(rows))
    read_both_modes(read_triples if kind == "triples" else read_grouped, path)


@SETTINGS
@given(st.one_of(st.lists(triple(), max_size=6).map(lambda r: json.dumps(r, allow_nan=True).encode()), st.binary(max_size=60)))
def test_triples_json_array(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "triples.json"
    path.write_bytes(raw)
    read_both_modes(read_triples, path)


@SETTINGS
@given(st.lists(st.lists(st.one_of(texts, st.sampled_from(["1", "0", "x", "1e999", '"', "a,b"])), min_size=0, max_size=4), max_size=6))
def test_triples_csv(tmp_path_factory, rows):
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["query", "passage", "score"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("fuzz") / "triples.csv"
    path.write_text(buf.getvalue().replace("\x00", "\\0"), encoding="utf-8")  # the csv module cannot write NUL
    read_both_modes(read_triples, path)


@SETTINGS
@given(lines(st.fixed_dictionaries({}, optional={"_id": maybe(st.sampled_from(["d1", "d2", "q1"])), "text": maybe(texts), "title": maybe(texts)})),
       lines(st.fixed_dictionaries({}, optional={"_id": maybe(st.sampled_from(["q1", "q2"])), "text": maybe(texts)})),
       st.lists(st.one_of(st.sampled_from(["q1\td1\t1", "q2\td2\t0", "q1\td9\t1", "q1\td1", "q1\td1\tx", "q1\td1\t2", "\t\t"]), texts), max_size=6))
def test_beir_folder(tmp_path_factory, corpus, queries, qrels):
    folder = tmp_path_factory.mktemp("beir")
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_bytes(b"\n".join(corpus))
    (folder / "queries.jsonl").write_bytes(b"\n".join(queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(q.replace("\r", " ") for q in qrels), encoding="utf-8")
    for mode in ("strict", "drop"):
        try:
            ds, report = read_beir(folder, mode=mode)
        except DataValidationError as err:
            assert str(folder) in str(err)
            continue
        assert report.n_input == report.n_kept + sum(report.dropped.values())
        assert all(p.location.startswith(("line ", "record ")) and str(folder) in p.source for p in report.problems)
        assert all(d in ds.corpus for q in ds.qrels for d in ds.qrels[q])  # nothing judged that is not there
