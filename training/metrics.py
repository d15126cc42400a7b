"""Classification metrics for both heads, computed with numpy alone.

Example:
    >>> single_label_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])["accuracy"]
    0.6666666666666666
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.01), 2)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by size."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def single_label_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/micro F1, per-label P/R/F1/support, confusion matrix and ECE.

    ``gold`` holds class indices; rows with gold ``-1`` (unknown) are left out.
    """
    known = gold >= 0
    gold, probabilities = gold[known], probabilities[known]
    predicted = probabilities.argmax(axis=1) if len(gold) else np.zeros(0, dtype=int)
    k = len(labels)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (gold, predicted), 1)
    tp = np.diag(confusion).astype(float)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    support = confusion.sum(axis=1)
    confidence = probabilities.max(axis=1) if len(gold) else np.zeros(0)
    return {
        "examples": int(len(gold)),
        "accuracy": float((predicted == gold).mean()) if len(gold) else 0.0,
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        "micro_f1": float(tp.sum() / len(gold)) if len(gold) else 0.0,
        "calibration_error": expected_calibration_error(confidence, (predicted == gold).astype(float)),
        "per_label": {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion_matrix": {"labels": list(labels), "matrix": confusion.tolist()},
    }


def multi_label_metrics(gold: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
                        labels: Sequence[str]) -> dict[str, Any]:
    """Micro/macro F1, subset accuracy, top-1 accuracy, per-label P/R/F1/support and ECE.

    ``gold`` is a 0/1 matrix (rows x labels). ``top1_accuracy`` is measured on rows with at least
    one gold label: is the highest-scoring label one of them?
    """
    gold = gold.astype(bool)
    predicted = probabilities >= thresholds[None, :]
    tp = (predicted & gold).sum(axis=0).astype(float)
    fp = (predicted & ~gold).sum(axis=0).astype(float)
    fn = (~predicted & gold).sum(axis=0).astype(float)
    precision, recall, f1 = _prf(tp, fp, fn)
    _, _, micro = _prf(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))
    support = gold.sum(axis=0)
    labelled = gold.any(axis=1)
    if labelled.any():
        best = probabilities[labelled].argmax(axis=1)
        top1 = float(gold[labelled][np.arange(labelled.sum()), best].mean())
    else:
        top1 = 0.0
    return {
        "examples": int(len(gold)),
        "accuracy": float((predicted == gold).all(axis=1).mean()) if len(gold) else 0.0,
        "top1_accuracy": top1,
        "top1_examples": int(labelled.sum()),
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        "micro_f1": float(micro[0]),
        "calibration_error": expected_calibration_error(probabilities.ravel(), gold.ravel().astype(float)),
        "per_label": {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(support[i]), "threshold": float(thresholds[i])}
                      for i, label in enumerate(labels)},
    }


def tune_thresholds(gold: np.ndarray, probabilities: np.ndarray, default: float = 0.5,
                    shrinkage: float = 0.0) -> np.ndarray:
    """Per label, the threshold on a 0.01 grid that maximises that label's F1, optionally pulled
    toward the one shared threshold that maximises micro-F1 over all labels.

    With ``shrinkage`` k > 0, a label with n positive examples gets ``(n * own + k * shared) / (n + k)``:
    a label seen a few times in the validation data keeps little of its own optimum, which on
    so few examples is mostly noise. Ties go to the threshold nearest ``default``; a label with no
    positive example keeps ``default`` (or the shared threshold, when shrinking).

    Example:
        >>> gold = np.array([[1, 0], [0, 1], [0, 0]])
        >>> [round(float(t), 2) for t in tune_thresholds(gold, np.array([[.3, .1], [.1, .8], [.2, .2]]))]
        [0.3, 0.5]
    """
    gold = gold.astype(bool)
    thresholds = np.full(gold.shape[1], default, dtype=np.float32)
    preference = -np.abs(THRESHOLD_GRID - default)
    predicted = probabilities[:, :, None] >= THRESHOLD_GRID[None, None, :]  # rows x labels x grid
    tp = (predicted & gold[:, :, None]).sum(axis=0)
    fp = (predicted & ~gold[:, :, None]).sum(axis=0)
    fn = gold.sum(axis=0)[:, None] - tp
    positives = gold.sum(axis=0)
    for j in np.flatnonzero(positives):
        thresholds[j] = _best_on_grid(tp[j], fp[j], fn[j], preference)
    if shrinkage > 0 and positives.any():
        shared = _best_on_grid(tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0), preference)  # micro-F1
        thresholds = ((positives * thresholds + shrinkage * shared) / (positives + shrinkage)).astype(np.float32)
    return thresholds


def _best_on_grid(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, preference: np.ndarray) -> float:
    """The grid threshold with the highest F1 from these counts (one per grid point), then the preferred."""
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return float(THRESHOLD_GRID[np.lexsort((preference, f1))[-1]])


def top_label_confusion(gold: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
                         labels: Sequence[str]) -> dict[str, Any]:
    """Gold label (or "(none)") against the top predicted label over threshold (or "(none)").

    A row with several gold labels counts once per gold label.
    """
    names = [*labels, "(none)"]
    none = len(labels)
    over = probabilities >= thresholds[None, :]
    top = np.where(over.any(axis=1), np.where(over, probabilities, -1).argmax(axis=1), none)
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for row in range(len(gold)):
        for g in (np.flatnonzero(gold[row]) if gold[row].any() else [none]):
            matrix[g, top[row]] += 1
    return {"labels": names, "matrix": matrix.tolist()}
