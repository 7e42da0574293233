"""Unit tests for rerank_utils.data: readers, writers, validation, conversions, splits, leakage."""

from __future__ import annotations

import collections
import hashlib
import json
import math

import pytest

from rerank_utils.data.beir import read_beir, write_beir
from rerank_utils.data.convert import (
    dataset_to_grouped,
    dataset_to_triples,
    grouped_to_triples,
    triples_to_dataset,
    triples_to_grouped,
)
from rerank_utils.data.grouped import read_grouped, validate_grouped, write_grouped
from rerank_utils.data.records import (
    MODES,
    REASONS,
    DataValidationError,
    Problem,
    RetrievalDataset,
    ValidationReport,
)
from rerank_utils.data.splits import (
    LeakageError,
    LeakageReport,
    assert_no_leakage,
    check_leakage,
    split_dataset,
    split_triples,
)
from rerank_utils.data.triples import read_triples, validate_triples, write_triples

TRIPLES = [
    {"query": "what is a bygglov?", "passage": "A building permit.", "score": 1.0},
    {"query": "what is a bygglov?", "passage": "A kind of sandwich.", "score": 0.0},
    {"query": "什么是重排序模型？", "passage": "重排序模型对候选段落重新打分。", "score": 1.0},
    {"query": "什么是重排序模型？", "passage": "今天天气很好。", "score": 0.0},
    {"query": "graded", "passage": 'half relevant, comma, and "quotes"', "score": 0.75},
]

GROUPED = [
    {"query": "what is a bygglov?", "pos": ["A building permit."], "neg": ["A kind of sandwich.", "A tax."]},
    {"query": "什么是重排序模型？", "pos": ["重排序模型对候选段落重新打分。"], "neg": ["今天天气很好。"]},
    {"query": "no negatives yet", "pos": ["p"], "neg": []},
]

GOOD = '{"query": "q", "passage": "good", "score": 1}'


def write_lines(path, lines):
    """Write str or bytes lines, each ended by a newline."""
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines))
    return path


def check_invariant(report: ValidationReport) -> None:
    assert report.n_input == report.n_kept + sum(report.dropped.values())
    assert set(report.dropped) <= set(REASONS)
    assert all(p.reason in REASONS for p in report.problems)


# --------------------------------------------------------------------------------------------------
# Problem, report, error
# --------------------------------------------------------------------------------------------------


def test_reasons_cover_the_documented_codes():
    for code in (
        "invalid_json",
        "undecodable",
        "not_an_object",
        "missing_field",
        "extra_field",
        "wrong_type",
        "empty_text",
        "score_not_number",
        "score_out_of_range",
        "duplicate_pair",
        "conflicting_labels",
        "no_positive",
        "unknown_query_id",
        "unknown_doc_id",
        "duplicate_id",
        "invalid_row",
    ):
        assert code in REASONS
    assert MODES == ("strict", "drop")


def test_problem_str_names_source_and_location():
    p = Problem("data/train.jsonl", "line 12", "empty_text", "field 'query' is empty", "query")
    assert str(p) == "data/train.jsonl:line 12: field 'query' is empty"


def test_report_summary_counts_by_reason():
    report = ValidationReport(
        source="x.jsonl",
        n_input=5,
        n_kept=2,
        dropped=collections.Counter({"duplicate_pair": 2, "empty_text": 1}),
        problems=[Problem("x.jsonl", f"line {i}", "duplicate_pair", "m") for i in (1, 2)]
        + [Problem("x.jsonl", "line 3", "empty_text", "m")],
    )
    first = report.summary().splitlines()[0]
    assert first == "x.jsonl: 5 records, 2 kept, 3 dropped (2 duplicate_pair, 1 empty_text)"
    assert "x.jsonl:line 3: m" in report.summary()
    assert not report.ok
    assert ValidationReport("y", 1, 1).ok
    assert ValidationReport("y", 1, 1).summary() == "y: 1 records, 1 kept, 0 dropped"


def test_error_lists_at_most_50_problems_then_a_count():
    records = [{"query": f"q{i}", "passage": "", "score": 1} for i in range(60)]
    with pytest.raises(DataValidationError) as info:
        validate_triples(records)
    text = str(info.value)
    lines = text.splitlines()
    assert lines[0] == "60 problems in <records>:"
    assert "<records>:record 49: field 'passage' is empty" in text
    assert "record 50:" not in text
    assert "  ... and 10 more" in lines
    assert lines[-1] == "pass mode='drop' to drop them and get a report"
    assert len(info.value.problems) == 60
    assert info.value.report.n_input == 60


@pytest.mark.parametrize("mode", ["lenient", "STRICT", None])
def test_unknown_mode_is_a_value_error_naming_the_modes(mode, tmp_path):
    with pytest.raises(ValueError, match="'strict', 'drop'"):
        validate_triples(TRIPLES, mode=mode)
    with pytest.raises(ValueError, match="'strict', 'drop'"):
        read_triples(write_triples(TRIPLES, tmp_path / "t.jsonl"), mode=mode)
    with pytest.raises(ValueError, match="'strict', 'drop'"):
        validate_grouped(GROUPED, mode=mode)


# --------------------------------------------------------------------------------------------------
# Triples: round trips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_triples_round_trip_including_chinese(suffix, tmp_path):
    path = write_triples(TRIPLES, tmp_path / "nested" / "dir" / f"triples{suffix}")
    assert path == tmp_path / "nested" / "dir" / f"triples{suffix}"
    assert "重排序模型" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    records, report = read_triples(path)
    assert records == TRIPLES
    assert all(type(r["score"]) is float for r in records)
    assert (report.n_input, report.n_kept, report.ok) == (5, 5, True)
    assert report.source == str(path)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_triples_extra_fields_round_trip_when_allowed(suffix, tmp_path):
    data = [dict(r, lang="zh" if "重" in r["query"] else "en") for r in TRIPLES]
    path = write_triples(data, tmp_path / f"t{suffix}")
    records, _ = read_triples(path, allowed_extra_fields=("lang",))
    assert records == data
    with pytest.raises(DataValidationError, match="field 'lang' is not part of the triples format"):
        read_triples(path)


def test_csv_header_and_number_format(tmp_path):
    path = write_triples(TRIPLES[:2] + TRIPLES[4:], tmp_path / "t.csv")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "query,passage,score",
        "what is a bygglov?,A building permit.,1",
        "what is a bygglov?,A kind of sandwich.,0",
        'graded,"half relevant, comma, and ""quotes""",0.75',
    ]


def test_json_array_is_written_one_record_per_line(tmp_path):
    path = write_triples(TRIPLES[:2], tmp_path / "t.json")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4
    assert json.loads(lines[1].rstrip(",")) == TRIPLES[0]
    empty = write_triples([], tmp_path / "empty.json")
    assert read_triples(empty)[0] == []


@pytest.mark.parametrize("name", ["t.txt", "t.tsv", "t"])
def test_unknown_suffix_is_a_value_error_naming_allowed_suffixes(name, tmp_path):
    suffix = name.partition(".")[2]
    for call in (lambda p: read_triples(p), lambda p: write_triples(TRIPLES, p)):
        with pytest.raises(ValueError) as info:
            call(tmp_path / name)
        assert ".json, .jsonl, .csv" in str(info.value)
        assert (f"'.{suffix}'" if suffix else "(none)") in str(info.value)
    with pytest.raises(ValueError, match=r"\.json, \.jsonl"):
        write_grouped(GROUPED, tmp_path / "g.csv")


def test_write_triples_rejects_records_without_the_fields(tmp_path):
    with pytest.raises(ValueError, match="record 1 lacks 'score'"):
        write_triples([TRIPLES[0], {"query": "q", "passage": "p"}], tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()


def test_records_are_normalised(tmp_path):
    import numpy as np  # a core dependency: fails, never skips
    records, _ = validate_triples(
        [{"query": "  q  ", "passage": "\tp\n", "score": np.float64(1.0)}, {"query": "q", "passage": "n", "score": 0}]
    )
    assert records == [{"query": "q", "passage": "p", "score": 1.0}, {"query": "q", "passage": "n", "score": 0.0}]
    assert type(records[0]["score"]) is float


def test_validate_accepts_a_dataframe():
    import pandas as pd  # a core dependency: fails, never skips
    frame = pd.DataFrame(TRIPLES)
    records, report = validate_triples(frame)
    assert records == TRIPLES and report.n_kept == 5


# --------------------------------------------------------------------------------------------------
# Triples: one bad record, both modes
# --------------------------------------------------------------------------------------------------

BAD_JSONL_CASES = [
    # (line written at line 2, reason, field, text expected in the message)
    ('{"query": "q", "passage": "p2"}', "missing_field", "score", "field 'score' is missing"),
    ('{"passage": "p2", "score": 1}', "missing_field", "query", "field 'query' is missing"),
    (
        '{"query": "q", "passage": "p2", "score": 1, "label": 1}',
        "extra_field",
        "label",
        "allowed_extra_fields=('label',)",
    ),
    ('{"query": 5, "passage": "p2", "score": 1}', "wrong_type", "query", "field 'query' is a number (5), not text"),
    ('{"query": "q", "passage": ["p2"], "score": 1}', "wrong_type", "passage", "field 'passage' is a list"),
    ('{"query": "q", "passage": "   ", "score": 1}', "empty_text", "passage", "field 'passage' is empty"),
    ('{"query": "", "passage": "p2", "score": 1}', "empty_text", "query", "field 'query' is empty"),
    ('{"query": "q", "passage": "p2", "score": true}', "wrong_type", "score", "field 'score' is a boolean (true)"),
    ('{"query": "q", "passage": "p2", "score": "1"}', "wrong_type", "score", "without quotes"),
    ('{"query": "q", "passage": "p2", "score": null}', "wrong_type", "score", "field 'score' is null"),
    ('{"query": "q", "passage": "p2", "score": NaN}', "score_not_number", "score", "field 'score' is nan"),
    ('{"query": "q", "passage": "p2", "score": Infinity}', "score_not_number", "score", "field 'score' is inf"),
    (
        '{"query": "q", "passage": "p2", "score": 1.5}',
        "score_out_of_range",
        "score",
        "field 'score' is 1.5; scores must be numbers in [0, 1]",
    ),
    ('{"query": "q", "passage": "p2", "score": -0.1}', "score_out_of_range", "score", "field 'score' is -0.1"),
    ('["q", "p2", 1]', "not_an_object", None, "record is a list, not an object"),
    ('"just text"', "not_an_object", None, "record is the string 'just text', not an object"),
    ('{"query": "q", "passage": ', "invalid_json", None, "not valid JSON (Expecting value"),
]


@pytest.mark.parametrize(
    "line,reason,field,expected", BAD_JSONL_CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(BAD_JSONL_CASES)]
)
def test_bad_jsonl_record_strict_lists_file_line_and_field(line, reason, field, expected, tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [GOOD, line, '{"query": "q", "passage": "good too", "score": 0}'])
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    text = str(info.value)
    assert text.startswith(f"1 problem in {path}:")
    assert f"{path}:line 2: " in text
    assert expected in text
    if field:
        assert f"'{field}'" in text
    (problem,) = info.value.problems
    assert (problem.source, problem.location, problem.reason, problem.field) == (str(path), "line 2", reason, field)


@pytest.mark.parametrize(
    "line,reason,field,expected", BAD_JSONL_CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(BAD_JSONL_CASES)]
)
def test_bad_jsonl_record_drop_mode_counts_it(line, reason, field, expected, tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [GOOD, line, '{"query": "q", "passage": "good too", "score": 0}'])
    records, report = read_triples(path, mode="drop")
    assert records == [
        {"query": "q", "passage": "good", "score": 1.0},
        {"query": "q", "passage": "good too", "score": 0.0},
    ]
    assert (report.n_input, report.n_kept) == (3, 2)
    assert report.dropped == collections.Counter({reason: 1})
    assert [p.location for p in report.problems] == ["line 2"]
    assert expected in report.problems[0].message
    check_invariant(report)


def test_in_memory_records_are_located_by_index():
    records = [{"query": "q", "passage": "p", "score": 1}, {"query": "q", "passage": "x", "score": 2}]
    with pytest.raises(DataValidationError) as info:
        validate_triples(records)
    assert "<records>:record 1: field 'score' is 2" in str(info.value)
    with pytest.raises(DataValidationError, match=r"mine\.csv:row 9: field 'score' is 2"):
        validate_triples(records, source="mine.csv", locations=["row 8", "row 9"])
    with pytest.raises(ValueError, match="locations has 1 items but there are 2 records"):
        validate_triples(records, locations=["row 8"])


def test_a_record_with_several_problems_lists_all_and_counts_once(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [GOOD, '{"query": "", "passage": 3, "score": 7, "x": 1}'])
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.reason, p.field) for p in info.value.problems] == [
        ("extra_field", "x"),
        ("empty_text", "query"),
        ("wrong_type", "passage"),
        ("score_out_of_range", "score"),
    ]
    _, report = read_triples(path, mode="drop")
    assert report.dropped == collections.Counter({"extra_field": 1})
    assert len(report.problems) == 4
    check_invariant(report)


def test_undecodable_line_is_reported_and_the_rest_still_read(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            GOOD,
            b'{"query": "q", "passage": "caf\xe9", "score": 0}',
            b"\xff\xfe",
            '{"query": "q", "passage": "", "score": 0}',
            '{"query": "q", "passage": "ok", "score": 0}',
        ],
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason) for p in info.value.problems] == [
        ("line 2", "undecodable"),
        ("line 3", "undecodable"),
        ("line 4", "empty_text"),
    ]
    assert "line 2: line is not valid UTF-8 (byte 0xe9 at column 31); re-save the file as UTF-8" in str(info.value)
    assert "byte 0xff at column 1" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert [r["passage"] for r in records] == ["good", "ok"]
    assert report.dropped == collections.Counter({"undecodable": 2, "empty_text": 1})
    check_invariant(report)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffquery,passage,score\nq,p,1\n".encode("utf-8"))
    assert read_triples(path)[0] == [{"query": "q", "passage": "p", "score": 1.0}]


# --------------------------------------------------------------------------------------------------
# Triples: JSON array and CSV specifics
# --------------------------------------------------------------------------------------------------


def test_json_array_records_are_located_by_index_and_line(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(
        '[\n  {"query": "q", "passage": "p", "score": 1},\n\n  {"query": "q",\n   "passage": "x", "score": 1.5}\n]\n',
        encoding="utf-8",
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert f"{path}:record 1 (line 4): field 'score' is 1.5" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert records == [{"query": "q", "passage": "p", "score": 1.0}]
    assert report.dropped == collections.Counter({"score_out_of_range": 1})
    check_invariant(report)


@pytest.mark.parametrize("mode", MODES)
def test_unparseable_json_array_is_an_error_in_both_modes(mode, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(
        '[\n{"query": "q", "passage": "p", "score": 1},\n{"query": "q" "passage": "x"}\n]\n', encoding="utf-8"
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path, mode=mode)
    text = str(info.value)
    assert f"{path}:line 3: not valid JSON: Expecting ',' delimiter (column 15)" in text
    assert "nothing can be kept" in text
    assert info.value.problems[0].reason == "invalid_json"


@pytest.mark.parametrize("mode", MODES)
def test_json_array_with_bad_bytes_names_the_lines_in_both_modes(mode, tmp_path):
    path = write_lines(
        tmp_path / "t.json", [b"[", GOOD.encode() + b",", b'{"query": "\xff\xfe", "passage": "p", "score": 1}', b"]"]
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path, mode=mode)
    assert [(p.location, p.reason) for p in info.value.problems] == [("line 3", "undecodable")]
    assert f"{path}:line 3: line is not valid UTF-8 (byte 0xff at column 12)" in str(info.value)


@pytest.mark.parametrize(
    "content,reason,expected",
    [
        (
            '{"query": "q", "passage": "p", "score": 1}\n{"query": "q", "passage": "n", "score": 0}\n',
            "not_an_array",
            "name the file .jsonl",
        ),
        ("", "invalid_json", "the file is empty"),
        ('[{"query": "q", "passage": "p", "score": 1}] []', "invalid_json", "extra data after the closing ']'"),
        ('[{"query": "q", "passage": "p", "score": 1},]', "invalid_json", "Expecting value"),
        ('[{"query": "q", "passage": "p", "score": 1}', "invalid_json", "expected ',' or ']'"),
    ],
)
def test_json_file_that_is_not_one_array(content, reason, expected, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_triples(path, mode="drop")
    assert info.value.problems[0].reason == reason
    assert expected in str(info.value)


def test_csv_scores_are_parsed_from_text(tmp_path):
    path = write_lines(
        tmp_path / "t.csv",
        ["query,passage,score", "q,a,1", "q,b,0.5", "q,c, 0 ", "q,d,yes", "q,e,", "q,f,nan", "q,g,2"],
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason, p.field) for p in info.value.problems] == [
        ("line 5", "score_not_number", "score"),
        ("line 6", "score_not_number", "score"),
        ("line 7", "score_not_number", "score"),
        ("line 8", "score_out_of_range", "score"),
    ]
    text = str(info.value)
    assert f"{path}:line 5: field 'score' is 'yes', not a number" in text
    assert f"{path}:line 6: field 'score' is empty" in text
    records, report = read_triples(path, mode="drop")
    assert [(r["passage"], r["score"]) for r in records] == [("a", 1.0), ("b", 0.5), ("c", 0.0)]
    assert report.dropped == collections.Counter({"score_not_number": 3, "score_out_of_range": 1})
    check_invariant(report)


def test_csv_rows_with_wrong_column_count_and_multiline_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        'query,passage,score\nq,"a, with comma",1\nq,b,0,extra\n\nq,"two\nlines",0\nq,c\nq,"d",0\n', encoding="utf-8"
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason) for p in info.value.problems] == [
        ("line 3", "invalid_row"),
        ("line 7", "invalid_row"),
    ]
    assert f"{path}:line 3: row has 4 columns but the header has 3" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert [r["passage"] for r in records] == ["a, with comma", "two\nlines", "d"]
    assert (report.n_input, report.n_kept) == (5, 3)
    check_invariant(report)


def test_csv_extra_column_is_an_extra_field_per_row(tmp_path):
    path = write_lines(tmp_path / "t.csv", ["query,passage,score,source", "q,a,1,web", "q,b,0,web"])
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason, p.field) for p in info.value.problems] == [
        ("line 2", "extra_field", "source"),
        ("line 3", "extra_field", "source"),
    ]
    records, _ = read_triples(path, allowed_extra_fields=["source"])
    assert records[1] == {"query": "q", "passage": "b", "score": 0.0, "source": "web"}


@pytest.mark.parametrize("mode", MODES)
def test_csv_header_without_a_required_column_stops_in_both_modes(mode, tmp_path):
    path = write_lines(tmp_path / "t.csv", ["query,passage,label", "q,a,1"])
    with pytest.raises(DataValidationError) as info:
        read_triples(path, mode=mode)
    (problem,) = info.value.problems
    assert (problem.location, problem.reason, problem.field) == ("line 1", "missing_field", "score")
    assert "lacks 'score'" in str(info.value) and str(path) in str(info.value)


def test_csv_undecodable_line(tmp_path):
    path = write_lines(tmp_path / "t.csv", [b"query,passage,score", b"q,a,1", b"q,\xff\xfe,0", b"q,c,0"])
    with pytest.raises(DataValidationError, match=r"t\.csv:line 3: line is not valid UTF-8 \(byte 0xff at column 3\)"):
        read_triples(path)
    records, report = read_triples(path, mode="drop")
    assert [r["passage"] for r in records] == ["a", "c"]
    assert report.dropped == collections.Counter({"undecodable": 1})
    check_invariant(report)


def test_empty_files(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n\n", encoding="utf-8")
    records, report = read_triples(jsonl)
    assert records == [] and (report.n_input, report.n_kept, report.ok) == (0, 0, True)
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("", encoding="utf-8")
    with pytest.raises(DataValidationError, match="the file is empty"):
        read_triples(csv_path, mode="drop")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_triples(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------------------------------
# Triples: duplicates, conflicts, positives
# --------------------------------------------------------------------------------------------------


def test_duplicate_pair_keeps_the_first(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            GOOD,
            '{"query": "q", "passage": "n", "score": 0}',
            '{"query": " q ", "passage": "good  ", "score": 1.0}',
            GOOD,
        ],
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason, p.field) for p in info.value.problems] == [
        ("line 3", "duplicate_pair", "passage"),
        ("line 4", "duplicate_pair", "passage"),
    ]
    assert f"{path}:line 3: the same query and passage as line 1; remove the repeat" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert records == [{"query": "q", "passage": "good", "score": 1.0}, {"query": "q", "passage": "n", "score": 0.0}]
    assert report.dropped == collections.Counter({"duplicate_pair": 2})
    check_invariant(report)


def test_conflicting_labels_drop_every_record_of_the_pair(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            GOOD,
            '{"query": "q", "passage": "p", "score": 1}',
            '{"query": "q", "passage": "n", "score": 0}',
            '{"query": "q", "passage": "p", "score": 0}',
        ],
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason, p.field) for p in info.value.problems] == [
        ("line 2", "conflicting_labels", "score"),
        ("line 4", "conflicting_labels", "score"),
    ]
    assert "different scores (line 2: 1, line 4: 0)" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert [r["passage"] for r in records] == ["good", "n"]
    assert report.dropped == collections.Counter({"conflicting_labels": 2})
    check_invariant(report)


def test_no_positive_flags_every_record_of_the_query(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [GOOD, '{"query": "lonely", "passage": "a", "score": 0}', '{"query": "lonely", "passage": "b", "score": 0.4}'],
    )
    with pytest.raises(DataValidationError) as info:
        read_triples(path)
    assert [(p.location, p.reason, p.field) for p in info.value.problems] == [
        ("line 2", "no_positive", "query"),
        ("line 3", "no_positive", "query"),
    ]
    assert "query 'lonely' has no valid record with score >= 0.5" in str(info.value)
    assert "require_positive=False" in str(info.value)
    records, report = read_triples(path, mode="drop")
    assert records == [{"query": "q", "passage": "good", "score": 1.0}]
    assert report.dropped == collections.Counter({"no_positive": 2})
    check_invariant(report)
    records, report = read_triples(path, require_positive=False)
    assert len(records) == 3 and report.ok


def test_query_whose_only_positive_is_bad_has_no_positive():
    records = [{"query": "q", "passage": "p", "score": 1.5}, {"query": "q", "passage": "n", "score": 0}]
    kept, report = validate_triples(records, mode="drop")
    assert kept == []
    assert report.dropped == collections.Counter({"score_out_of_range": 1, "no_positive": 1})
    check_invariant(report)


def test_messy_file_keeps_the_count_invariant(tmp_path):
    lines = [
        GOOD,
        b"\xff",
        "not json",
        '{"query": "q", "passage": "good", "score": 1}',
        '{"query": "q", "passage": "x", "score": 1, "y": 2}',
        '{"query": "z", "passage": "x", "score": 0}',
        '{"query": "c", "passage": "x", "score": 0}',
        '{"query": "c", "passage": "x", "score": 1}',
        "[]",
        '{"query": "ok", "passage": "fine", "score": 0.5}',
    ]
    path = write_lines(tmp_path / "t.jsonl", lines)
    records, report = read_triples(path, mode="drop")
    assert records == [
        {"query": "q", "passage": "good", "score": 1.0},
        {"query": "ok", "passage": "fine", "score": 0.5},
    ]
    assert report.n_input == 10 and report.n_kept == 2
    assert report.dropped == collections.Counter(
        {
            "undecodable": 1,
            "invalid_json": 1,
            "duplicate_pair": 1,
            "extra_field": 1,
            "no_positive": 1,
            "conflicting_labels": 2,
            "not_an_object": 1,
        }
    )
    check_invariant(report)
    assert report.summary().splitlines()[0].startswith(f"{path}: 10 records, 2 kept, 8 dropped (2 conflicting_labels, ")


# --------------------------------------------------------------------------------------------------
# Grouped
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_grouped_round_trip_including_chinese(suffix, tmp_path):
    path = write_grouped(GROUPED, tmp_path / "sub" / f"g{suffix}")
    assert "重排序模型" in path.read_text(encoding="utf-8")
    records, report = read_grouped(path)
    assert records == GROUPED
    assert (report.n_input, report.n_kept, report.ok) == (3, 3, True)


def test_grouped_missing_neg_becomes_empty_and_text_is_stripped():
    records, _ = validate_grouped([{"query": " q ", "pos": [" p "]}, {"query": "r", "pos": ["a"], "neg": ("b",)}])
    assert records == [{"query": "q", "pos": ["p"], "neg": []}, {"query": "r", "pos": ["a"], "neg": ["b"]}]


def test_grouped_extra_fields():
    record = {"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1.0], "neg_scores": [0.1]}
    with pytest.raises(DataValidationError, match="field 'pos_scores' is not part of the grouped format"):
        validate_grouped([record])
    records, _ = validate_grouped([record], allowed_extra_fields=("pos_scores", "neg_scores"))
    assert records == [record]


BAD_GROUPED_CASES = [
    ({"query": "q2", "pos": "p"}, "wrong_type", "pos", "field 'pos' is the string 'p', not a list"),
    ({"query": "q2", "pos": ["p", 3]}, "wrong_type", "pos[1]", "field 'pos[1]' is a number (3), not text"),
    ({"query": "q2", "pos": ["p"], "neg": ["n", " "]}, "empty_text", "neg[1]", "field 'neg[1]' is empty"),
    (
        {"query": "q2", "pos": [], "neg": ["n"]},
        "no_positive",
        "pos",
        "field 'pos' is empty; every query needs at least one relevant passage",
    ),
    ({"query": "q2", "pos": ["p", "n"], "neg": ["x", "n "]}, "conflicting_labels", "neg[1]", "neg[1] is also pos[1]"),
    ({"query": "q2", "pos": ["p", " p"]}, "duplicate_pair", "pos[1]", "field 'pos[1]' repeats pos[0]"),
    ({"query": " q ", "pos": ["other"]}, "duplicate_pair", "query", "the same query as line 1; merge the two records"),
    ({"pos": ["p"]}, "missing_field", "query", "field 'query' is missing"),
    ({"query": "q2", "neg": ["n"]}, "missing_field", "pos", "field 'pos' is missing"),
    ({"query": "q2", "pos": ["p"], "id": 7}, "extra_field", "id", "allowed_extra_fields=('id',)"),
    ({"query": None, "pos": ["p"]}, "wrong_type", "query", "field 'query' is null"),
    (["q2", ["p"]], "not_an_object", None, "record is a list, not an object"),
]


@pytest.mark.parametrize(
    "record,reason,field,expected",
    BAD_GROUPED_CASES,
    ids=[c[1] + "-" + str(i) for i, c in enumerate(BAD_GROUPED_CASES)],
)
def test_bad_grouped_record_in_both_modes(record, reason, field, expected, tmp_path):
    good = {"query": "q", "pos": ["p"], "neg": ["n"]}
    path = write_lines(
        tmp_path / "g.jsonl", [json.dumps(good), json.dumps(record), json.dumps({"query": "q3", "pos": ["p3"]})]
    )
    with pytest.raises(DataValidationError) as info:
        read_grouped(path)
    (problem,) = info.value.problems
    assert (problem.location, problem.reason, problem.field) == ("line 2", reason, field)
    text = str(info.value)
    assert f"{path}:line 2: " in text and expected in text
    if field:
        assert field in text
    records, report = read_grouped(path, mode="drop")
    assert [r["query"] for r in records] == ["q", "q3"]
    assert report.dropped == collections.Counter({reason: 1})
    check_invariant(report)


def test_grouped_json_array_location(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('[\n{"query": "q", "pos": ["p"]},\n{"query": "r", "pos": []}\n]', encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"g\.json:record 1 \(line 3\): field 'pos' is empty"):
        read_grouped(path)


def test_grouped_undecodable_and_invalid_json_lines(tmp_path):
    path = write_lines(
        tmp_path / "g.jsonl", [b'{"query": "q", "pos": ["p"]}', b"\xfe", b"{oops", b'{"query": "r", "pos": ["p2"]}']
    )
    records, report = read_grouped(path, mode="drop")
    assert [r["query"] for r in records] == ["q", "r"]
    assert [(p.location, p.reason) for p in report.problems] == [("line 2", "undecodable"), ("line 3", "invalid_json")]
    check_invariant(report)


# --------------------------------------------------------------------------------------------------
# BEIR
# --------------------------------------------------------------------------------------------------


def toy_dataset() -> RetrievalDataset:
    return RetrievalDataset(
        corpus={
            "d1": "A building permit.",
            "d2": "重排序模型对候选段落重新打分。",
            "d3": "Unrelated text.",
            "d4": "Another doc.",
        },
        queries={"q1": "what is a bygglov?", "q2": "什么是重排序模型？", "q3": "graded query"},
        qrels={"q1": {"d1": 1.0, "d3": 0.0}, "q2": {"d2": 2.0}, "q3": {"d4": 0.5, "d1": 1.0}},
        doc_meta={
            "d1": {"title": "Bygglov", "category": "permits"},
            "d2": {"title": "重排序", "tags": ["zh", "rerank"]},
        },
        query_meta={"q1": {"category": "permits"}, "q2": {"lang": "zh"}},
        name="toy",
    )


def test_beir_round_trip_including_chinese(tmp_path):
    ds = toy_dataset()
    folder = write_beir(ds, tmp_path / "beir" / "toy", split="test")
    assert folder == tmp_path / "beir" / "toy"
    assert (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines() == [
        "query-id\tcorpus-id\tscore",
        "q1\td1\t1",
        "q1\td3\t0",
        "q2\td2\t2",
        "q3\td4\t0.5",
        "q3\td1\t1",
    ]
    first_doc = json.loads((folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first_doc == {"_id": "d1", "title": "Bygglov", "text": "A building permit.", "category": "permits"}
    assert "重排序" in (folder / "corpus.jsonl").read_text(encoding="utf-8")
    back, report = read_beir(folder, "test")
    assert back.corpus == ds.corpus
    assert back.queries == ds.queries
    assert back.qrels == ds.qrels
    assert back.doc_meta == ds.doc_meta
    assert back.query_meta == ds.query_meta
    assert back.name == "toy"
    assert report.ok and report.n_input == 4 + 3 + 5 == report.n_kept


def test_beir_split_holds_only_queries_with_a_positive(tmp_path):
    ds = toy_dataset()
    write_beir(ds, tmp_path, "test")
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t0\nq3\td4\t1\n", encoding="utf-8")
    dev, report = read_beir(tmp_path, "dev")
    assert list(dev.queries) == ["q3"]
    assert dev.qrels == {"q3": {"d4": 1.0}}
    assert len(dev.corpus) == 4
    assert report.ok and report.n_kept == report.n_input == 4 + 3 + 2


def test_beir_several_splits_in_one_folder(tmp_path):
    ds = toy_dataset()
    parts = {"train": ds.subset(["q1", "q3"]), "test": ds.subset(["q2"])}
    for split, part in parts.items():
        write_beir(part, tmp_path, split)
    for split, part in parts.items():
        back, _ = read_beir(tmp_path, split)
        assert back.queries == part.queries and back.qrels == part.qrels


def test_beir_missing_files_name_the_file_and_the_splits(tmp_path):
    write_beir(toy_dataset(), tmp_path, "train")
    write_beir(toy_dataset(), tmp_path, "test")
    with pytest.raises(FileNotFoundError) as info:
        read_beir(tmp_path, "dev")
    assert "dev.tsv" in str(info.value) and "splits present: test, train" in str(info.value)
    (tmp_path / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        read_beir(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        read_beir(tmp_path / "nope")


def test_beir_qrels_without_header_and_with_blank_lines(tmp_path):
    write_beir(toy_dataset(), tmp_path, "test")
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n\nq2\td2\t1\n", encoding="utf-8")
    ds, report = read_beir(tmp_path)
    assert ds.qrels == {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}}
    assert report.ok


def write_bad_beir(folder):
    write_lines(
        folder / "corpus.jsonl",
        [
            '{"_id": "d1", "title": "T", "text": "one"}',
            '{"_id": "d2", "text": "two"}',
            '{"_id": "d1", "text": "again"}',  # duplicate_id
            '{"_id": 3, "text": "three"}',  # wrong_type
            '{"_id": "d4", "title": "", "text": " "}',  # empty_text
            '{"_id": "d5", "title": "Title only", "text": ""}',  # fine: the title carries it
            b'{"_id": "d6", "text": "\xff"}',  # undecodable
            '{"_id": "d7"}',  # missing text
        ],
    )
    write_lines(
        folder / "queries.jsonl",
        [
            '{"_id": "q1", "text": "first"}',
            '{"_id": "q2", "text": "second"}',
            '{"text": "no id"}',
            '{"_id": "q1", "text": "dup"}',
        ],
    )
    (folder / "qrels").mkdir()
    write_lines(
        folder / "qrels" / "test.tsv",
        [
            "query-id\tcorpus-id\tscore",
            "q1\td1\t1",
            "q1\td2",  # invalid_row: 2 columns
            "q1\td2\thigh",  # invalid_row: not a number
            "q9\td1\t1",  # unknown_query_id
            "q2\td9\t1",  # unknown_doc_id
            "q2\td2\t1",
            "q2\td2\t1",  # duplicate_pair
            "q2\td5\t1",
            "q2\td5\t0",  # conflicting_labels (both rows)
        ],
    )


EXPECTED_BEIR_PROBLEMS = [
    ("corpus.jsonl", "line 3", "duplicate_id", "_id"),
    ("corpus.jsonl", "line 4", "wrong_type", "_id"),
    ("corpus.jsonl", "line 5", "empty_text", "text"),
    ("corpus.jsonl", "line 7", "undecodable", None),
    ("corpus.jsonl", "line 8", "missing_field", "text"),
    ("queries.jsonl", "line 3", "missing_field", "_id"),
    ("queries.jsonl", "line 4", "duplicate_id", "_id"),
    ("test.tsv", "line 3", "invalid_row", None),
    ("test.tsv", "line 4", "invalid_row", "score"),
    ("test.tsv", "line 5", "unknown_query_id", "query-id"),
    ("test.tsv", "line 6", "unknown_doc_id", "corpus-id"),
    ("test.tsv", "line 8", "duplicate_pair", "corpus-id"),
    ("test.tsv", "line 9", "conflicting_labels", "score"),
    ("test.tsv", "line 10", "conflicting_labels", "score"),
]


def test_beir_bad_input_strict(tmp_path):
    write_bad_beir(tmp_path)
    with pytest.raises(DataValidationError) as info:
        read_beir(tmp_path)
    found = [(p.source.rsplit("/", 1)[-1], p.location, p.reason, p.field) for p in info.value.problems]
    assert found == EXPECTED_BEIR_PROBLEMS
    text = str(info.value)
    assert text.startswith(f"14 problems in {tmp_path}:")
    assert f"{tmp_path / 'corpus.jsonl'}:line 3: _id 'd1' is also at line 1" in text
    assert f"{tmp_path / 'qrels' / 'test.tsv'}:line 3: row has 2 tab-separated columns, not 3" in text
    assert f"{tmp_path / 'qrels' / 'test.tsv'}:line 5: query-id 'q9' is not in queries.jsonl" in text
    assert f"{tmp_path / 'qrels' / 'test.tsv'}:line 6: corpus-id 'd9' is not in corpus.jsonl" in text


def test_beir_bad_input_drop(tmp_path):
    write_bad_beir(tmp_path)
    ds, report = read_beir(tmp_path, mode="drop")
    assert ds.corpus == {"d1": "one", "d2": "two", "d5": ""}
    assert ds.doc_meta == {"d1": {"title": "T"}, "d5": {"title": "Title only"}}
    assert ds.queries == {"q1": "first", "q2": "second"}
    assert ds.qrels == {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}}
    assert (report.n_input, report.n_kept) == (8 + 4 + 9, 3 + 2 + 2)
    assert report.dropped == collections.Counter(
        {
            "duplicate_id": 2,
            "wrong_type": 1,
            "empty_text": 1,
            "undecodable": 1,
            "missing_field": 2,
            "invalid_row": 2,
            "unknown_query_id": 1,
            "unknown_doc_id": 1,
            "duplicate_pair": 1,
            "conflicting_labels": 2,
        }
    )
    check_invariant(report)


def test_write_beir_checks_its_input(tmp_path):
    ds = toy_dataset()
    with pytest.raises(ValueError, match="split must be a plain name"):
        write_beir(ds, tmp_path, "../x")
    ds.qrels["q1"]["ghost"] = 1.0
    with pytest.raises(ValueError, match="ghost"):
        write_beir(ds, tmp_path)


# --------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------


def test_triples_to_grouped_and_back():
    grouped = triples_to_grouped(TRIPLES)
    assert grouped == [
        {"query": "what is a bygglov?", "pos": ["A building permit."], "neg": ["A kind of sandwich."]},
        {"query": "什么是重排序模型？", "pos": ["重排序模型对候选段落重新打分。"], "neg": ["今天天气很好。"]},
        {"query": "graded", "pos": ['half relevant, comma, and "quotes"'], "neg": []},
    ]
    binary = [dict(r, score=1.0 if r["score"] >= 0.5 else 0.0) for r in TRIPLES]
    assert grouped_to_triples(grouped) == binary
    assert triples_to_grouped(grouped_to_triples(GROUPED)) == GROUPED


def test_positive_threshold_is_half():
    grouped = triples_to_grouped(
        [{"query": "q", "passage": "a", "score": 0.5}, {"query": "q", "passage": "b", "score": 0.49}]
    )
    assert grouped == [{"query": "q", "pos": ["a"], "neg": ["b"]}]


def test_triples_to_dataset_uses_stable_text_ids():
    ds = triples_to_dataset(TRIPLES, name="t")
    qid = "q-" + hashlib.sha1("what is a bygglov?".encode("utf-8")).hexdigest()[:12]
    pos = "d-" + hashlib.sha1("A building permit.".encode("utf-8")).hexdigest()[:12]
    neg = "d-" + hashlib.sha1("A kind of sandwich.".encode("utf-8")).hexdigest()[:12]
    assert ds.name == "t" and len(ds) == 3 and len(ds.corpus) == 5
    assert ds.queries[qid] == "what is a bygglov?"
    assert ds.qrels[qid] == {pos: 1.0, neg: 0.0}
    assert ds.positives(qid) == [pos]
    assert triples_to_dataset(list(reversed(TRIPLES))).queries.keys() == ds.queries.keys()


def test_triples_dataset_round_trip_with_negatives():
    ds = triples_to_dataset(TRIPLES)
    assert dataset_to_triples(ds) == [r for r in TRIPLES if r["score"] > 0]
    negatives = {qid: [d for d, g in grades.items() if g == 0] for qid, grades in ds.qrels.items()}
    assert dataset_to_triples(ds, negatives) == TRIPLES
    assert dataset_to_grouped(ds, negatives) == triples_to_grouped(TRIPLES)


def test_dataset_to_triples_grades_and_negatives():
    ds = toy_dataset()
    triples = dataset_to_triples(ds, negatives={"q1": ["d3", "d4", "d3"], "q2": ["d1"], "other": ["d9"]})
    assert [(t["query"], t["passage"], t["score"]) for t in triples] == [
        ("what is a bygglov?", "A building permit.", 1.0),
        ("what is a bygglov?", "Unrelated text.", 0.0),
        ("what is a bygglov?", "Another doc.", 0.0),
        ("什么是重排序模型？", "重排序模型对候选段落重新打分。", 1.0),  # grade 2 -> 1.0
        ("什么是重排序模型？", "A building permit.", 0.0),
        ("graded query", "Another doc.", 0.5),  # a grade in (0, 1] is kept
        ("graded query", "A building permit.", 1.0),
    ]
    validate_triples(triples)  # the output is valid triples
    with pytest.raises(ValueError, match="'d1' is a positive of query 'q1'"):
        dataset_to_triples(ds, negatives={"q1": ["d1"]})
    with pytest.raises(KeyError, match="'d9'"):
        dataset_to_triples(ds, negatives={"q1": ["d9"]})


def test_dataset_to_grouped():
    grouped = dataset_to_grouped(toy_dataset(), negatives={"q2": ["d3"]})
    assert grouped == [
        {"query": "what is a bygglov?", "pos": ["A building permit."], "neg": []},
        {"query": "什么是重排序模型？", "pos": ["重排序模型对候选段落重新打分。"], "neg": ["Unrelated text."]},
        {"query": "graded query", "pos": ["Another doc.", "A building permit."], "neg": []},
    ]
    validate_grouped(grouped)


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


def many_queries(n=200, groups=None) -> RetrievalDataset:
    """``n`` queries, each with its own positive; ``groups`` adds query_meta["topic"] = i % groups."""
    return RetrievalDataset(
        corpus={f"d{i}": f"passage {i}" for i in range(n)},
        queries={f"q{i}": f"query {i}" for i in range(n)},
        qrels={f"q{i}": {f"d{i}": 1.0} for i in range(n)},
        query_meta={f"q{i}": {"topic": f"t{i % groups}"} for i in range(n)} if groups else {},
        name="many",
    )


def assert_pairwise_no_leakage(splits):
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert_no_leakage(splits[a], splits[b], names=(a, b))


def test_split_dataset_is_deterministic_and_honours_fractions():
    ds = many_queries(200)
    splits = split_dataset(ds, seed=7)
    assert list(splits) == ["train", "val", "test"]
    assert [len(s) for s in splits.values()] == [140, 20, 40]
    assert [s.name for s in splits.values()] == ["many-train", "many-val", "many-test"]
    again = split_dataset(ds, seed=7)
    assert {k: list(v.queries) for k, v in splits.items()} == {k: list(v.queries) for k, v in again.items()}
    other = split_dataset(ds, seed=8)
    assert list(other["test"].queries) != list(splits["test"].queries)
    all_ids = [q for s in splits.values() for q in s.queries]
    assert sorted(all_ids) == sorted(ds.queries)  # every query exactly once
    for part in splits.values():
        assert list(part.queries) == [q for q in ds.queries if q in part.queries]  # original order kept
        assert part.corpus is ds.corpus
    assert_pairwise_no_leakage(splits)


def test_split_dataset_fractions_are_normalised():
    splits = split_dataset(many_queries(100), fractions={"a": 3, "b": 1})
    assert [len(s) for s in splits.values()] == [75, 25]


def test_queries_sharing_a_positive_stay_together():
    ds = many_queries(60)
    ds.qrels["q1"] = {"d0": 1.0}  # q0 and q1 share the positive d0
    ds.qrels["q2"] = {"d2": 1.0, "d3": 1.0}  # q2 and q3 share d3 ...
    ds.corpus["d4"] = ds.corpus["d5"]  # ... and q4, q5 have positives with the same text
    ds.queries["q7"] = " query 6 "  # q6 and q7 are the same question
    for seed in range(20):
        splits = split_dataset(ds, seed=seed)
        side = {q: name for name, part in splits.items() for q in part.queries}
        assert side["q0"] == side["q1"]
        assert side["q2"] == side["q3"]
        assert side["q4"] == side["q5"]
        assert side["q6"] == side["q7"]
        assert_pairwise_no_leakage(splits)


def test_group_key_keeps_groups_together():
    ds = many_queries(200, groups=25)
    for seed in (1, 2, 3):
        splits = split_dataset(ds, seed=seed, group_key="topic")
        topics = [{ds.query_meta[q]["topic"] for q in part.queries} for part in splits.values()]
        assert sum(len(t) for t in topics) == 25  # no topic on two sides
        assert all(topics)
        sizes = [len(s) for s in splits.values()]
        assert sum(sizes) == 200 and all(n % 8 == 0 for n in sizes)  # 8 queries per topic
        assert all(abs(n - target) <= 8 for n, target in zip(sizes, [140, 20, 40], strict=True))  # within one group
        assert_pairwise_no_leakage(splits)
    del ds.query_meta["q5"]["topic"]
    with pytest.raises(KeyError, match="'q5'.*'topic'"):
        split_dataset(ds, group_key="topic")


def test_every_split_is_non_empty_and_too_few_groups_is_an_error():
    splits = split_dataset(many_queries(5), fractions={"a": 0.98, "b": 0.01, "c": 0.01})
    assert [len(s) for s in splits.values()] == [3, 1, 1]
    ds = many_queries(6, groups=2)
    with pytest.raises(ValueError, match=r"cannot make 3 non-empty splits from 2 group\(s\)"):
        split_dataset(ds, group_key="topic")


@pytest.mark.parametrize(
    "fractions", [{}, {"train": 0.8, "test": 0}, {"train": -1, "test": 1}, {"train": "0.5"}, {"a": float("nan")}]
)
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fraction"):
        split_dataset(many_queries(10), fractions=fractions)
    with pytest.raises(ValueError, match="fraction"):
        split_triples(TRIPLES, fractions=fractions)


def triples_for(n=200):
    records = []
    for i in range(n):
        records.append({"query": f"query {i}", "passage": f"passage {i}", "score": 1.0, "topic": f"t{i % 10}"})
        records.append({"query": f"query {i}", "passage": f"negative {i}", "score": 0.0, "topic": f"t{i % 10}"})
    return records


def test_split_triples_keeps_queries_whole_and_is_deterministic():
    records = triples_for(200)
    splits = split_triples(records, seed=3)
    queries = [{r["query"] for r in part} for part in splits.values()]
    assert [len(q) for q in queries] == [140, 20, 40]
    assert [len(part) for part in splits.values()] == [280, 40, 80]  # both records of a query together
    assert not (queries[0] & queries[1] or queries[0] & queries[2] or queries[1] & queries[2])
    assert split_triples(records, seed=3) == splits
    assert split_triples(records, seed=4)["test"] != splits["test"]
    assert_pairwise_no_leakage(splits)


def test_split_triples_links_shared_positives_and_groups():
    records = triples_for(30)
    records.append({"query": "query 0 ", "passage": "extra", "score": 0.0, "topic": "t0"})  # same query text
    records.append({"query": "query 1", "passage": "passage 2", "score": 1.0, "topic": "t1"})  # shares q2's positive
    records.append(
        {"query": "query 3", "passage": "negative 4", "score": 0.0, "topic": "t3"}
    )  # a shared negative links nothing
    for seed in range(10):
        splits = split_triples(records, seed=seed)
        side = {r["query"].strip(): name for name, part in splits.items() for r in part}
        assert side["query 1"] == side["query 2"]
        assert_pairwise_no_leakage(splits)
        grouped = split_triples(records, seed=seed, group_key="topic")
        topics = [{r["topic"] for r in part} for part in grouped.values()]
        assert sum(len(t) for t in topics) == 10
        assert_pairwise_no_leakage(grouped)
    with pytest.raises(KeyError, match="record 0 .*'query 0'.*'lang'"):
        split_triples(records, group_key="lang")


# --------------------------------------------------------------------------------------------------
# Leakage
# --------------------------------------------------------------------------------------------------


def test_check_leakage_finds_a_planted_shared_query_and_positive():
    train = [
        {"query": "how do I apply?", "passage": "Fill in form A.", "score": 1},
        {"query": "how do I apply?", "passage": "Shared negative.", "score": 0},
        {"query": "what does it cost?", "passage": "It costs 100.", "score": 1},
    ]
    test = [
        {"query": "  how do I apply?", "passage": "Another answer.", "score": 1},  # planted query
        {"query": "price?", "passage": "It costs 100.  ", "score": 1},  # planted positive
        {"query": "price?", "passage": "Shared negative.", "score": 0},  # negatives don't count
    ]
    report = check_leakage(train, test)
    assert report.shared_queries == ["how do I apply?"]
    assert report.shared_positives == ["It costs 100."]
    assert not report.ok
    assert (
        str(report)
        == "leakage: 1 queries on both sides ('how do I apply?'); 1 positive passages on both sides ('It costs 100.')"
    )
    with pytest.raises(LeakageError) as info:
        assert_no_leakage(train, test, names=("train", "test"))
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("train and test leak: 1 queries on both sides ('how do I apply?')")
    assert info.value.report == report


def test_check_leakage_across_record_types():
    ds = toy_dataset()
    grouped = [{"query": "什么是重排序模型？", "pos": ["x"], "neg": ["A building permit."]}]
    report = check_leakage(ds, grouped)
    assert report.shared_queries == ["什么是重排序模型？"] and report.shared_positives == []
    triples = [{"query": "new", "passage": "Another doc.", "score": 0.5}]
    assert check_leakage(triples, ds).shared_positives == ["Another doc."]
    clean = check_leakage(ds.subset(["q1"]), ds.subset(["q2"]))
    assert clean == LeakageReport([], []) and clean.ok
    assert str(clean).startswith("no leakage")
    assert_no_leakage(ds.subset(["q1"]), ds.subset(["q2"]))  # no error
    with pytest.raises(TypeError):
        check_leakage(ds, "not records")
    with pytest.raises(TypeError, match="record 0"):
        check_leakage(ds, [{"text": "x"}])


def test_datasets_with_the_same_query_under_other_ids_leak():
    a = RetrievalDataset(corpus={"d1": "p"}, queries={"a1": "Same?"}, qrels={"a1": {"d1": 1}})
    b = RetrievalDataset(corpus={"x": "other"}, queries={"b7": "Same? "}, qrels={"b7": {"x": 1}})
    assert check_leakage(a, b).shared_queries == ["Same?"]


def test_split_of_validated_file_round_trips_leak_free(tmp_path):
    """The notebook flow: read -> split -> write each split -> read back -> no leakage."""
    source = write_triples(triples_for(50), tmp_path / "all.jsonl")
    records, report = read_triples(source, allowed_extra_fields=("topic",))
    assert report.n_kept == 100
    splits = split_triples(records, group_key="topic")
    back = {}
    for name, part in splits.items():
        back[name], _ = read_triples(
            write_triples(part, tmp_path / "splits" / f"{name}.csv"), allowed_extra_fields=("topic",)
        )
        assert back[name] == part
    assert_pairwise_no_leakage(back)
    assert math.isclose(sum(len(p) for p in back.values()), 100)
