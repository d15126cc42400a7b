"""``earshot general-data``: the general taxonomy's training and test tables from the shared public sources.

Every commercially usable source in ``training/general/sources.yaml`` is mapped onto the general
taxonomy by its table in ``training/general/mappings/`` (``earshot.training.general_data``), the
examples written for this project are added to the training side, and a share of each source is held
out for testing (by a hash of the text, so the split does not move when a source grows).

Example:
    earshot general-data ../shared/data --train-output /tmp/general/train.csv --test-output /tmp/general/test.csv
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger("earshot")

# Rows kept per source label: the large sources (GoEmotions, CLINC150's 150 intents, Banking77, the
# clothing reviews) would otherwise drown the small ones and the written examples.
DEFAULT_CAPS = {"banking77": 50, "bitext": 40, "clinc150": 8, "dstc11": 40, "goemotions": 1000, "hint3": 30, "nlupp": 40,
                "womens_reviews": 900}


def add_command(commands: argparse._SubParsersAction) -> None:
    general = commands.add_parser("general-data", help="build the general taxonomy's training and test tables")
    general.add_argument("data_dir", type=Path, help="the shared data folder (../shared/data)")
    general.add_argument("--train-output", required=True, type=Path)
    general.add_argument("--test-output", required=True, type=Path)
    general.add_argument("--test-fraction", type=float, default=0.1, help="share of each source held out")
    general.add_argument("--sources", nargs="+", default=None, metavar="NAME",
                         help="only these sources (default: every one in sources.yaml)")
    general.add_argument("--cap", action="append", default=[], metavar="SOURCE=N",
                         help="at most N training rows per source label of SOURCE (repeatable; default: "
                              + ", ".join(f"{k}={v}" for k, v in DEFAULT_CAPS.items()) + "; N=0: no cap)")
    general.add_argument("--written-copies", type=int, default=2, metavar="N",
                         help="copies of each example written for this project in the training table: they are the "
                              "only rows of some labels (default: 2; 0 leaves them out)")
    general.add_argument("--seed", type=int, default=13)
    general.set_defaults(handler=run)


def caps_from(specs: list[str]) -> dict[str, int]:
    """``DEFAULT_CAPS`` updated by ``SOURCE=N`` flags (0 removes a cap)."""
    caps = dict(DEFAULT_CAPS)
    for spec in specs:
        source, _, number = spec.partition("=")
        if not source or not number.isdigit():
            raise ValueError(f"--cap {spec!r}: expected SOURCE=N, e.g. banking77=100")
        caps[source] = int(number)
    return {source: cap for source, cap in caps.items() if cap > 0}


def run(args: argparse.Namespace) -> None:
    import pandas as pd

    from earshot.files import atomic_path, write_text_atomic
    from earshot.tables import table_format, write_part
    from earshot.training.general_data import (build_general_rows, cap_per_label, held_out, label_counts,
                                               read_written, with_licences)

    rows = build_general_rows(args.data_dir, args.sources)
    test = held_out(rows, args.test_fraction)
    train = cap_per_label(rows[~test], caps_from(args.cap), args.seed)
    if args.written_copies < 0:
        raise ValueError(f"--written-copies must be 0 or more, got {args.written_copies}")
    train = pd.concat([train, *[read_written()] * args.written_copies], ignore_index=True)
    train, test_rows = with_licences(train), with_licences(rows[test])
    for frame, path in ((train, args.train_output), (test_rows, args.test_output)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write_part(frame.reset_index(drop=True), tmp, table_format(path))
    counts = label_counts(train)
    summary = args.train_output.with_suffix(".labels.json")
    write_text_atomic(summary, json.dumps(counts, indent=2) + "\n")
    by_source = train["source"].value_counts().to_dict()
    logger.info("%d training rows (%s) to %s; %d test rows to %s; label counts in %s", len(train),
                ", ".join(f"{source} {n}" for source, n in by_source.items()), args.train_output,
                int(test.sum()), args.test_output, summary)
