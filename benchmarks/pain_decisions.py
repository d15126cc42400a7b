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
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import AIRLINE_MAPPING  # noqa: E402
from earshot.model import EarshotModel  # noqa: E402
from earshot.training import read_examples  # noqa: E402
from earshot.training.data import head_gold  # noqa: E402
from earshot.training.metrics import multi_label_metrics  # noqa: E402


def report(folder: Path, data: Path) -> None:
    model = EarshotModel.from_pretrained(folder, device="cpu", backend="torch")
    head = model.config.head("pain_points")
    examples = read_examples(data, AIRLINE_MAPPING, known_labels={h.name: h.labels for h in model.config.heads}).examples
    gold = head_gold(head, examples)
    has = gold.sum(axis=1) > 0
    given = model.predict_proba([e.text for e in examples])
    scores = given["pain_points"]
    negative = given["sentiment"][:, model.config.head("sentiment").labels.index("negative")]
    thresholds = np.array([head.thresholds[label] for label in head.labels])
    shipped = multi_label_metrics(gold, scores, thresholds, head.labels)
    chosen = scores >= thresholds
    right, wrong = int((chosen & (gold > 0)).sum()), int((chosen & (gold == 0)).sum())
    print(f"{folder}: micro-F1 {shipped['micro_f1']:.4f} ({right} right and {wrong} wrong labels kept, "
          f"{int(has.sum())} texts with a gold pain point); top label right on {shipped['top1_accuracy']:.4f} of "
          f"them; ROC AUC of the highest probability for 'has a pain point' {roc_auc_score(has, scores.max(axis=1)):.4f}")
    top = np.zeros_like(scores)
    top[np.arange(len(scores)), scores.argmax(axis=1)] = 1.0
    half = np.full(len(head.labels), 0.5)
    for name, gate in (("its probability", scores.max(axis=1)), ("P(negative)", negative)):
        best, cut = max((multi_label_metrics(gold, top * (gate >= c)[:, None], half, head.labels)["micro_f1"], c)
                        for c in np.linspace(0.05, 0.95, 91))
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
