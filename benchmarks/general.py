"""The general model, source by source: sentiment and pain points on each source's held-out rows beside
TF-IDF + logistic regression trained on the same mapped rows; the airline tweets (never trained on)
with their reasons mapped onto the taxonomy; and leave-one-source-out transfer for TF-IDF (train
without a source, score it) and, with --loso-models, for earshot models trained the same way.

    earshot general-data ../shared/data --train-output /tmp/general/train.csv --test-output /tmp/general/test.csv
    python benchmarks/general.py --train /tmp/general/train.csv --test /tmp/general/test.csv --model model/default \\
        [--airline ../shared/data/airline/train.csv] [--binary restaurants=../shared/data/semeval2016_restaurants/train.csv]
        [--loso] [--loso-models DIR] [--backend torch] [--json out.json]

Figures: sentiment accuracy and macro-F1 on rows with a sentiment, pain-point and praise-point
micro-F1 (rows of sources whose labels map onto them). Needs scikit-learn (`pip install 'earshot[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import EarshotModel, Head  # noqa: E402
from earshot.model.heads import read_label_list  # noqa: E402
from earshot.model.modeling import is_model_folder  # noqa: E402
from earshot.training.general_data import UNANNOTATED, general_labels  # noqa: E402
from earshot.training.metrics import multi_label_metrics, single_label_metrics, tune_thresholds  # noqa: E402

HEADS = ("sentiment", "pain_points", "praise_points")
AIRLINE_REASONS = Path(__file__).resolve().parent / "general" / "airline_reasons.csv"
TFIDF_C = 3.0


def general_heads() -> list[Head]:
    labels = general_labels()
    return [Head("sentiment", "single", list(labels["sentiment"])),
            Head("pain_points", "multi", list(labels["pain_points"])),
            Head("praise_points", "multi", list(labels["praise_points"]))]


def gold(head: Head, cells: pd.Series) -> np.ndarray:
    """A column of general cells as ``head_gold`` arrays (sentiment: -1 where empty; a multi head: a NaN row
    where the source never annotated it)."""
    values = ([cell or None for cell in cells] if head.kind == "single"
              else [None if c == UNANNOTATED else read_label_list(c) for c in cells])
    return head.behaviour.gold(head, values)


def figures(head: Head, truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None) -> dict[str, float]:
    if head.kind == "single":
        known = truth >= 0
        if not known.any():
            return {}
        metrics = single_label_metrics(truth, scores, head.labels)
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "rows": int(known.sum())}
    known = head.behaviour.labelled(truth)
    truth, scores = truth[known], scores[known]
    if not truth.any():
        return {}
    return {"micro_f1": multi_label_metrics(truth, scores, thresholds, head.labels)["micro_f1"],
            "rows_with_label": int(truth.any(axis=1).sum())}


class Tfidf:
    """TF-IDF + logistic regression per head, fitted once on the general rows; multi heads' thresholds tuned
    on a tenth of them held out, as earshot tunes its thresholds on validation rows."""

    def __init__(self, train: pd.DataFrame, heads: list[Head]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        order = np.random.default_rng(0).permutation(len(train))
        tune = np.zeros(len(train), dtype=bool)
        tune[order[: len(train) // 10]] = True
        fit_rows, tune_rows = train[~tune], train[tune]
        self.heads = heads
        self.vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        x = self.vectoriser.fit_transform(fit_rows.text.tolist())
        self.classifiers = {head.name: self._fit(head, x, gold(head, fit_rows[head.name])) for head in heads}
        self.thresholds = {}
        for head in heads:
            if head.kind != "single":
                truth = gold(head, tune_rows[head.name])
                known = head.behaviour.labelled(truth)
                self.thresholds[head.name] = tune_thresholds(
                    truth[known], self._scores(head, tune_rows[known].text.tolist()))

    @staticmethod
    def _fit(head: Head, x, truth: np.ndarray) -> list:
        from sklearn.linear_model import LogisticRegression

        known = head.behaviour.labelled(truth)
        x, truth = x[known], truth[known]
        if head.kind == "single":
            return [LogisticRegression(C=TFIDF_C, max_iter=2000, class_weight="balanced").fit(x, truth)]
        return [LogisticRegression(C=TFIDF_C, max_iter=2000, class_weight="balanced").fit(x, truth[:, j])
                if 0 < truth[:, j].sum() < len(truth) else None for j in range(truth.shape[1])]

    def _scores(self, head: Head, texts: list[str]) -> np.ndarray:
        x = self.vectoriser.transform(texts)
        scores = np.zeros((len(texts), len(head.labels)))
        fitted = self.classifiers[head.name]
        if head.kind == "single":
            scores[:, fitted[0].classes_] = fitted[0].predict_proba(x)
            return scores
        for j, classifier in enumerate(fitted):
            if classifier is not None:
                scores[:, j] = classifier.predict_proba(x)[:, 1]
        return scores

    def predict(self, texts: list[str]) -> dict[str, np.ndarray]:
        return {head.name: self._scores(head, texts) for head in self.heads}


def earshot_scores(model: EarshotModel, texts: list[str]) -> dict[str, np.ndarray]:
    probabilities = model.predict_proba(texts)
    return {head.name: probabilities[head.name] for head in model.config.heads}


def score_table(test: pd.DataFrame, heads: list[Head], scores: dict[str, np.ndarray],
                thresholds: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {head.name: figures(head, gold(head, test[head.name]), scores[head.name], thresholds.get(head.name))
            for head in heads}


def model_thresholds(model: EarshotModel) -> dict[str, np.ndarray]:
    return {h.name: np.array([h.thresholds[label] for label in h.labels]) for h in model.config.heads
            if h.behaviour.thresholded}


def airline_rows(path: Path) -> pd.DataFrame:
    """The airline tweets as general rows: sentiment as labelled, each reason mapped (Can't Tell: none)."""
    reasons = pd.read_csv(AIRLINE_REASONS, keep_default_na=False)
    mapped = dict(zip(reasons.negativereason, reasons.pain_points))
    frame = pd.read_csv(path, keep_default_na=False)
    unknown = sorted(set(frame.negativereason) - set(mapped) - {""})
    if unknown:
        raise SystemExit(f"{AIRLINE_REASONS}: no row for the reasons {unknown}")
    return pd.DataFrame({"text": frame.text, "sentiment": frame.airline_sentiment,
                         "pain_points": [mapped.get(reason, "") for reason in frame.negativereason],
                         "praise_points": "", "source": "airline", "reason": frame.negativereason})


def binary_accuracy(model: EarshotModel, path: Path) -> dict[str, float]:
    """Sentiment as a two-way choice on the rows of ``path`` labelled ``positive`` or ``negative`` (column
    ``sentiment``): right when the larger of the model's two probabilities is the label's (neutral ignored),
    as binary sentiment benchmarks score; never trained on."""
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[frame.sentiment.isin(["negative", "positive"])]
    labels = next(head for head in model.config.heads if head.name == "sentiment").labels
    scores = model.predict_proba(frame.text.tolist())["sentiment"]
    negative, positive = scores[:, labels.index("negative")], scores[:, labels.index("positive")]
    right = np.where(frame.sentiment.to_numpy() == "positive", positive > negative, negative > positive)
    return {"binary_accuracy": float(right.mean()), "rows": int(len(frame)),
            "negative_rows": int((frame.sentiment == "negative").sum())}


def airline_confusion(model: EarshotModel, rows: pd.DataFrame, scores: dict[str, np.ndarray]) -> str:
    """Where the model's answers (``scores``, from ``earshot_scores``) on the airline tweets go: sentiment
    (labelled against answered) and, for each airline reason, the top pain point of the negative tweets
    that carry it."""
    heads = {head.name: head for head in model.config.heads}
    sentiment = np.array(heads["sentiment"].labels)[scores["sentiment"].argmax(1)]
    top_pain = np.array(heads["pain_points"].labels)[scores["pain_points"].argmax(1)]
    negative = (rows.reason != "").to_numpy()
    return (pd.crosstab(rows.sentiment.to_numpy(), sentiment, rownames=["labelled"], colnames=["answered"]).to_string()
            + "\n\n" + pd.crosstab(rows.reason.to_numpy()[negative], top_pain[negative], rownames=["reason"],
                                     colnames=["top pain point"]).T.to_string())


def line(name: str, results: dict[str, dict[str, dict[str, float]]]) -> str:
    parts = []
    for system, table in results.items():
        cells = []
        for head, values in table.items():
            if values:
                shown = {k: v for k, v in values.items() if not k.startswith("rows")}
                cells.append(f"{head} " + " / ".join(f"{v:.3f}" for v in shown.values()))
        parts.append(f"{system}: " + ", ".join(cells))
    return f"{name}: " + " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="from `earshot general-data --train-output`")
    parser.add_argument("--test", type=Path, required=True, help="from `earshot general-data --test-output`")
    parser.add_argument("--model", type=Path, help="the general earshot model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--airline", type=Path, help="the airline tweets (evaluation only: never trained on)")
    parser.add_argument("--airline-confusion", action="store_true",
                        help="with --airline and --model: where the model's sentiment and top pain point go")
    parser.add_argument("--binary", action="append", default=[], metavar="NAME=CSV",
                        help="with --model: binary sentiment accuracy on a file's positive and negative rows "
                             "(repeatable), e.g. restaurants=../shared/data/semeval2016_restaurants/train.csv")
    parser.add_argument("--loso", action="store_true", help="leave-one-source-out transfer for TF-IDF")
    parser.add_argument("--loso-models", type=Path, help="folder with one earshot model per left-out source, named "
                                                         "after it (trained on the train table without it)")
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    heads = general_heads()
    train = pd.read_csv(args.train, keep_default_na=False)
    test = pd.read_csv(args.test, keep_default_na=False)
    evaluated = {source: rows for source, rows in test.groupby("source", sort=True)}
    if args.airline:
        evaluated["airline (never trained on)"] = airline_rows(args.airline)
    systems = {}
    if args.model:
        model = EarshotModel.from_pretrained(args.model, device="cpu", backend=args.backend)
        systems["earshot"] = (lambda texts, m=model: earshot_scores(m, texts), model_thresholds(model))
    if not args.no_tfidf:
        baseline = Tfidf(train, heads)
        systems["TF-IDF"] = (baseline.predict, baseline.thresholds)
    report: dict[str, object] = {}
    last_scores: dict[str, dict[str, np.ndarray]] = {}
    for source, rows in evaluated.items():
        last_scores = {name: predict(rows.text.tolist()) for name, (predict, _) in systems.items()}
        results = {name: score_table(rows, heads, last_scores[name], thresholds)
                   for name, (_, thresholds) in systems.items()}
        report[source] = results
        print(line(f"{source} ({len(rows)} rows)", results), flush=True)
    if args.airline_confusion and args.airline and args.model:
        # the airline rows are scored last: their earshot scores are still at hand
        print(airline_confusion(model, evaluated["airline (never trained on)"], last_scores["earshot"]))
    for spec in args.binary if args.model else ():
        name, _, path = spec.partition("=")
        report[f"{name} (binary)"] = found = binary_accuracy(model, Path(path))
        print(f"{name} (binary, {found['rows']} rows, {found['negative_rows']} negative): "
              f"accuracy {found['binary_accuracy']:.3f}", flush=True)
    if args.loso or args.loso_models:
        report["leave one source out"] = leave_one_out(train, test, heads, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def leave_one_out(train: pd.DataFrame, test: pd.DataFrame, heads: list[Head],
                  args: argparse.Namespace) -> dict[str, object]:
    """Per source: trained without it (its training and test rows left out), scored on its test rows."""
    found: dict[str, object] = {}
    for source, rows in test.groupby("source", sort=True):
        results = {}
        if args.loso:
            baseline = Tfidf(train[train.source != source], heads)
            results["TF-IDF"] = score_table(rows, heads, baseline.predict(rows.text.tolist()), baseline.thresholds)
        folder = args.loso_models / source if args.loso_models else None
        if folder is not None and is_model_folder(folder):
            model = EarshotModel.from_pretrained(folder, device="cpu", backend=args.backend)
            results["earshot"] = score_table(rows, heads, earshot_scores(model, rows.text.tolist()),
                                             model_thresholds(model))
        found[source] = results
        print(line(f"without {source}, scored on it ({len(rows)} rows)", results), flush=True)
    return found


if __name__ == "__main__":
    main()
