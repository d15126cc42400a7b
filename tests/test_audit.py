"""`earshot audit` finds flipped labels from out-of-fold probabilities; `train --exclude` leaves them out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earshot.cli import main
from earshot.model import EarshotModel, Head
from earshot.training import ColumnMapping, HeadColumn
from earshot.training.audit import audit, excluded_rows
from earshot.training.data import DataError, Example

INTENT = HeadColumn("intent", "single", "category")
TOPICS = HeadColumn("topics", "multi", "topics")


def _clusters(rng: np.random.Generator, labels: np.ndarray, classes: int, dim: int = 16) -> np.ndarray:
    centres = rng.normal(size=(classes, dim)) * 3
    return centres[labels] + rng.normal(size=(len(labels), dim))


def test_flipped_single_labels_are_found_and_ranked_first() -> None:
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(4), 50)
    embeddings = _clusters(rng, true, 4)
    given = true.copy()
    flipped = rng.choice(len(true), 12, replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, 4, size=12)) % 4
    names = ["card", "fee", "refund", "transfer"]
    examples = [Example(text=f"t{i}", labels={"intent": names[g]}, row=i + 1) for i, g in enumerate(given)]
    suspects = audit(examples, ColumnMapping(heads=(INTENT,)), embeddings, [Head("intent", "single", names)], folds=5)
    found = {s.row - 1 for s in suspects}
    assert len(found & set(flipped)) >= 10 and len(found - set(flipped)) <= 2  # recall and precision >= 0.8
    top = suspects[0]
    assert top.row - 1 in set(flipped) and top.suggested == names[true[top.row - 1]] and top.column == "category"
    assert [s.score for s in suspects] == sorted((s.score for s in suspects), reverse=True)


def test_a_dropped_multi_label_is_found() -> None:
    rng = np.random.default_rng(1)
    true = np.repeat(np.arange(3), 60)
    embeddings = _clusters(rng, true, 3)
    names = ["food", "price", "service"]
    given = [(names[t],) for t in true]
    dropped = [5, 70, 130]
    for i in dropped:
        given[i] = ()
    examples = [Example(text=f"t{i}", labels={"topics": g}, row=i + 1) for i, g in enumerate(given)]
    suspects = audit(examples, ColumnMapping(heads=(TOPICS,)), embeddings, [Head("topics", "multi", names)])
    assert {s.row - 1 for s in suspects} >= set(dropped)
    assert {s.given for s in suspects if s.row - 1 in dropped} == {"(none)"}


def test_a_label_rarer_than_the_folds_is_named() -> None:
    examples = [Example(text="x", labels={"intent": "a" if i < 20 else "b"}, row=i + 1) for i in range(22)]
    with pytest.raises(DataError, match=r"labels \['b'\] have fewer rows than --folds 5"):
        audit(examples, ColumnMapping(heads=(INTENT,)), np.zeros((22, 4)), [Head("intent", "single", ["a", "b"])])


def test_audit_then_train_with_exclude(feedback_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(feedback_csv, keep_default_na=False)
    suspects = tmp_path / "suspects.csv"
    columns = ["--sentiment-column", "sentiment", "--pain-points-column", "pain_points"]
    assert main(["audit", "--data", str(feedback_csv), "-o", str(suspects), "--base-model", str(tiny_base),
                 "--folds", "3", *columns]) == 0
    listed = pd.read_csv(suspects)
    assert list(listed.columns) == ["row", "head", "column", "given", "suggested", "score"]
    listing = tmp_path / "exclude.csv"
    pd.DataFrame({"row": [1, 2, 3]}).to_csv(listing, index=False)
    out = tmp_path / "model"
    assert main(["train", "--data", str(feedback_csv), "--output", str(out), "--base-model", str(tiny_base),
                 "--epochs", "1", "--max-length", "32", "--no-progress", "--exclude", str(listing), *columns]) == 0
    provenance = EarshotModel.from_pretrained(out).config.provenance
    assert provenance["excluded"] == {"file": "exclude.csv", "rows": 3}
    assert provenance["train_rows"] + provenance["validation_rows"] == len(frame) - 3


def test_bad_exclude_files_are_named(feedback_csv: Path, tiny_base: Path, tmp_path: Path, caplog) -> None:
    no_row = tmp_path / "no-row.csv"
    pd.DataFrame({"line": [1]}).to_csv(no_row, index=False)
    with pytest.raises(DataError, match=r"no-row.csv: no 'row' column for --exclude"):
        excluded_rows(no_row)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"row": ["3", "x7"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad.csv: row 2, column 'row': 'x7' is not a row number"):
        excluded_rows(bad)
    beyond = tmp_path / "beyond.csv"
    pd.DataFrame({"row": [5, 9999]}).to_csv(beyond, index=False)
    code = main(["train", "--data", str(feedback_csv), "--output", str(tmp_path / "m"), "--base-model",
                 str(tiny_base), "--sentiment-column", "sentiment", "--exclude", str(beyond)])
    assert code == 2 and "rows [9999] are not in" in caplog.text
