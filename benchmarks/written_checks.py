"""The general model on three small sets written for earshot in the shapes of the issue's hidden checks
(never trained on; written, so cleaner than real feedback: a proxy, not the check itself):

- app reviews (`benchmarks/general/written_app_reviews.csv`): pain-point micro-F1, the gold labels being
  `App or website` (bugs, slowness, confusing screens, battery) and `Privacy and security`;
- consumer-finance complaint narratives (`written_finance_complaints.csv`): share called negative;
- tweets about brands (`written_brand_tweets.csv`): sentiment accuracy and macro-F1.

    python benchmarks/written_checks.py --model model/default [--model OTHER ...] [--backend torch]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import EarshotModel  # noqa: E402
from earshot.training.metrics import single_label_metrics  # noqa: E402

DATA = Path(__file__).resolve().parent / "general"


def pain_micro_f1(predicted: list[set[str]], gold: list[set[str]]) -> tuple[float, float, float]:
    """Micro-F1, precision and recall of predicted label sets against gold ones.

    Example:
        >>> pain_micro_f1([{"a"}, set()], [{"a"}, {"b"}])
        (0.6666666666666666, 1.0, 0.5)
    """
    hits = sum(len(p & g) for p, g in zip(predicted, gold))
    said, true = sum(map(len, predicted)), sum(map(len, gold))
    precision, recall = hits / max(said, 1), hits / max(true, 1)
    return 2 * hits / max(said + true, 1), precision, recall


def score(model: EarshotModel) -> str:
    apps = pd.read_csv(DATA / "written_app_reviews.csv", keep_default_na=False)
    answers = model.predict(apps.text.tolist())
    f1, precision, recall = pain_micro_f1([{s.label for s in a["pain_points"].labels} for a in answers],
                                          [{x for x in cell.split(";") if x} for cell in apps.pain_points])
    finance = pd.read_csv(DATA / "written_finance_complaints.csv", keep_default_na=False)
    negative = np.mean([a["sentiment"].label == "negative" for a in model.predict(finance.text.tolist())])
    brands = pd.read_csv(DATA / "written_brand_tweets.csv", keep_default_na=False)
    said = [a["sentiment"].label for a in model.predict(brands.text.tolist())]
    labels = sorted(set(brands.sentiment))
    chosen = np.eye(len(labels))[[labels.index(s) for s in said]]  # one-hot: the metric takes probabilities
    metrics = single_label_metrics(np.array([labels.index(g) for g in brands.sentiment]), chosen, labels)
    return (f"app reviews ({len(apps)}): pain micro-F1 {f1:.3f} (precision {precision:.3f}, recall {recall:.3f}); "
            f"finance complaints ({len(finance)}): negative {negative:.3f}; brand tweets ({len(brands)}): "
            f"sentiment {metrics['accuracy']:.3f} / {metrics['macro_f1']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", type=Path, required=True)
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args()
    for folder in args.model:
        print(f"{folder}: {score(EarshotModel.from_pretrained(folder, backend=args.backend))}", flush=True)


if __name__ == "__main__":
    main()
