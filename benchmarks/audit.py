"""How well `earshot audit` finds wrong labels: planted flips on Banking77, annotator agreement on airline.

1. Banking77: a seeded 5 % of the training rows get a random other intent; the audit (frozen
   all-MiniLM-L6-v2 embeddings, 5-fold logistic regression, confident learning) should flag them.
   Prints precision and recall of the flagged set, and of the top-k rows by suspicion (the curve).
2. Airline (optional): the pain-point head audited on the airline file; among negative tweets, the
   mean `negativereason_confidence` (annotator agreement) of flagged and of unflagged tweets.

One line per run:

    python benchmarks/audit.py --banking77 ../shared/data/banking77/train.csv --seed 1 --seed 2 --seed 3 \\
        --airline /tmp/airline/train.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import DEFAULT_BASE_MODEL, Head  # noqa: E402
from earshot.training import ColumnMapping, HeadColumn  # noqa: E402
from earshot.training.audit import DEFAULT_C, audit, embed_texts, out_of_fold  # noqa: E402
from earshot.training.data import head_gold  # noqa: E402
from earshot.training.data import Example  # noqa: E402


def flip(labels: list[str], fraction: float, seed: int) -> tuple[list[str], set[int]]:
    """``labels`` with ``fraction`` of them (chosen with ``seed``) changed to another label at random."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    chosen = rng.choice(len(labels), round(fraction * len(labels)), replace=False)
    flipped = list(labels)
    for i in chosen:
        others = [name for name in names if name != labels[i]]
        flipped[i] = others[rng.integers(len(others))]
    return flipped, {int(i) for i in chosen}


def precision_recall(found: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 0.0), hits / len(truth)


def banking77(path: Path, seed: int, folds: int, embeddings: np.ndarray, frame: pd.DataFrame, c: float) -> None:
    labels, truth = flip(frame["category"].tolist(), 0.05, seed)
    examples = [Example(text=t, labels={"intent": label}, row=i + 1) for i, (t, label) in
                enumerate(zip(frame["text"], labels))]
    head = Head("intent", "single", sorted(set(labels)))
    started = time.perf_counter()
    suspects = audit(examples, ColumnMapping(heads=(HeadColumn("intent", "single", "category"),)), embeddings,
                     [head], folds=folds, seed=seed, c=c)
    seconds = time.perf_counter() - started
    p, r = precision_recall({s.row - 1 for s in suspects}, truth)
    # The curve ranks every row by label quality (the audit's own ranking, before the flagging cut).
    gold = head_gold(head, examples)
    quality = get_label_quality_scores(gold, out_of_fold(head, gold, embeddings, folds, seed, c))
    ranked = list(np.argsort(quality, kind="stable"))
    curve = "  ".join(f"top {k}: P {precision_recall(set(ranked[:k]), truth)[0]:.3f} R "
                      f"{precision_recall(set(ranked[:k]), truth)[1]:.3f}" for k in (250, 400, 500, 600, 750, 1000))
    print(f"banking77 {len(frame)} rows, {len(truth)} flipped (seed {seed}), {folds} folds, C {c:g}: "
          f"flagged {len(suspects)}, "
          f"precision {p:.3f}, recall {r:.3f}, audit {seconds:.1f} s | {curve}", flush=True)


def airline(path: Path, folds: int) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    mapping = ColumnMapping(heads=(HeadColumn("pain_points", "multi", "negativereason"),), none_labels=("Can't Tell",))
    examples = [Example(text=t, labels={"pain_points": (r,) if r and r != "Can't Tell" else ()}, row=i + 1)
                for i, (t, r) in enumerate(zip(frame["text"], frame["negativereason"]))]
    head = Head("pain_points", "multi", sorted({r for r in frame["negativereason"] if r and r != "Can't Tell"}))
    embeddings = embed_texts(DEFAULT_BASE_MODEL, frame["text"].tolist())
    flagged = {s.row - 1 for s in audit(examples, mapping, embeddings, [head], folds=folds)}
    negative = frame[frame["airline_sentiment"] == "negative"].copy()
    negative["confidence"] = pd.to_numeric(negative["negativereason_confidence"], errors="coerce")
    is_flagged = negative.index.isin(sorted(flagged))
    print(f"airline {len(frame)} rows, pain points audited, {folds} folds: {len(flagged)} flagged; negative tweets: "
          f"flagged {is_flagged.sum()} mean negativereason_confidence {negative['confidence'][is_flagged].mean():.3f}, "
          f"unflagged {(~is_flagged).sum()} mean {negative['confidence'][~is_flagged].mean():.3f}", flush=True)


def get_label_quality_scores(gold: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores as scores

    return scores(gold, probabilities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banking77", type=Path, help="Banking77's train.csv (text, category)")
    parser.add_argument("--airline", type=Path, help="an airline file (text, airline_sentiment, negativereason, ...)")
    parser.add_argument("--seed", type=int, action="append", help="flip seeds (default: 1)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, action="append", help="regularisation of the linear heads "
                                                                  "(repeatable; default: the audit's)")
    args = parser.parse_args()
    if args.banking77:
        frame = pd.read_csv(args.banking77, dtype=str, keep_default_na=False)
        embeddings = embed_texts(DEFAULT_BASE_MODEL, frame["text"].tolist())  # once: flips change labels only
        for c in args.c or [DEFAULT_C]:
            for seed in args.seed or [1]:
                banking77(args.banking77, seed, args.folds, embeddings, frame, c)
    if args.airline:
        airline(args.airline, args.folds)


if __name__ == "__main__":
    main()
