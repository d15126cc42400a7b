"""Are a model's answers unchanged by a change to the code? Save every head's probabilities and labels
for some texts before the change, compare after it: the largest probability difference and the
number of texts whose labels differ.

    python benchmarks/same_answers.py --data ../shared/data/airline/train.csv --save /tmp/before.npz   # before
    python benchmarks/same_answers.py --data ../shared/data/airline/train.csv --compare /tmp/before.npz  # after
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import DEFAULT_MODEL_DIR, EarshotModel  # noqa: E402


def answers(model: EarshotModel, texts: list[str]) -> dict[str, np.ndarray]:
    probabilities = model.predict_proba(texts)
    found = {f"scores:{name}": values for name, values in probabilities.scores.items()}
    decided = model.decide(probabilities)
    for name in probabilities.scores:
        found[f"labels:{name}"] = np.array([";".join(p.label for p in d[name].labels) for d in decided])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a CSV with a text column")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--backend", default="torch")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path)
    action.add_argument("--compare", type=Path)
    args = parser.parse_args()
    texts = pd.read_csv(args.data)["text"].astype(str).tolist()[: args.texts]
    found = answers(EarshotModel.from_pretrained(args.model, device="cpu", backend=args.backend), texts)
    if args.save:
        np.savez(args.save, **found)
        print(f"saved the answers to {len(texts)} texts in {args.save}")
        return
    before = np.load(args.compare)
    for key in sorted(found):
        if key.startswith("scores:"):
            print(f"{key[7:]}: largest probability difference {np.abs(found[key] - before[key]).max():.2e}")
        else:
            print(f"{key[7:]}: {(found[key] != before[key]).sum()} of {len(texts)} texts with other labels")


if __name__ == "__main__":
    main()
