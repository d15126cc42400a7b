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
from earshot.training.metrics import multi_label_metrics, single_label_metrics  # noqa: E402

DATA = Path(__file__).resolve().parent / "general"


def label_matrix(sets: list[set[str]], labels: list[str]) -> np.ndarray:
    """0/1 rows x labels, as the project's multi-label metrics take them."""
    return np.array([[label in chosen for label in labels] for chosen in sets], dtype=float)


def score(model: EarshotModel) -> str:
    apps = pd.read_csv(DATA / "written_app_reviews.csv", keep_default_na=False)
    labels = next(h for h in model.config.heads if h.name == "pain_points").labels
    named = [{s.label for s in a["pain_points"].labels} for a in model.predict(apps.text.tolist())]
    gold = [{x for x in cell.split(";") if x} for cell in apps.pain_points]
    f1 = multi_label_metrics(label_matrix(gold, labels), label_matrix(named, labels), np.full(len(labels), 0.5),
                             labels)["micro_f1"]
    finance = pd.read_csv(DATA / "written_finance_complaints.csv", keep_default_na=False)
    negative = np.mean([a["sentiment"].label == "negative" for a in model.predict(finance.text.tolist())])
    brands = pd.read_csv(DATA / "written_brand_tweets.csv", keep_default_na=False)
    said = [a["sentiment"].label for a in model.predict(brands.text.tolist())]
    moods = sorted(set(brands.sentiment))
    chosen = np.eye(len(moods))[[moods.index(s) for s in said]]  # one-hot: the metric takes probabilities
    metrics = single_label_metrics(np.array([moods.index(g) for g in brands.sentiment]), chosen, moods)
    return (f"app reviews ({len(apps)}): pain micro-F1 {f1:.3f}; "
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
