"""``earshot route`` (deliveries for stored, scored rows) and ``earshot alerts`` (list, retry, purge
the outbox). A thin layer: the work is in rules, router, outbox and sender."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from earshot.loop.store import text_hash

from .outbox import DEAD, SENT, STATES, Outbox
from .router import RoutedItem, Router
from .rules import read_rules
from .sender import Sender

logger = logging.getLogger("earshot")


def add_commands(commands: Any) -> None:
    route = commands.add_parser("route", help="send the deliveries that routing rules ask for, for a scored file")
    route.add_argument("scored", type=Path, help="a file written by `earshot score`")
    route.add_argument("--routes", required=True, type=Path, help="the routes file (YAML)")
    route.add_argument("--feedback-db", required=True, help="SQLite file or SQLAlchemy URL holding the outbox")
    route.add_argument("--model", type=Path, default=None,
                       help="the model that scored the file, whose heads the rules name (default: the shipped model)")
    route.add_argument("--text-column", default="text")
    route.add_argument("--id-column", default=None,
                       help="a column of stable row ids (default: the row number); with the text it makes each "
                            "delivery id, so a rerun sends nothing twice")
    route.add_argument("--metadata-columns", nargs="*", default=[], help="columns passed to rules as `fields`")
    route.add_argument("--wait", type=float, default=60.0,
                       help="seconds to keep sending (retries included) before leaving the rest pending (default: 60)")
    route.add_argument("--no-send", action="store_true",
                       help="only record the deliveries (a service on the same store sends them)")
    route.set_defaults(handler=_route)

    alerts = commands.add_parser("alerts", help="the outbox of deliveries: list, retry dead ones, purge")
    actions = alerts.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="deliveries, newest first (without their payloads)")
    listing.add_argument("--feedback-db", required=True)
    listing.add_argument("--state", choices=list(STATES), default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)
    retry = actions.add_parser("retry", help="send dead deliveries again (all, or those named)")
    retry.add_argument("--feedback-db", required=True)
    retry.add_argument("ids", nargs="*", help="delivery ids (default: every dead one)")
    retry.set_defaults(handler=_retry)
    purge = actions.add_parser("purge", help="delete deliveries (their payloads hold feedback text)")
    purge.add_argument("--feedback-db", required=True)
    purge.add_argument("--state", nargs="+", choices=list(STATES), default=[SENT, DEAD],
                       help="which deliveries (default: sent and dead)")
    purge.add_argument("--older-than-days", type=float, default=None)
    purge.set_defaults(handler=_purge)


def _route(args: argparse.Namespace) -> None:
    from earshot.model import read_config
    from earshot.model import DEFAULT_MODEL_DIR
    from earshot.tables import read_chunks, read_columns

    heads = read_config(args.model or DEFAULT_MODEL_DIR).heads
    book = read_rules(args.routes, heads)
    if not book.routes:
        raise ValueError(f"{args.routes}: no routes (spike rules need the live stream of `earshot serve --routes`)")
    columns = read_columns(args.scored)
    needed = {args.text_column, *args.metadata_columns, *([args.id_column] if args.id_column else [])}
    needed |= {name for route in book.routes for name in route.labels}
    missing = sorted(needed - set(columns))
    if missing:
        raise ValueError(f"{args.scored}: no column {missing}; found {columns}. Score the file with the model the "
                         "rules name (--model), or set --text-column / --id-column / --metadata-columns")
    outbox = Outbox.open(args.feedback_db)
    router = Router(book, outbox)
    added = skipped = 0
    for items, errors in _scored_items(read_chunks(args.scored, 5000), heads, args):
        added += router.record(items)
        skipped += errors
    counts = outbox.counts()
    logger.info("%s: %d new deliveries recorded (%d rows not scored, left out); outbox %s", args.scored, added,
                skipped, counts)
    if not args.no_send:
        counts = Sender(outbox, book.delivery).drain(args.wait)
        logger.info("after sending: %s%s", counts, "" if counts["pending"] + counts["failed"] == 0 else
                    " (the rest is retried by the next `earshot route` or a service on the same store)")


def _scored_items(chunks: Iterator[pd.DataFrame], heads: list, args: argparse.Namespace
                  ) -> Iterator[tuple[list[RoutedItem], int]]:
    """Each chunk's rows as routed items, and how many rows carried a scoring error (left out)."""
    row_number = 0
    for chunk in chunks:
        items, errors = [], 0
        for row in chunk.to_dict("records"):
            number, row_number = row_number, row_number + 1
            if _text(row.get("error")).strip():
                errors += 1
                continue
            caller_id = str(row[args.id_column]) if args.id_column else None
            text = str(row[args.text_column])
            key = f"row\0{caller_id if caller_id is not None else number}\0{text_hash(text)}"
            items.append(RoutedItem(key=key, text=text, model_version=_text(row.get("model_version")),
                                    heads=_answer(row, heads), caller_id=caller_id,
                                    metadata={c: row[c] for c in args.metadata_columns} or None,
                                    created_at=time.time()))
        yield items, errors


def _answer(row: dict[str, Any], heads: list) -> dict[str, Any]:
    """A scored row's columns back in the shape /classify answers: ``{head: {"kind", "labels", "scores"}}``."""
    answer = {}
    for head in heads:
        if head.name not in row:
            continue
        if f"{head.name}_score" in row:  # one label per text, and its score
            label, score = _text(row[head.name]), _number(row[f"{head.name}_score"])
            answer[head.name] = {"kind": head.kind, "labels": [{"label": label, "score": score}] if label else [],
                                 "scores": {label: score} if label else {}}
        else:  # labels over threshold, ';'-joined, and every label's score as JSON
            scores = json.loads(_text(row.get(f"{head.name}_scores")) or "{}")
            labels = [label for label in _text(row[head.name]).split(";") if label]
            answer[head.name] = {"kind": head.kind, "scores": scores,
                                 "labels": [{"label": label, "score": float(scores.get(label, math.nan))}
                                            for label in labels]}
    return answer


def _text(value: Any) -> str:
    """A cell as text: missing (None, NaN from a JSON or Parquet file) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _list(args: argparse.Namespace) -> None:
    outbox = Outbox.open(args.feedback_db)
    print(json.dumps(outbox.counts()))
    for delivery in outbox.deliveries(args.state, args.limit):
        print(json.dumps(delivery.summary(), ensure_ascii=False))


def _retry(args: argparse.Namespace) -> None:
    count = Outbox.open(args.feedback_db).retry(args.ids or None)
    logger.info("%d dead deliveries are pending again (a service or `earshot route` on this store sends them)", count)


def _purge(args: argparse.Namespace) -> None:
    count = Outbox.open(args.feedback_db).purge(args.state, args.older_than_days)
    logger.info("deleted %d deliveries (%s)", count, ", ".join(args.state))
