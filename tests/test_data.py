"""Data enters through read_examples: every problem names the file, row, column and fix."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest

from earshot.training.data import (ColumnMapping, DataError, Example, HeadColumn, parse_label_cell, read_examples,
                                   split_validation)

SENTIMENT = HeadColumn("sentiment", "single", "sentiment", flag="--sentiment-column")
PAIN = HeadColumn("pain_points", "multi", "pain_points", flag="--pain-points-column")
MAPPING = ColumnMapping(text="text", heads=(SENTIMENT, PAIN))


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_reads_the_fixture(feedback_csv: Path) -> None:
    data = read_examples(feedback_csv, MAPPING)
    assert len(data.examples) == 204
    assert data.labels("sentiment") == ["negative", "neutral", "positive"]
    assert data.labels("pain_points") == ["billing", "late", "lost_item", "rude_staff"]
    assert [(h.name, h.kind) for h in data.heads(MAPPING)] == [("sentiment", "single"), ("pain_points", "multi")]
    assert data.examples[0].row == 1
    assert any(len(e.labels["pain_points"]) == 2 for e in data.examples)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet", "dataset"])
def test_every_format_reads_the_same(feedback_csv: Path, tmp_path: Path, suffix: str) -> None:
    frame = pd.read_csv(feedback_csv, keep_default_na=False, dtype=str)
    target = tmp_path / f"data{suffix}"
    if suffix == ".tsv":
        frame.to_csv(target, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(target, orient="records", lines=True)
    elif suffix == ".json":
        frame.to_json(target, orient="records")
    elif suffix == ".parquet":
        frame.to_parquet(target)
    elif suffix == "dataset":
        datasets.Dataset.from_pandas(frame).save_to_disk(str(target))
    else:
        frame.to_csv(target, index=False)
    assert read_examples(target, MAPPING).examples == read_examples(feedback_csv, MAPPING).examples


def test_missing_column_names_expected_found_and_flag(feedback_csv: Path) -> None:
    mapping = ColumnMapping(text="body", heads=(SENTIMENT,))
    with pytest.raises(DataError, match=r"feedback.csv: missing column 'body' \(set with --text-column\)\. "
                                        r"Found columns: \['text', 'sentiment', 'pain_points'\]"):
        read_examples(feedback_csv, mapping)


def test_empty_text_names_row_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [{"text": "fine", "sentiment": "positive", "pain_points": ""},
                                          {"text": "   ", "sentiment": "negative", "pain_points": "late"}])
    with pytest.raises(DataError, match=r"d.csv: row 2, column 'text': empty text.*--skip-bad-rows"):
        read_examples(path, MAPPING)


def test_unknown_label_in_validation_data(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", [{"text": "a", "sentiment": "positive", "pain_points": ""},
                                          {"text": "b", "sentiment": "negative", "pain_points": "late;wifi"}])
    with pytest.raises(DataError, match=r"v.csv: row 2, column 'pain_points': unknown pain_points label 'wifi'; "
                                        r"the model knows \['late'\]"):
        read_examples(path, MAPPING, known_labels={"sentiment": ["negative", "positive"], "pain_points": ["late"]})
    with pytest.raises(DataError, match=r"row 1, column 'sentiment': unknown sentiment label 'positive'"):
        read_examples(path, MAPPING, known_labels={"sentiment": ["negative"], "pain_points": ["late", "wifi"]})


def test_malformed_cell(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [{"text": "a", "sentiment": "negative", "pain_points": '["late", '}])
    with pytest.raises(DataError, match=r"m.csv: row 1, column 'pain_points': malformed cell .*not a JSON list"):
        read_examples(path, MAPPING)


def test_list_item_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"text": "a", "sentiment": "negative", "pain_points": ["late", 3]}) + "\n")
    with pytest.raises(DataError, match=r"row 1, column 'pain_points': malformed cell .*list item 3 is not text"):
        read_examples(path, MAPPING)


def test_wrong_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("text,sentiment\nok,positive\ncaf\xe9 was cold,negative\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: line 3 is not valid UTF-8 \(byte 0xe9.*iconv"):
        read_examples(path, ColumnMapping(heads=(SENTIMENT,)))


def test_skip_bad_rows_reports_how_many_and_which(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [
        {"text": "fine", "sentiment": "positive", "pain_points": ""},
        {"text": "", "sentiment": "negative", "pain_points": "late"},
        {"text": "bad cell", "sentiment": "negative", "pain_points": "[oops"},
        {"text": "late again", "sentiment": "negative", "pain_points": "late"},
    ])
    data = read_examples(path, MAPPING, skip_bad_rows=True)
    assert [e.row for e in data.examples] == [1, 4]
    assert [(s.row, s.column) for s in data.skipped] == [(2, "text"), (3, "pain_points")]
    assert "empty text" in str(data.skipped[0])


def test_none_labels_and_unknown_sentiment(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [
        {"text": "a", "sentiment": "negative", "pain_points": "Can't Tell"},
        {"text": "b", "sentiment": "", "pain_points": "late"},
    ])
    data = read_examples(path, ColumnMapping(heads=(SENTIMENT, PAIN), none_labels=("Can't Tell",)))
    assert data.examples[0].labels["pain_points"] == ()
    assert data.examples[1].labels == {"sentiment": None, "pain_points": ("late",)}


def test_a_third_head_from_its_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [
        {"text": "great food, slow service", "pain_points": "service", "praise_points": "food"},
        {"text": "all fine", "pain_points": "", "praise_points": ""},
    ])
    praise = HeadColumn.parse("praise_points:multi:praise_points")
    data = read_examples(path, ColumnMapping(heads=(PAIN, praise)))
    assert data.examples[0].labels == {"pain_points": ("service",), "praise_points": ("food",)}
    assert data.labels("praise_points") == ["food"]
    with pytest.raises(DataError, match=r"missing column 'praises' \(set with --head praise_points:multi:praises\)"):
        read_examples(path, ColumnMapping(heads=(HeadColumn.parse("praise_points:multi:praises"),)))


@pytest.mark.parametrize("spec, message", [
    ("praise_points:multi", "expected NAME:KIND:COLUMN"),
    ("praise_points:several:praise", "kind must be one of"),
    ("Praise Points:multi:praise", "must be lower-case letters"),
    ("error:single:e", "not one of"),
])
def test_bad_head_specs_are_named(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HeadColumn.parse(spec)


@pytest.mark.parametrize("cell, labels", [
    ("late;rude", ("late", "rude")), (' late ; ; rude ', ("late", "rude")), ('["late", "rude"]', ("late", "rude")),
    ("Late Flight", ("Late Flight",)), ("", ()), (None, ()), (["a", "a", "b"], ("a", "b")),
])
def test_label_cells(cell: object, labels: tuple) -> None:
    assert parse_label_cell(cell, 1, "c") == labels


def test_stratified_split_is_seeded_and_keeps_shares(feedback_csv: Path) -> None:
    examples = read_examples(feedback_csv, MAPPING).examples
    train, validation = split_validation(examples, 0.2, seed=1)
    again = split_validation(examples, 0.2, seed=1)
    assert (train, validation) == again
    assert len(train) + len(validation) == len(examples)
    held = {e.text: e.labels["sentiment"] for e in validation}  # the fixture repeats texts: shares are over distinct ones
    share = sum(label == "positive" for label in held.values()) / len(held)
    assert share == pytest.approx(6 / 85, abs=0.03)
    assert split_validation(examples, 0.2, seed=2)[1] != validation


def test_copies_of_a_text_stay_on_one_side_of_the_split() -> None:
    distinct = [Example(f"text {i}", {"sentiment": "positive" if i % 3 else "negative"}, i) for i in range(60)]
    copies = [Example(e.text, e.labels, 100 + e.row) for e in distinct]
    train, validation = split_validation(distinct + copies, 0.2, seed=1)
    held = {e.text for e in validation}
    assert held and not held & {e.text for e in train}
    assert len(validation) == 2 * len(held)
    # without repeated texts the split is the one drawn over rows
    assert [e.text for e in split_validation(distinct, 0.2, seed=1)[1]] == sorted(held, key=lambda t: int(t[5:]))


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"unsupported extension '.xlsx'"):
        read_examples(path, MAPPING)


def test_no_label_column_given() -> None:
    with pytest.raises(ValueError, match="--sentiment-column, --pain-points-column or --head"):
        ColumnMapping(text="text")
