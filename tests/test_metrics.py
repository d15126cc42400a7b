"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from earshot.training.metrics import expected_calibration_error, multi_label_metrics, single_label_metrics, tune_thresholds


def test_single_label_metrics_by_hand() -> None:
    gold = np.array([0, 0, 1, 1, 2, -1])
    probabilities = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.1, .6, .3], [.3, .3, .4], [1, 0, 0]])
    m = single_label_metrics(gold, probabilities, ["neg", "neu", "pos"])
    assert m["examples"] == 5  # the row with unknown gold (-1) is left out
    assert m["accuracy"] == pytest.approx(4 / 5)
    # neg: P 1, R .5, F1 2/3 ; neu: P 2/3, R 1, F1 .8 ; pos: P 1, R 1, F1 1
    assert m["per_label"]["neg"]["f1"] == pytest.approx(2 / 3)
    assert m["per_label"]["neu"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1) / 3)
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]


def test_multi_label_metrics_by_hand() -> None:
    gold = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    probabilities = np.array([[.9, .1], [.6, .3], [.2, .7], [.1, .8]])
    m = multi_label_metrics(gold, probabilities, np.array([0.5, 0.5]), ["a", "b"])
    # predicted: [1,0],[1,0],[0,1],[0,1] -> tp a=2, b=1; fp b=1; fn b=1
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert m["per_label"]["b"]["precision"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(2 / 4)
    # top-1 on rows with a gold label: rows 0, 1, 3 -> a in {a}, a in {a,b}, b in {b}
    assert m["top1_accuracy"] == 1.0 and m["top1_examples"] == 3


def test_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    confidence = np.array([0.75] * 4)
    assert expected_calibration_error(confidence, np.array([1, 1, 1, 0.0])) == pytest.approx(0.0)
    assert expected_calibration_error(confidence, np.array([0, 0, 0, 0.0])) == pytest.approx(0.75)


def test_thresholds_are_tuned_per_label() -> None:
    gold = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    probabilities = np.array([[.30, .9], [.25, .95], [.1, .97], [.2, .2]])
    thresholds = tune_thresholds(gold, probabilities)
    assert 0.20 < thresholds[0] <= 0.25  # separates .25/.30 from .20/.10
    assert 0.95 < thresholds[1] <= 0.97
    assert tune_thresholds(np.zeros((3, 1)), np.full((3, 1), 0.9))[0] == 0.5  # no positives: default


def test_shrinkage_pulls_rare_labels_toward_the_shared_threshold_more_than_common_ones() -> None:
    rng = np.random.default_rng(0)
    # Label 0: 200 positives, separable at 0.6. Label 1: 2 positives whose own optimum is 0.9.
    gold = np.zeros((400, 2))
    gold[:200, 0] = 1
    gold[:2, 1] = 1
    probabilities = np.column_stack([np.where(gold[:, 0] == 1, rng.uniform(0.61, 1, 400), rng.uniform(0, 0.59, 400)),
                                     np.where(gold[:, 1] == 1, 0.95, rng.uniform(0, 0.85, 400))])
    own = tune_thresholds(gold, probabilities)
    shrunk = tune_thresholds(gold, probabilities, shrinkage=100)
    assert own[1] >= 0.85
    assert abs(shrunk[0] - own[0]) < 0.05  # 200 positives: mostly its own optimum
    assert shrunk[1] < own[1] - 0.2  # 2 positives: mostly the shared threshold
    np.testing.assert_array_equal(tune_thresholds(gold, probabilities, shrinkage=0), own)
