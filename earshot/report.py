"""``earshot report``: a self-contained Voice-of-the-Customer HTML page from a scored file.

The scored file is read in chunks and only counts (and a few top texts per pain point) are kept, so a
file of millions of rows needs little memory. Charts are PNGs embedded as data URIs: the page has no
external link and can be mailed or archived as one file.

Example:
    >>> build_report(Path("scored.parquet"), Path("report.html"), date_column="created", by="channel")
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model import EarshotModel

from .tables import read_chunks, read_columns

TOP_TEXTS = 3
TOP_SEGMENTS = 12
NO_PAIN = "(no pain point)"


@dataclass
class Tally:
    """Everything the report shows, accumulated chunk by chunk."""

    rows: int = 0
    errors: int = 0
    sentiment: Counter = field(default_factory=Counter)
    pain: Counter = field(default_factory=Counter)
    pain_sentiment: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_day: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_segment: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    segment_sentiment: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    bad_dates: int = 0
    examples: dict[str, list[tuple[float, int, str]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, frame: pd.DataFrame, text_column: str, date_column: str | None, by: str | None,
            offset: int) -> None:
        self.rows += len(frame)
        ok = frame["error"].isna() | (frame["error"].astype(str) == "")
        self.errors += int((~ok).sum())
        frame = frame[ok]
        self.sentiment.update(frame["sentiment"].fillna("(none)"))
        labels = frame["pain_points"].fillna("").astype(str).str.split(";")
        days = _days(frame[date_column]) if date_column else None
        if days is not None:
            self.bad_dates += int(days.isna().sum())
        for position, (index, row) in enumerate(frame.iterrows()):
            found = [label for label in labels.iloc[position] if label] or [NO_PAIN]
            sentiment = row["sentiment"] if isinstance(row["sentiment"], str) else "(none)"
            for label in found:
                self.pain[label] += 1
                self.pain_sentiment[label][sentiment] += 1
                if days is not None and isinstance(days.iloc[position], str):
                    self.by_day[days.iloc[position]][label] += 1
                if by:
                    self.by_segment[str(row[by])][label] += 1
            if by:
                self.segment_sentiment[str(row[by])][sentiment] += 1
            if found != [NO_PAIN]:
                scores = json.loads(row["pain_point_scores"])
                for label in found:
                    heap = self.examples[label]
                    item = (float(scores.get(label, 0.0)), -(offset + position), str(row[text_column]))
                    if len(heap) < TOP_TEXTS * 4:
                        heapq.heappush(heap, item)
                    else:
                        heapq.heappushpop(heap, item)


def _days(values: pd.Series) -> pd.Series:
    """Each date as its day (YYYY-MM-DD, UTC); unparseable dates become NaN."""
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna())


def _granularity(days: list[str]) -> tuple[str, str]:
    """(pandas period, words) for the trend: daily up to two months, weekly up to two years, else monthly."""
    span = (pd.Timestamp(max(days)) - pd.Timestamp(min(days))).days
    if span <= 62:
        return "D", "daily"
    if span <= 730:
        return "W-SUN", "weekly"
    return "M", "monthly"


def _rollup(by_day: dict[str, Counter], period: str) -> dict[pd.Timestamp, Counter]:
    rolled: dict[pd.Timestamp, Counter] = defaultdict(Counter)
    for day, counts in by_day.items():
        rolled[pd.Timestamp(day).to_period(period).start_time].update(counts)
    return dict(sorted(rolled.items()))


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


SENTIMENT_COLOURS = {"negative": "#d9534f", "neutral": "#9e9e9e", "positive": "#5cb85c", "(none)": "#cccccc"}


def _colour(label: str, i: int) -> str:
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    return SENTIMENT_COLOURS.get(label, palette[i % len(palette)])


def _sentiment_chart(tally: Tally) -> str:
    figure = _figure(6, 2.6)
    axes = figure.add_subplot()
    labels = [label for label, _ in tally.sentiment.most_common()]
    values = [tally.sentiment[label] for label in labels]
    axes.barh(labels, values, color=[_colour(label, i) for i, label in enumerate(labels)])
    for i, value in enumerate(values):
        axes.text(value, i, f" {value} ({value / max(sum(values), 1):.0%})", va="center", fontsize=9)
    axes.invert_yaxis()
    axes.set_xlabel("texts")
    axes.set_xlim(0, max(values or [1]) * 1.3)
    figure.tight_layout()
    return _png(figure)


def _pain_chart(tally: Tally, sentiments: list[str]) -> str:
    ranked = [label for label, _ in tally.pain.most_common() if label != NO_PAIN]
    figure = _figure(7.5, max(2.5, 0.38 * len(ranked) + 1))
    axes = figure.add_subplot()
    left = np.zeros(len(ranked))
    for i, sentiment in enumerate(sentiments):
        values = np.array([tally.pain_sentiment[label][sentiment] for label in ranked], dtype=float)
        axes.barh(ranked, values, left=left, color=_colour(sentiment, i), label=sentiment)
        left += values
    axes.invert_yaxis()
    axes.set_xlabel("texts mentioning the pain point")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return _png(figure)


def _trend_chart(tally: Tally, top: list[str], period: str, words: str) -> str:
    rolled = _rollup(tally.by_day, period)
    figure = _figure(8, 3.4)
    axes = figure.add_subplot()
    x = list(rolled)
    for i, label in enumerate(top):
        axes.plot(x, [rolled[p][label] for p in x], marker="o", label=label, color=_colour(label, i))
    axes.set_ylabel(f"texts ({words})")
    axes.legend(fontsize=8, ncol=2)
    figure.autofmt_xdate()
    figure.tight_layout()
    return _png(figure)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build_report(scored: Path, output: Path, model: EarshotModel | None = None, text_column: str = "text",
                 date_column: str | None = None, by: str | None = None, title: str | None = None,
                 chunk_size: int = 50_000) -> Tally:
    """Write the HTML report for a file made by ``earshot score``; returns the counts shown."""
    columns = read_columns(scored)
    needed = [text_column, "sentiment", "pain_points", "pain_point_scores", "error"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{scored}: missing column(s) {missing}; found {columns}. Report on a file written by "
                         "`earshot score` (and pass --text-column if its text column is not 'text')")
    for flag, column in (("--date-column", date_column), ("--by", by)):
        if column is not None and column not in columns:
            raise ValueError(f"{scored}: no column {column!r} for {flag}; found {columns}")
    tally = Tally()
    offset = 0
    for chunk in read_chunks(scored, chunk_size):
        tally.add(chunk, text_column, date_column, by, offset)
        offset += len(chunk)
    page = _render(tally, scored, model, date_column, by, title)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(output)
    return tally


def _render(tally: Tally, scored: Path, model: EarshotModel | None, date_column: str | None, by: str | None,
            title: str | None) -> str:
    sentiments = [label for label, _ in tally.sentiment.most_common()]
    scored_rows = tally.rows - tally.errors
    ranked = [(label, count) for label, count in tally.pain.most_common() if label != NO_PAIN]
    sections = [f"<section id='sentiment'><h2>Sentiment mix</h2><img alt='sentiment mix' "
                f"src='{_sentiment_chart(tally)}'></section>"]
    pain_rows = [[label, count, f"{count / max(scored_rows, 1):.1%}",
                  *[tally.pain_sentiment[label][s] for s in sentiments]] for label, count in ranked]
    sections.append(
        "<section id='pain-points'><h2>Pain points by volume</h2>"
        + (f"<img alt='pain points' src='{_pain_chart(tally, sentiments)}'>" if ranked else "<p>No pain points found.</p>")
        + _table(["pain point", "texts", "share of texts", *sentiments], pain_rows) + "</section>")
    if date_column:
        top = [label for label, _ in ranked[:6]]
        period, words = _granularity(list(tally.by_day)) if tally.by_day else ("D", "daily")
        trend = (f"<img alt='trend' src='{_trend_chart(tally, top, period, words)}'>" if tally.by_day and top
                 else "<p>No parseable dates.</p>")
        note = f"<p class='note'>{tally.bad_dates} rows had no parseable date.</p>" if tally.bad_dates else ""
        sections.append(f"<section id='trend'><h2>Trend over time ({words}, by {html.escape(date_column)})</h2>"
                        f"{trend}{note}</section>")
    if by:
        segments = sorted(tally.segment_sentiment, key=lambda s: -sum(tally.segment_sentiment[s].values()))
        shown = segments[:TOP_SEGMENTS]
        top = [label for label, _ in ranked[:6]]
        rows = []
        for segment in shown:
            total = sum(tally.segment_sentiment[segment].values())
            rows.append([segment, total, *[f"{tally.segment_sentiment[segment][s] / max(total, 1):.0%}" for s in sentiments],
                         *[tally.by_segment[segment][label] for label in top]])
        more = f"<p class='note'>{len(segments) - len(shown)} smaller segments not shown.</p>" if len(segments) > len(shown) else ""
        sections.append(f"<section id='segments'><h2>Breakdown by {html.escape(by)}</h2>"
                        + _table([by, "texts", *[f"% {s}" for s in sentiments], *top], rows) + more + "</section>")
    quotes = []
    for label, _ in ranked:
        best = sorted(tally.examples[label], reverse=True)
        seen: set[str] = set()
        items = []
        for score, _, text in best:
            if text not in seen and len(items) < TOP_TEXTS:
                seen.add(text)
                items.append(f"<li><span class='score'>{score:.2f}</span> {html.escape(text)}</li>")
        quotes.append(f"<h3>{html.escape(label)}</h3><ul>{''.join(items)}</ul>")
    sections.append("<section id='examples'><h2>Most representative texts</h2><p class='note'>The texts the model "
                    "is most confident about for each pain point.</p>" + "".join(quotes) + "</section>")
    provenance = [["scored file", scored.name], ["rows", tally.rows], ["rows scored", scored_rows],
                  ["rows with an error (not scored)", tally.errors],
                  ["report made", datetime.now(timezone.utc).isoformat(timespec="seconds")]]
    if model is not None:
        config = model.config
        provenance += [["base model", config.base_model],
                       ["trained on", f"{config.provenance.get('data_file', '?')} "
                                      f"({config.provenance.get('data_licence') or 'licence not stated'})"],
                       ["pain-point labels", ", ".join(config.pain_point_labels)],
                       ["trained at", config.provenance.get("trained_at", "?")]]
    sections.append("<section id='provenance'><h2>Model and data provenance</h2>" + _table(["", ""], provenance)
                    + "</section>")
    heading = html.escape(title or f"Voice of the Customer: {scored.name}")
    negative = tally.sentiment.get("negative", 0)
    summary = (f"{scored_rows} texts scored; {negative / max(scored_rows, 1):.0%} negative; top pain point: "
               f"{html.escape(ranked[0][0]) if ranked else 'none'}.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }}
td, th {{ border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }} img {{ max-width: 100%; }} .note {{ color: #666; font-size: .85rem; }}
.score {{ display: inline-block; min-width: 2.6rem; color: #666; font-variant-numeric: tabular-nums; }}
li {{ margin: .25rem 0; }}
</style></head><body>
<h1>{heading}</h1><p class="summary">{summary}</p>
{''.join(sections)}
</body></html>
"""
