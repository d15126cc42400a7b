"""The files of the held-out-label experiments of `earshot discover` (docs/experiments.md, "Themes nobody
labelled"): a training file with one label removed from its rows (they stay, without it) and a held-out
file whose true labels sit in ``truth_*`` columns (scoring adds the model's own).

    python benchmarks/themes_data.py mams --data ../shared/data --out /tmp/mams      # 'price' held out
    python benchmarks/themes_data.py general --train /tmp/general/train.csv --test /tmp/general/test.csv \\
        --out /tmp/gen                                                                # 'Account and access'

(The airline experiment uses `earshot split`; its commands are in benchmarks/themes.py.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def without(cell: str, label: str) -> str:
    return ";".join(name for name in cell.split(";") if name and name != label)


def mams(data: Path, out: Path, label: str = "price", seed: int = 13) -> None:
    """MAMS train and validation together, 70 / 30 by a seeded shuffle; ``label`` removed from the
    training rows' pain points."""
    rows = pd.concat([pd.read_csv(data / "mams" / f"{part}.csv", keep_default_na=False)
                      for part in ("train", "validation")], ignore_index=True)
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(0.7 * len(rows))
    train, held = rows.iloc[order[:cut]].copy(), rows.iloc[order[cut:]].copy()
    train["pain_points"] = train.pain_points.map(lambda cell: without(cell, label))
    out.mkdir(parents=True, exist_ok=True)
    train[["text", "pain_points"]].to_csv(out / "train.csv", index=False)
    held.rename(columns={"pain_points": "truth_pain_points", "topics": "truth_topics",
                         "praise_points": "truth_praise"})[["text", "truth_pain_points", "truth_topics",
                                                            "truth_praise"]].to_csv(out / "heldout.csv", index=False)


def general(train_path: Path, test_path: Path, out: Path, label: str = "Account and access",
            sources: tuple[str, ...] = ("banking77", "bitext", "nlupp")) -> None:
    """The general tables' rows of three sources; ``label`` removed from the training rows."""
    train = pd.read_csv(train_path, keep_default_na=False)
    test = pd.read_csv(test_path, keep_default_na=False)
    train, test = train[train.source.isin(sources)].copy(), test[test.source.isin(sources)].copy()
    train["pain_points"] = train.pain_points.map(lambda cell: without(cell, label))
    out.mkdir(parents=True, exist_ok=True)
    train[["text", "sentiment", "pain_points"]].to_csv(out / "train.csv", index=False)
    test.rename(columns={"pain_points": "truth_pain_points", "sentiment": "truth_sentiment"})[
        ["text", "truth_sentiment", "truth_pain_points", "source"]].to_csv(out / "heldout.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["mams", "general"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train", type=Path, default=None)
    parser.add_argument("--test", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.experiment == "mams":
        mams(args.data, args.out)
    else:
        if args.train is None or args.test is None:
            parser.error("general needs --train and --test (from `earshot general-data`)")
        general(args.train, args.test, args.out)


if __name__ == "__main__":
    main()
