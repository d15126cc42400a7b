"""How long `earshot discover` takes on many scored rows: a scored file repeated to ``--rows`` rows
(each copy's texts marked so that no two are equal), timed stage by stage on this machine's CPU.

    earshot score ../shared/data/airline/train.csv -o /tmp/airline-scored.csv
    python benchmarks/discover_time.py --scored /tmp/airline-scored.csv --rows 100000 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.discover import DiscoverConfig, candidate_rows, discover, embed  # noqa: E402
from earshot.tables import read_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scored", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    one = read_table(args.scored)
    copies = -(-args.rows // len(one))
    frame = pd.concat([one.assign(text=one["text"].astype(str) + ("" if n == 0 else f" ({n})"))
                       for n in range(copies)], ignore_index=True).iloc[: args.rows].reset_index(drop=True)
    config = DiscoverConfig()
    rows, _ = candidate_rows(frame, config)
    started = time.perf_counter()
    vectors = embed(frame["text"].astype(str).to_numpy()[rows].tolist(), None)
    embedded = time.perf_counter() - started
    found = discover(frame, config, vectors=vectors)
    total = time.perf_counter() - started
    result = {"rows": len(frame), "considered": found.considered, "themes": len(found.themes),
              "embed_s": embedded, "cluster_and_describe_s": total - embedded, "total_s": total}
    print(f"{result['rows']} scored rows, {result['considered']} considered: {result['themes']} themes in "
          f"{total:.0f} s ({embedded:.0f} s embedding, {total - embedded:.0f} s clustering and naming)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
