"""Rows that say nothing about a multi head (a source that never annotated it) train the other heads only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from earshot.model import Head
from earshot.training.data import ColumnMapping, HeadColumn, head_gold, label_sets, read_examples

SENTIMENT = HeadColumn("sentiment", "single", "sentiment", flag="--sentiment-column")
PAIN = HeadColumn("pain_points", "multi", "pain_points", flag="--pain-points-column")
HEAD = Head("pain_points", "multi", ["late", "rude"])
CONFIG = SimpleNamespace(multi_label_loss_weight=1.0, ranking_loss_weight=1.0)


def _read(tmp_path: Path, cells: list[str], unknown: tuple[str, ...], known: dict | None = None) -> list:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(len(cells))], "sentiment": "negative",
                  "pain_points": cells}).to_csv(path, index=False)
    mapping = ColumnMapping(heads=(SENTIMENT, PAIN), none_labels=("none",), unknown_labels=unknown)
    return read_examples(path, mapping, known_labels=known).examples


def test_an_unknown_cell_leaves_the_head_unknown_and_an_empty_one_means_none(tmp_path: Path) -> None:
    examples = _read(tmp_path, ["late", "", "unannotated", "none", "late;rude"], ("unannotated",))
    assert [e.labels["pain_points"] for e in examples] == [("late",), (), None, (), ("late", "rude")]
    assert all(e.labels["sentiment"] == "negative" for e in examples)  # the row still trains sentiment
    gold = head_gold(HEAD, examples)
    assert np.isnan(gold[2]).all() and not np.isnan(np.delete(gold, 2, axis=0)).any()
    assert HEAD.behaviour.labelled(gold).tolist() == [True, True, False, True, True]
    assert label_sets(HEAD, examples) == [frozenset({0}), frozenset(), None, frozenset(), frozenset({0, 1})]
    assert HEAD.behaviour.label_counts(gold, 2).tolist() == [2, 1]


def test_without_the_flag_the_marker_is_a_label_the_taxonomy_lacks_naming_both_flags(tmp_path: Path) -> None:
    from earshot.training.data import DataError

    known = {"sentiment": ["negative"], "pain_points": ["late", "rude"]}
    assert [e.labels["pain_points"] for e in _read(tmp_path, ["late", "unannotated"], ("unannotated",), known)] == [
        ("late",), None]
    with pytest.raises(DataError, match=r"row 2.*'unannotated'.*--unknown-label"):
        _read(tmp_path, ["late", "unannotated"], (), known)


def test_the_loss_and_its_class_weights_ignore_unknown_rows() -> None:
    gold = HEAD.behaviour.gold(HEAD, [("late",), None, (), ("rude",), None])
    targets = HEAD.behaviour.targets(gold)
    logits = torch.tensor([[2.0, -1.0], [9.0, 9.0], [-1.0, 0.5], [0.3, 1.0], [-9.0, 9.0]], requires_grad=True)
    known = torch.tensor([True, False, True, True, False])
    function = HEAD.behaviour.loss_function(HEAD, targets, power=1.0, max_pos_weight=10.0)
    expected_function = HEAD.behaviour.loss_function(HEAD, targets[known], power=1.0, max_pos_weight=10.0)
    assert torch.equal(function.pos_weight, expected_function.pos_weight)
    value = HEAD.behaviour.loss(logits, targets, function, CONFIG)
    expected = HEAD.behaviour.loss(logits[known], targets[known], expected_function, CONFIG)
    assert torch.isfinite(value) and torch.allclose(value, expected)
    value.backward()
    assert logits.grad[~known].abs().sum() == 0  # unknown rows get no gradient
    unknown_only = HEAD.behaviour.loss(logits[~known], targets[~known], function, CONFIG)
    assert unknown_only.item() == 0.0


def test_thresholds_and_metrics_leave_unknown_rows_out() -> None:
    gold = HEAD.behaviour.gold(HEAD, [("late",), None, (), ("rude",), None, ("late",)])
    scores = np.array([[0.9, 0.1], [0.99, 0.99], [0.2, 0.3], [0.1, 0.8], [0.99, 0.99], [0.7, 0.2]], dtype=np.float32)
    known = HEAD.behaviour.labelled(gold)
    metrics = HEAD.behaviour.metrics(HEAD, gold, scores, {"late": 0.5, "rude": 0.5})
    assert metrics["examples"] == 4 and metrics["micro_f1"] == 1.0  # the unknown rows would be false positives
    tuned = HEAD.behaviour.tuned_thresholds(HEAD, gold, scores, shrinkage=0.0)
    assert tuned == HEAD.behaviour.tuned_thresholds(HEAD, gold[known], scores[known], shrinkage=0.0)
