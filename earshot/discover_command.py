"""``earshot discover``: themes nobody labelled, as JSON, an HTML page and a proposed taxonomy.
A thin layer: the work is in ``earshot.discover``."""

from __future__ import annotations

import argparse
import html
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("earshot")


def add_command(commands: Any) -> None:
    parser = commands.add_parser("discover", help="themes among the negative scored rows that no label explains")
    parser.add_argument("scored", type=Path, help="a file written by `earshot score`")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the themes as JSON")
    parser.add_argument("--html", type=Path, default=None, help="also a page of the themes")
    parser.add_argument("--taxonomy-out", type=Path, default=None,
                        help="a taxonomy with the head's labels and each new theme as a candidate label "
                             "(for `earshot train --taxonomy`)")
    parser.add_argument("--head", default="pain_points", help="the head whose labels explain a text (default: pain_points)")
    parser.add_argument("--mood-head", default="sentiment",
                        help="the head that says a text is negative (none: every row no label explains)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--date-column", default=None, help="adds each theme's trend")
    parser.add_argument("--all", action="store_true", help="every scored row, not only negative unexplained ones")
    parser.add_argument("--min-theme", type=int, default=None,
                        help="the smallest theme in rows (default: 1 %% of the rows considered, at least 10)")
    parser.add_argument("--model", type=Path, default=None,
                        help="the model that scored the file: its taxonomy names the head's labels for --taxonomy-out")
    parser.add_argument("--encoder", default=None, help="sentence encoder for the texts (default: all-MiniLM-L6-v2)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_discover)


def _discover(args: argparse.Namespace) -> None:
    from earshot.discover import DiscoverConfig, discover, themes_json
    from earshot.files import write_text_atomic
    from earshot.tables import read_table

    config = DiscoverConfig(head=args.head, mood_head=None if args.mood_head == "none" else args.mood_head,
                            text_column=args.text_column,
                            date_column=args.date_column, everything=args.all, min_theme=args.min_theme,
                            encoder=args.encoder)
    frame = read_table(args.scored)
    if args.date_column is not None and args.date_column not in frame:
        raise ValueError(f"{args.scored}: no column {args.date_column!r} for --date-column; found {list(frame.columns)}")
    found = discover(frame, config, progress=not args.no_progress)
    write_text_atomic(args.output, themes_json(found))
    if args.html is not None:
        write_text_atomic(args.html, themes_page(found, args.scored.name))
    if args.taxonomy_out is not None:
        _write_taxonomy(found, args)
    new = [theme for theme in found.themes if theme.covered_by is None]
    logger.info("%d rows considered (%d negative in the file): %d themes, %d new (%s), %d rows in no theme; "
                "written to %s", found.considered, found.negative, len(found.themes), len(new),
                "; ".join(theme.name for theme in new[:5]), found.unclustered, args.output)


def _write_taxonomy(found: Any, args: argparse.Namespace) -> None:
    import yaml

    from earshot.discover import proposed_taxonomy
    from earshot.files import write_text_atomic
    from earshot.model import DEFAULT_MODEL_DIR, read_config

    folder = args.model or DEFAULT_MODEL_DIR
    descriptions: dict[str, dict[str, str]] = {}
    if (folder / "taxonomy.yaml").is_file():
        from earshot.training.taxonomy import read_taxonomy

        descriptions = {head.name: {label.name: label.description for label in head.labels}
                        for head in read_taxonomy(folder / "taxonomy.yaml").heads}
    taxonomy = proposed_taxonomy(found, args.head, read_config(folder).heads, descriptions)
    write_text_atomic(args.taxonomy_out, "# Proposed by earshot discover: review the new labels' names and "
                      "descriptions, then train with --taxonomy\n" + yaml.safe_dump(taxonomy, sort_keys=False,
                                                                                   allow_unicode=True, width=110))


def themes_page(found: Any, source: str) -> str:
    """A self-contained page of the themes: keywords, size, share, trend, examples."""
    parts = []
    for theme in found.themes:
        covered = (f" <span class='covered'>covered by {html.escape(theme.covered_by)}</span>"
                   if theme.covered_by else " <span class='new'>new</span>")
        trend = ", ".join(f"{html.escape(k)}: {v}" for k, v in theme.trend.items())
        parts.append(f"<section><h2>{html.escape(theme.name)}{covered}</h2><p>{theme.size} texts, "
                     f"{theme.share_of_negative:.1%} of the negative ones · keywords: "
                     f"{html.escape(', '.join(theme.keywords))}</p>" + (f"<p class='trend'>{trend}</p>" if trend else "")
                     + "<ul>" + "".join(f"<li>{html.escape(text)}</li>" for text in theme.examples) + "</ul></section>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Themes: {html.escape(source)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
            ".new{background:#fde68a;font-size:.8rem;padding:0 .3rem}.covered{color:#666;font-size:.8rem}"
            ".trend{color:#666;font-size:.85rem}</style></head><body>"
            f"<h1>Themes nobody labelled: {html.escape(source)}</h1><p>{found.considered} texts considered, "
            f"{found.considered - found.unclustered} in {len(found.themes)} themes.</p>{''.join(parts)}</body></html>")
