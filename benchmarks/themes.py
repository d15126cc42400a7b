"""Does `earshot discover` find a label nobody trained on? Precision and recall of its best theme.

The recipe (the airline tweets, both luggage reasons held out):

    earshot split ../shared/data/airline/train.csv --train-output /tmp/lug/train-full.csv \\
        --test-output /tmp/lug/heldout.csv --test-fraction 0.3 --stratify-column airline_sentiment \\
        --stratify-column negativereason --seed 13
    # the luggage reasons blanked in the training rows (they stay, as negative tweets with no reason)
    earshot train --data /tmp/lug/train.csv --output /tmp/lug/model --sentiment-column airline_sentiment \\
        --pain-points-column negativereason --none-label "Can't Tell" --epochs 2
    earshot score /tmp/lug/heldout.csv -o /tmp/lug/scored.csv --model /tmp/lug/model
    earshot discover /tmp/lug/scored.csv -o /tmp/lug/themes.json --head pain_points --mood-head sentiment
    python benchmarks/themes.py --scored /tmp/lug/scored.csv --themes /tmp/lug/themes.json \\
        --truth-column negativereason --truth "Lost Luggage" --truth "Damaged Luggage" --keyword bag --keyword luggage

The held-out label's texts are the rows whose ``--truth-column`` is one of ``--truth``. The theme
judged is the one holding most of them among those whose keywords name one of ``--keyword`` (or, with
no ``--keyword``, among all themes). Precision: its share of rows that are the label's; recall: its
share of the label's rows in the scored file (all of them, not only those discover considered).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def judge(themes: dict, truth_rows: set[int], keywords: list[str]) -> dict:
    """The best theme for the held-out label, with its precision and recall."""
    candidates = [theme for theme in themes["themes"]
                  if not keywords or any(word in " ".join(theme["keywords"]) for word in keywords)]
    if not candidates:
        return {"theme": None, "precision": 0.0, "recall": 0.0, "themes": len(themes["themes"])}
    best = max(candidates, key=lambda theme: len(truth_rows & set(theme["rows"])))
    hits = len(truth_rows & set(best["rows"]))
    return {"theme": best["name"], "keywords": best["keywords"], "size": best["size"], "hits": hits,
            "precision": hits / best["size"], "recall": hits / max(len(truth_rows), 1),
            "covered_by": best.get("covered_by"), "themes": len(themes["themes"]), "held_out_rows": len(truth_rows),
            "considered": themes["considered"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scored", type=Path, required=True)
    parser.add_argument("--themes", type=Path, required=True)
    parser.add_argument("--truth-column", required=True)
    parser.add_argument("--truth", action="append", required=True, help="a value of the held-out label (repeatable)")
    parser.add_argument("--keyword", action="append", default=[], help="a word the theme's keywords must name")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scored = pd.read_csv(args.scored, keep_default_na=False, dtype=str) if args.scored.suffix == ".csv" \
        else pd.read_parquet(args.scored)
    cells = scored[args.truth_column].astype(str)
    truth_rows = {i for i, cell in enumerate(cells) if any(value in cell.split(";") for value in args.truth)}
    result = judge(json.loads(args.themes.read_text()), truth_rows, args.keyword)
    print(f"held-out label {args.truth}: {result['held_out_rows']} rows of {len(scored)}; {result['themes']} themes "
          f"among {result.get('considered')} rows considered; best theme {result['theme']!r} "
          f"({result.get('size')} rows, keywords {result.get('keywords')}): precision {result['precision']:.3f}, "
          f"recall {result['recall']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
