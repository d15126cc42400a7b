"""Which of a model's layers a --student-layers student should keep: each set's quality before training.

For every set of N layers (or the sets given), the student `earshot distill --student-layers` would
start from, scored on a labelled airline file with the source model's own thresholds: sentiment
accuracy, pain-point micro-F1, and how well the highest pain-point probability separates texts with a
pain point from the rest (ROC AUC). A starting point, not a result: distillation moves all three
(docs/experiments.md).

    python benchmarks/layer_choice.py --data runs/fast/validation.csv --model model/default --keep 5
    python benchmarks/layer_choice.py --data runs/fast/validation.csv --model model/default --sets 1,2,3,4,5 1,3,4,5,6
"""

from __future__ import annotations

import argparse
import itertools
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
from earshot.training.distill import (encoder_layers, layer_numbers, parse_layers,  # noqa: E402
                                     student_from_layers)
from earshot.training.metrics import multi_label_metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="labelled airline file")
    parser.add_argument("--model", type=Path, required=True, help="the source model (the teacher)")
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--keep", type=int, help="score every set of this many layers")
    chosen.add_argument("--sets", nargs="+", help="layer numbers from 1, as --student-layers takes them")
    args = parser.parse_args()

    source = EarshotModel.from_pretrained(args.model, device="cpu", backend="torch")
    sentiment, pain = source.config.head("sentiment"), source.config.head("pain_points")
    examples = read_examples(args.data, AIRLINE_MAPPING,
                             known_labels={h.name: h.labels for h in source.config.heads}).examples
    texts = [e.text for e in examples]
    sentiment_gold, pain_gold = head_gold(sentiment, examples), head_gold(pain, examples)
    has_pain = pain_gold.sum(axis=1) > 0
    thresholds = np.array([pain.thresholds[label] for label in pain.labels])
    have = len(encoder_layers(source.encoder))
    sets = ([list(s) for s in itertools.combinations(range(1, have + 1), args.keep)] if args.sets is None
            else [layer_numbers(parse_layers(s), have) for s in args.sets])
    print(f"{args.model}, {have} layers; {len(texts)} texts of {args.data}")
    for layers in [list(range(1, have + 1)), *sets]:
        model = source if len(layers) == have else student_from_layers(source, layers)
        given = model.predict_proba(texts)
        accuracy = float((given["sentiment"].argmax(axis=1) == sentiment_gold).mean())
        f1 = multi_label_metrics(pain_gold, given["pain_points"], thresholds, pain.labels)["micro_f1"]
        auc = roc_auc_score(has_pain, given["pain_points"].max(axis=1))
        print(f"layers {','.join(map(str, layers)):<12} sentiment accuracy {accuracy:.4f}  pain-point micro-F1 "
              f"{f1:.4f}  ROC AUC of 'has a pain point' {auc:.4f}")


if __name__ == "__main__":
    main()
