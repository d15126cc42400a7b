"""Taxonomy files: read and checked with file, line and label named; a model from descriptions alone; --per-label."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from earshot.cli import main
from earshot.model import EarshotModel
from earshot.training.data import DataError
from earshot.training.taxonomy import read_taxonomy

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
heads:
  sentiment:
    kind: single
    labels:
      - name: negative
        description: the customer is unhappy, angry or let down
        examples:
          - my flight was delayed again and nobody told me
      - name: neutral
        description: a plain question or statement, no feeling either way
      - name: positive
        description: the customer is happy and thankful
    examples:
      - {text: "thank you so much, great crew", label: positive}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_taxonomy_reads_into_heads_and_examples(tmp_path: Path) -> None:
    taxonomy = read_taxonomy(_write(tmp_path, GOOD))
    head = taxonomy.heads[0]
    assert head.head().labels == ["negative", "neutral", "positive"]
    assert [label.line for label in head.labels] == [5, 9, 11]
    texts = {(e.text, e.labels["sentiment"]) for e in taxonomy.examples()}
    assert ("thank you so much, great crew", "positive") in texts  # head-level examples join their label
    assert ("the customer is happy and thankful", "positive") in texts  # descriptions are examples too
    assert len(texts) == 5


@pytest.mark.parametrize("line, expected", [
    ("    catch_all: neutral\n", ("neutral",)),
    ("    catch_all: [neutral, positive]\n", ("neutral", "positive")),
    ("    catch_all: none\n", ()),
    ("    catch_all: false\n", ()),
    ("    catch_all: ' neutral '\n", ("neutral",)),
])
def test_a_head_names_its_catch_all_label_or_none(tmp_path: Path, line: str, expected: tuple) -> None:
    from earshot.training.few_shot import catch_all_labels

    head = read_taxonomy(_write(tmp_path, GOOD.replace("    kind: single\n", "    kind: single\n" + line))).heads[0]
    assert head.catch_all == expected and catch_all_labels(head.head()) == list(expected)


def test_a_label_named_other_is_the_catch_all_unless_the_taxonomy_says_none(tmp_path: Path) -> None:
    from earshot.training.few_shot import catch_all_labels

    named = GOOD.replace("name: neutral", "name: Other")
    assert catch_all_labels(read_taxonomy(_write(tmp_path, named)).heads[0].head()) == ["Other"]
    opted_out = named.replace("    kind: single\n", "    kind: single\n    catch_all: none\n")
    assert catch_all_labels(read_taxonomy(_write(tmp_path, opted_out)).heads[0].head()) == []
    # a label called "none" is that label, not "no catch-all"
    called_none = GOOD.replace("name: neutral", "name: none").replace("    kind: single\n",
                                                                     "    kind: single\n    catch_all: none\n")
    assert read_taxonomy(_write(tmp_path, called_none)).heads[0].catch_all == ("none",)


def test_the_banking77_example_taxonomy_has_every_intent_described() -> None:
    taxonomy = read_taxonomy(ROOT / "examples" / "banking77-taxonomy.yaml")
    labels = taxonomy.heads[0].labels
    assert len(labels) == 77 and all(label.description and not label.examples for label in labels)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("name: neutral", "name: negative"),
     r"taxonomy.yaml, line 9: label 'negative' of head 'sentiment' appears twice \(first at line 5\)"),
    (lambda t: t.replace("name: neutral", "name: ''"), r"taxonomy.yaml, line 9: a label of head 'sentiment' has an empty name"),
    (lambda t: t.replace("label: positive}", "label: delighted}"),
     r"taxonomy.yaml, line 14: example label 'delighted' is not a label of head 'sentiment'"),
    (lambda t: t.replace("        description: a plain question or statement, no feeling either way\n", ""),
     r"taxonomy.yaml, line 9: label 'neutral' has no one-line 'description'"),
    (lambda t: t.replace("kind: single", "kind: several"), r"taxonomy.yaml, line 3: .*kind"),
    (lambda t: "labels: [a, b]\n", r"taxonomy.yaml: expected a mapping 'heads:'"),
    (lambda t: t.replace("    labels:\n", "    labels: [\n"), r"taxonomy.yaml, line \d+: not valid YAML"),
    (lambda t: t.replace("    kind: single\n", "    kind: single\n    catch_all: other\n"),
     r"taxonomy.yaml, line 3: head 'sentiment': catch_all names \['other'\], not labels of the head"),
    (lambda t: t.replace("    kind: single\n", "    kind: multi\n    catch_all: neutral\n"),
     r"taxonomy.yaml, line 3: head 'sentiment' is multi: .* takes no catch_all"),
    (lambda t: t.replace("    kind: single\n", "    kind: single\n    catch_all: [negative, neutral, positive]\n"),
     r"taxonomy.yaml, line 3: head 'sentiment': catch_all names every label"),
    (lambda t: t.replace("    kind: single\n", "    kind: single\n    catch_all:\n"),
     r"taxonomy.yaml, line 3: head 'sentiment': 'catch_all' must be a label, a list of labels or none"),
])
def test_bad_taxonomies_name_file_line_and_label(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_taxonomy(_write(tmp_path, edit(GOOD)))


def test_a_model_from_descriptions_alone_predicts_and_data_labels_must_be_in_the_taxonomy(
        tiny_base: Path, feedback_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    taxonomy = _write(tmp_path, GOOD)
    out = tmp_path / "m"
    assert main(["train", "--taxonomy", str(taxonomy), "--output", str(out), "--base-model", str(tiny_base),
                 "--max-length", "32", "--no-progress"]) == 0
    model = EarshotModel.from_pretrained(out, device="cpu")
    assert model.config.head("sentiment").labels == ["negative", "neutral", "positive"]
    assert model.config.provenance["taxonomy"] == "taxonomy.yaml"
    assert model.config.provenance["best_epoch"] == 0  # the few-shot start only: nothing to validate on
    assert model.predict(["thank you so much, great crew"])[0]["sentiment"].label == "positive"

    frame = pd.read_csv(feedback_csv)
    frame.loc[3, "sentiment"] = "furious"
    odd = tmp_path / "odd.csv"
    frame.to_csv(odd, index=False)
    with caplog.at_level(logging.ERROR):
        code = main(["train", "--taxonomy", str(taxonomy), "--data", str(odd), "--sentiment-column", "sentiment",
                     "--output", str(tmp_path / "m2"), "--base-model", str(tiny_base)])
    assert code == 2 and "row 4, column 'sentiment': unknown sentiment label 'furious'" in caplog.text


def test_per_label_samples_and_names_the_labels_short_of_it(tiny_base: Path, feedback_csv: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.read_csv(feedback_csv)
    frame = pd.concat([frame[frame.sentiment != "neutral"], frame[frame.sentiment == "neutral"].head(1)])
    data = tmp_path / "one-neutral.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "m"
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--data", str(data), "--sentiment-column", "sentiment", "--per-label", "8",
                     "--validation", str(feedback_csv), "--output", str(out), "--base-model", str(tiny_base),
                     "--max-length", "32", "--contrastive-steps", "5", "--few-shot-epochs", "1", "--no-progress"]) == 0
    assert "sentiment labels have fewer rows, all of them kept: neutral (1)" in caplog.text
    assert "fewer than 2 rows" in caplog.text and "neutral" in caplog.text
    assert EarshotModel.from_pretrained(out).config.provenance["train_rows"] == 17  # 8 + 8 + the 1 neutral
