"""Pain-point micro-F1 on data the thresholds were not tuned on, for each backend and shrinkage.

A model's validation metrics use thresholds tuned on that same validation data, which flatters
them. This benchmark splits the labelled file in random halves: thresholds are tuned on one half
(`training.metrics.tune_thresholds`) and scored on the other, both ways, over several splits. It
prints the mean micro-F1 for each backend and each threshold shrinkage, and for each ONNX backend
also with the thresholds tuned on torch's scores (what a model folder ships).

    python benchmarks/thresholds.py --data /tmp/airline/validation.csv --backend torch --backend onnx-int8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import DEFAULT_MODEL_DIR, EarshotModel  # noqa: E402
from earshot.training import ColumnMapping, HeadColumn, read_examples  # noqa: E402
from earshot.training.data import head_gold  # noqa: E402
from earshot.training.metrics import multi_label_metrics, tune_thresholds  # noqa: E402


def held_out_micro_f1(gold: np.ndarray, tuned_on: np.ndarray, scored: np.ndarray, shrinkage: float,
                      splits: int, seed: int = 0) -> float:
    """Mean micro-F1 of ``scored`` with thresholds tuned on ``tuned_on`` of the other half.

    Example:
        >>> gold = np.array([[1], [0]] * 20)
        >>> held_out_micro_f1(gold, gold * 0.8 + 0.1, gold * 0.8 + 0.1, 0.0, splits=2)
        1.0
    """
    labels = [str(i) for i in range(gold.shape[1])]
    scores = []
    for split in range(splits):
        order = np.random.default_rng(seed + split).permutation(len(gold))
        halves = order[: len(order) // 2], order[len(order) // 2:]
        for tune, test in (halves, halves[::-1]):
            thresholds = tune_thresholds(gold[tune], tuned_on[tune], shrinkage=shrinkage)
            scores.append(multi_label_metrics(gold[test], scored[test], thresholds, labels)["micro_f1"])
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, required=True, help="labelled file the model did not train on")
    parser.add_argument("--pain-points-column", default="negativereason")
    parser.add_argument("--none-label", action="append", default=None, help="default: Can't Tell")
    parser.add_argument("--backend", action="append", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--shrinkage", type=float, action="append", help="default: 0, 30, 100")
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args()
    backends = args.backend or ["torch", "onnx-int8"]
    if "torch" not in backends:
        backends.insert(0, "torch")
    mapping = ColumnMapping(heads=(HeadColumn("pain_points", "multi", args.pain_points_column),),
                            none_labels=tuple(args.none_label or ["Can't Tell"]))
    reference = EarshotModel.from_pretrained(args.model, device="cpu")
    head = reference.config.head("pain_points")
    examples = read_examples(args.data, mapping, known_labels={head.name: head.labels}).examples
    gold = head_gold(head, examples)
    texts = [e.text for e in examples]
    scores = {b: EarshotModel.from_pretrained(args.model, device="cpu", backend=b).predict_proba(texts)["pain_points"]
              for b in backends}
    print(f"{len(texts)} texts, {args.splits} random half splits each way; pain-point micro-F1 on the held-out half")
    for shrinkage in args.shrinkage or [0.0, 30.0, 100.0]:
        row = {b: held_out_micro_f1(gold, s, s, shrinkage, args.splits) for b, s in scores.items()}
        line = "   ".join(f"{b} {f1:.4f}" for b, f1 in row.items())
        shipped = "   ".join(f"{b} with torch's thresholds {held_out_micro_f1(gold, scores['torch'], s, shrinkage, args.splits):.4f}"
                             for b, s in scores.items() if b != "torch")
        print(f"shrinkage {shrinkage:>5g}: {line}   {shipped}")


if __name__ == "__main__":
    main()
