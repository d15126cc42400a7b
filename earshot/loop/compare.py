"""``earshot compare``: two models on the same labelled rows, with bootstrap confidence intervals.

Each head gets its kind's headline metric (``HeadKind.headline``: macro-F1 for single heads, micro-F1
for multi heads, the metric training stops early on) with accuracy and macro-F1 beside it, each label
its F1, for both models, and the candidate-minus-current delta with a paired bootstrap interval: the
same resampled rows score both models, so the interval reflects the difference, not each model's
own spread.

Example:
    >>> report = compare_models(candidate, current, data.examples, heads=["intent"])
    >>> report["heads"]["intent"]["macro_f1"]["delta"]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from earshot.model import EarshotModel
from earshot.model.heads import head_kind
from earshot.training.data import Example

from .corrections import label_list

METRICS = ("accuracy", "macro_f1", "micro_f1")  # reported for every head; the headline is the kind's


def compare_models(candidate: EarshotModel, current: EarshotModel, examples: Sequence[Example],
                   heads: Sequence[str], *, resamples: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> dict[str, Any]:
    """Per-head and per-label deltas (candidate - current) with paired bootstrap intervals."""
    if not examples:
        raise ValueError("compare needs at least one labelled row")
    texts = [e.text for e in examples]
    scores = {"candidate": candidate.predict(texts), "current": current.predict(texts)}
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"candidate": candidate.version, "current": current.version, "rows": len(examples),
                              "resamples": resamples, "confidence": confidence, "heads": {}}
    for name in heads:
        kinds = [m.config.head(name).kind for m in (candidate, current)]
        if kinds[0] != kinds[1]:
            raise ValueError(f"head {name!r} is {kinds[0]} in the candidate and {kinds[1]} in the current model; "
                             "they cannot be compared")
        kind = kinds[0]
        rows = [i for i, e in enumerate(examples) if head_kind(kind).known(e.labels.get(name))]
        if not rows:
            continue
        labels = sorted({*candidate.config.head(name).labels, *current.config.head(name).labels,
                         *(label for i in rows for label in _as_set(examples[i].labels[name]))})
        gold = _indicator([_as_set(examples[i].labels[name]) for i in rows], labels)
        weights = _bootstrap_weights(len(rows), resamples, rng)
        counts = {}
        for which, predictions in scores.items():
            given = _indicator([{p.label for p in predictions[i].heads[name].labels} for i in rows], labels)
            counts[which] = (gold * given, (1 - gold) * given, gold * (1 - given))
        report["heads"][name] = _head_report(kind, labels, gold, counts, weights, confidence)
    return report


def worst_headline_delta(report: dict[str, Any]) -> tuple[str, float]:
    """The head whose headline metric dropped most (or rose least), and by how much."""
    deltas = [(name, head[_headline(head)]["delta"]) for name, head in report["heads"].items()]
    if not deltas:
        raise ValueError("the comparison has no head with labelled rows")
    return min(deltas, key=lambda pair: pair[1])


def render(report: dict[str, Any]) -> str:
    """A short readable report: headline metrics per head, then the labels that moved most."""
    level = round(report["confidence"] * 100)
    lines = [f"candidate {report['candidate']} against current {report['current']} on {report['rows']} rows "
             f"({level}% bootstrap intervals, {report['resamples']} resamples)", ""]
    for name, head in report["heads"].items():
        headline = _headline(head)
        for metric in (headline, *(m for m in METRICS if m != headline)):
            m = head[metric]
            lines.append(f"{name} {metric}: {m['current']:.4f} -> {m['candidate']:.4f}  "
                         f"delta {m['delta']:+.4f} [{m['low']:+.4f}, {m['high']:+.4f}]")
        moved = sorted(head["labels"].items(), key=lambda kv: abs(kv[1]["delta"]), reverse=True)
        for label, m in moved[:5]:
            lines.append(f"  {label} F1 {m['current']:.3f} -> {m['candidate']:.3f} "
                         f"({m['delta']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}], {m['support']} rows)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _headline(head: dict[str, Any]) -> str:
    """A reported head's headline metric (a report written before it was recorded: its kind's)."""
    return head.get("headline") or head_kind(head["kind"]).headline


def _as_set(value: Any) -> set[str]:
    return set(label_list(value))


def _indicator(sets: Sequence[set[str]], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(sets), len(labels)))
    for row, found in enumerate(sets):
        for label in found:
            matrix[row, index[label]] = 1.0
    return matrix


def _bootstrap_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n)``: how often each row is drawn in each resample (row 0 of the result: the data itself)."""
    draws = rng.integers(0, n, size=(resamples, n))
    weights = np.zeros((resamples + 1, n))
    weights[0] = 1.0
    for b in range(resamples):
        weights[b + 1] = np.bincount(draws[b], minlength=n)
    return weights


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _metrics(tp_rows: np.ndarray, fp_rows: np.ndarray, fn_rows: np.ndarray, weights: np.ndarray,
             supported: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for every resample (index 0: the data as it is). Accuracy is the share of rows
    answered exactly (every gold label given, nothing else): for a single head, the usual accuracy."""
    tp, fp, fn = weights @ tp_rows, weights @ fp_rows, weights @ fn_rows  # (resamples + 1, labels)
    per_label = _f1(tp, fp, fn)
    exact = ((fp_rows + fn_rows).sum(axis=1) == 0).astype(float)
    return {"macro_f1": per_label[:, supported].mean(axis=1), "per_label": per_label,
            "accuracy": (weights @ exact) / weights.sum(axis=1),
            "micro_f1": _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))}


def _interval(candidate: np.ndarray, current: np.ndarray, confidence: float) -> dict[str, float]:
    delta = candidate - current
    tail = (1 - confidence) / 2 * 100
    return {"current": float(current[0]), "candidate": float(candidate[0]), "delta": float(delta[0]),
            "low": float(np.percentile(delta[1:], tail)), "high": float(np.percentile(delta[1:], 100 - tail))}


def _head_report(kind: str, labels: list[str], gold: np.ndarray, counts: dict[str, tuple], weights: np.ndarray,
                 confidence: float) -> dict[str, Any]:
    supported = gold.sum(axis=0) > 0
    values = {which: _metrics(*rows, weights, supported) for which, rows in counts.items()}
    # A kind whose headline is not one of the label-set metrics computed here is promoted on macro-F1.
    headline = head_kind(kind).headline if head_kind(kind).headline in METRICS else "macro_f1"
    report: dict[str, Any] = {"kind": kind, "headline": headline, "rows": int(gold.shape[0])}
    for metric in METRICS:
        report[metric] = _interval(values["candidate"][metric], values["current"][metric], confidence)
    report["labels"] = {
        label: {**_interval(values["candidate"]["per_label"][:, j], values["current"]["per_label"][:, j], confidence),
                "support": int(gold[:, j].sum())}
        for j, label in enumerate(labels) if supported[j] or counts["candidate"][1][:, j].any()
        or counts["current"][1][:, j].any()}
    return report


