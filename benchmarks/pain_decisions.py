"""Where a model's pain-point micro-F1 comes from: ranking the right label, or deciding that a text has one.

For each model, on a labelled airline file: the right and wrong labels its shipped thresholds keep,
how often its top-ranked label is a gold one (on texts with a gold pain point), how well its highest
pain-point probability separates texts with a pain point from the rest (ROC AUC), and the micro-F1
of a simpler rule, the top label alone when its probability (or P(negative)) passes a cut, best cut
chosen on the same file. Used to see why the fast tier's students lose pain-point micro-F1
(docs/experiments.md).

    python benchmarks/pain_decisions.py --data runs/fast/validation.csv model/default runs/fast/student-3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import EarshotModel  # noqa: E402
from earshot.training import ColumnMapping, HeadColumn, read_examples  # noqa: E402
from earshot.training.data import head_gold  # noqa: E402

MAPPING = ColumnMapping(heads=(HeadColumn("sentiment", "single", "airline_sentiment"),
                               HeadColumn("pain_points", "multi", "negativereason")), none_labels=("Can't Tell",))


def micro_f1(chosen: np.ndarray, gold: np.ndarray) -> float:
    """Micro-F1 of boolean decisions against 0/1 gold, both ``(texts, labels)``.

    Example:
        >>> micro_f1(np.array([[True, False]]), np.array([[1, 1]]))
        0.6666666666666666
    """
    right = int((chosen & (gold > 0)).sum())
    return 2 * right / (int(chosen.sum()) + int((gold > 0).sum()))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half).

    Example:
        >>> roc_auc(np.array([True, False, True]), np.array([0.9, 0.5, 0.4]))
        0.5
    """
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # average ranks of ties
        tied = score == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def report(folder: Path, data: Path) -> None:
    model = EarshotModel.from_pretrained(folder, device="cpu", backend="torch")
    head = model.config.head("pain_points")
    examples = read_examples(data, MAPPING, known_labels={h.name: h.labels for h in model.config.heads}).examples
    gold = head_gold(head, examples)
    has = gold.sum(axis=1) > 0
    given = model.predict_proba([e.text for e in examples])
    scores = given["pain_points"]
    negative = given["sentiment"][:, model.config.head("sentiment").labels.index("negative")]
    thresholds = np.array([head.thresholds[label] for label in head.labels])
    chosen = scores >= thresholds
    right, wrong = int((chosen & (gold > 0)).sum()), int((chosen & (gold == 0)).sum())
    top = np.zeros_like(chosen)
    top[np.arange(len(scores)), scores.argmax(axis=1)] = True
    top_right = float((gold[has][top[has]] > 0).mean())
    print(f"{folder}: micro-F1 {micro_f1(chosen, gold):.4f} ({right} right and {wrong} wrong labels kept, "
          f"{int(has.sum())} texts with a gold pain point); top label right on {top_right:.4f} of them; "
          f"ROC AUC of the highest probability for 'has a pain point' {roc_auc(has, scores.max(axis=1)):.4f}")
    for name, gate in (("its probability", scores.max(axis=1)), ("P(negative)", negative)):
        best, cut = max((micro_f1(top & (gate >= c)[:, None], gold), c) for c in np.linspace(0.05, 0.95, 91))
        print(f"  top label alone, gated by {name}: micro-F1 {best:.4f} at cut {cut:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, required=True, help="labelled airline file")
    args = parser.parse_args()
    for folder in args.models:
        report(folder, args.data)


if __name__ == "__main__":
    main()
