"""Each head of an earshot model beside TF-IDF + logistic regression, on the same split, in one run.

The baseline gets what earshot gets: the training file to fit on, the validation file to choose its
regularisation (C) and, for multi heads, per-label thresholds (``tune_thresholds``, as earshot's
trainer tunes them), and the test file to be scored on. Single heads report accuracy and macro-F1,
multi heads micro-F1. One line per head.

    python benchmarks/tfidf.py --train T.csv --validation V.csv --test TEST.csv --model runs/semeval3/model \\
        --sentiment-column sentiment --pain-points-column pain_points --head praise_points:multi:praise_points

Needs scikit-learn (`pip install 'earshot[bench]'`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.flags import add_column_flags, column_mapping  # noqa: E402
from earshot.model import SINGLE, EarshotModel, Head  # noqa: E402
from earshot.training import read_examples  # noqa: E402
from earshot.training.metrics import multi_label_metrics, single_label_metrics, tune_thresholds  # noqa: E402
from earshot.training.data import head_gold  # noqa: E402

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def tfidf_scores(head: Head, train_texts: list[str], train_gold: np.ndarray, texts: list[str], c: float) -> np.ndarray:
    """Probabilities (rows x labels) of a TF-IDF + logistic-regression model of ``head`` for ``texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    train_x = vectoriser.fit_transform(train_texts)
    x = vectoriser.transform(texts)
    if head.kind == SINGLE:
        known = train_gold >= 0
        classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(train_x[known],
                                                                                        train_gold[known])
        scores = np.zeros((len(texts), len(head.labels)))
        scores[:, classifier.classes_] = classifier.predict_proba(x)
        return scores
    scores = np.zeros((len(texts), len(head.labels)))
    for j in range(len(head.labels)):
        if 0 < train_gold[:, j].sum() < len(train_gold):
            classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            scores[:, j] = classifier.fit(train_x, train_gold[:, j]).predict_proba(x)[:, 1]
    return scores


def head_metric(head: Head, gold: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None) -> dict[str, float]:
    if head.kind == SINGLE:
        metrics = single_label_metrics(gold, scores, head.labels)
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    return {"micro_f1": multi_label_metrics(gold, scores, thresholds, head.labels)["micro_f1"]}


def tfidf_baseline(head: Head, texts: dict[str, list[str]], gold: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """TF-IDF's metrics on ``texts["test"]`` and its C: fitted on "train", C (and a multi head's
    thresholds) chosen on "validation", as earshot chooses its epoch and thresholds there."""
    best = None
    for c in C_GRID:
        on_validation = tfidf_scores(head, texts["train"], gold["train"], texts["validation"], c)
        thresholds = tune_thresholds(gold["validation"], on_validation) if head.kind != SINGLE else None
        metric = head_metric(head, gold["validation"], on_validation, thresholds)
        score = metric.get("micro_f1", metric.get("macro_f1"))
        if best is None or score > best[0]:
            best = (score, c, thresholds)
    _, c, thresholds = best
    scores = tfidf_scores(head, texts["train"], gold["train"], texts["test"], c)
    return head_metric(head, gold["test"], scores, thresholds), c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="an earshot model to score on the same test file")
    add_column_flags(parser)
    args = parser.parse_args()
    mapping = column_mapping(args)
    train = read_examples(args.train, mapping)
    heads = train.heads(mapping)
    known = {h.name: h.labels for h in heads}
    validation = read_examples(args.validation, mapping, known_labels=known).examples
    test = read_examples(args.test, mapping, known_labels=known).examples
    texts = {name: [e.text for e in part] for name, part in (("train", train.examples), ("validation", validation),
                                                            ("test", test))}
    model = EarshotModel.from_pretrained(args.model, device="cpu") if args.model else None
    probabilities = model.predict_proba(texts["test"]) if model else None
    for head in heads:
        gold = {name: head_gold(head, part) for name, part in (("train", train.examples),
                                                                          ("validation", validation), ("test", test))}
        baseline, c = tfidf_baseline(head, texts, gold)
        line = f"{head.name} ({head.kind}, {len(head.labels)} labels, {len(test)} test rows): TF-IDF C={c:g} " + \
            " ".join(f"{k} {v:.4f}" for k, v in baseline.items())
        if model is not None:
            mine = model.config.head(head.name)
            own = np.array([mine.thresholds[label] for label in mine.labels]) if mine.kind != SINGLE else None
            earshot = head_metric(mine, head_gold(mine, test), probabilities[head.name], own)
            line += " | earshot " + " ".join(f"{k} {v:.4f}" for k, v in earshot.items())
        print(line, flush=True)


if __name__ == "__main__":
    main()
