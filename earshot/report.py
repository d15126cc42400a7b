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
from typing import Any, Callable

import numpy as np
import pandas as pd

from earshot.model import EarshotConfig

from .files import write_text_atomic
from .tables import read_chunks, read_columns

TOP_TEXTS = 3
TOP_SEGMENTS = 12
NO_LABEL = "(none)"
# What the report calls the heads it knows; any other head is shown under its own name.
TITLES = {"sentiment": "Sentiment", "pain_points": "Pain points", "praise_points": "What customers value"}
MOOD_HEAD = "sentiment"  # a single head of this name colours the multi heads' charts


def title(head: str) -> str:
    return TITLES.get(head, head.replace("_", " ").capitalize())


@dataclass(frozen=True)
class ScoredHeads:
    """The heads of a scored file, found from the columns ``earshot score`` writes for them."""

    single: list[str]
    multi: list[str]
    scores: dict[str, str]  # multi head -> the column with its JSON scores

    @classmethod
    def from_columns(cls, columns: list[str]) -> "ScoredHeads":
        scores = {c: f"{c}_scores" for c in columns if f"{c}_scores" in columns}
        if "pain_points" in columns and "pain_point_scores" in columns:
            scores.setdefault("pain_points", "pain_point_scores")  # files scored before heads were data
        return cls(single=[c for c in columns if f"{c}_score" in columns], multi=list(scores), scores=scores)

    @property
    def mood(self) -> str | None:
        return MOOD_HEAD if MOOD_HEAD in self.single else None


@dataclass
class Tally:
    """Everything the report shows, accumulated chunk by chunk."""

    heads: ScoredHeads
    rows: int = 0
    errors: int = 0
    versions: Counter = field(default_factory=Counter)
    single: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    multi: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    mood: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    by_day: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    by_segment: dict[str, dict[str, Counter]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    segment_mood: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    bad_dates: int = 0
    # per head and label: (score, -row, text, evidence spans) of the most confident rows
    examples: dict[str, dict[str, list[tuple[float, int, str, tuple]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, frame: pd.DataFrame, text_column: str, date_column: str | None, by: str | None,
            offset: int) -> None:
        self.rows += len(frame)
        ok = frame["error"].isna() | (frame["error"].astype(str) == "")
        self.errors += int((~ok).sum())
        frame = frame[ok]
        if "model_version" in frame:
            self.versions.update(frame["model_version"].dropna().astype(str))
        for head in self.heads.single:
            self.single[head].update(frame[head].fillna(NO_LABEL))
        moods = frame[self.heads.mood].fillna(NO_LABEL) if self.heads.mood else pd.Series(NO_LABEL, index=frame.index)
        days = _days(frame[date_column]) if date_column else None
        if days is not None:
            self.bad_dates += int(days.isna().sum())
        segments = frame[by].astype(str) if by else None
        if segments is not None:
            for segment, mood in zip(segments, moods):
                self.segment_mood[segment][mood] += 1
        for head in self.heads.multi:
            self._add_multi(head, frame, moods, days, segments, text_column, offset)

    def _add_multi(self, head: str, frame: pd.DataFrame, moods: pd.Series, days: pd.Series | None,
                   segments: pd.Series | None, text_column: str, offset: int) -> None:
        cells = frame[head].fillna("").astype(str).str.split(";")
        for position, found in enumerate(cells):
            found = [label for label in found if label] or [NO_LABEL]
            for label in found:
                self.multi[head][label] += 1
                self.mood[head][label][moods.iloc[position]] += 1
                if days is not None and isinstance(days.iloc[position], str):
                    self.by_day[head][days.iloc[position]][label] += 1
                if segments is not None:
                    self.by_segment[head][segments.iloc[position]][label] += 1
            if found == [NO_LABEL]:
                continue
            scores = json.loads(frame[self.heads.scores[head]].iloc[position])
            text = str(frame[text_column].iloc[position])
            evidence = _evidence_cell(frame, f"{head}_evidence", position)
            for label in found:
                heap = self.examples[head][label]
                spans = tuple((span["start"], span["end"]) for span in evidence.get(label, []))
                item = (float(scores.get(label, 0.0)), -(offset + position), text, spans)
                if len(heap) < TOP_TEXTS * 4:
                    heapq.heappush(heap, item)
                else:
                    heapq.heappushpop(heap, item)

    def ranked(self, head: str) -> list[tuple[str, int]]:
        """A multi head's labels by volume, the texts with none left out."""
        return [(label, count) for label, count in self.multi[head].most_common() if label != NO_LABEL]


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


SENTIMENT_COLOURS = {"negative": "#d9534f", "neutral": "#9e9e9e", "positive": "#5cb85c", NO_LABEL: "#cccccc"}


def _colour(label: str, i: int) -> str:
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    return SENTIMENT_COLOURS.get(label, palette[i % len(palette)])


def _single_chart(counts: Counter) -> str:
    figure = _figure(6, 2.6)
    axes = figure.add_subplot()
    labels = [label for label, _ in counts.most_common()]
    values = [counts[label] for label in labels]
    axes.barh(labels, values, color=[_colour(label, i) for i, label in enumerate(labels)])
    for i, value in enumerate(values):
        axes.text(value, i, f" {value} ({value / max(sum(values), 1):.0%})", va="center", fontsize=9)
    axes.invert_yaxis()
    axes.set_xlabel("texts")
    axes.set_xlim(0, max(values or [1]) * 1.3)
    figure.tight_layout()
    return _png(figure)


def _multi_chart(tally: Tally, head: str, moods: list[str]) -> str:
    ranked = [label for label, _ in tally.ranked(head)]
    figure = _figure(7.5, max(2.5, 0.38 * len(ranked) + 1))
    axes = figure.add_subplot()
    left = np.zeros(len(ranked))
    for i, mood in enumerate(moods):
        values = np.array([tally.mood[head][label][mood] for label in ranked], dtype=float)
        axes.barh(ranked, values, left=left, color=_colour(mood, i), label=mood if tally.heads.mood else None)
        left += values
    axes.invert_yaxis()
    # Set, not autoscaled: a zero-width last segment pins the axis to the longest bar's end (its sticky
    # edge), so the top bar would touch the frame.
    axes.set_xlim(0, max(float(left.max(initial=0.0)), 1.0) * 1.05)
    axes.set_xlabel(f"texts ({title(head).lower()})")
    if tally.heads.mood:
        axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return _png(figure)


def _trend_chart(by_day: dict[str, Counter], top: list[str], period: str, words: str) -> str:
    rolled = _rollup(by_day, period)
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


def build_report(scored: Path, output: Path, model_config: EarshotConfig | None = None, text_column: str = "text",
                 date_column: str | None = None, by: str | None = None, title: str | None = None,
                 chunk_size: int = 50_000, redact: Callable[[str], str] | None = None,
                 themes: dict[str, Any] | None = None) -> Tally:
    """Write the HTML report for a file made by ``earshot score``; returns the counts shown.
    ``redact``: applied to every text the report quotes (``earshot.redaction.Redactor(kinds).redact``).
    ``themes``: what ``earshot discover`` wrote for this file; adds the *New themes* section.

    The heads come from the file's columns (``NAME`` + ``NAME_score`` for a single head, ``NAME`` +
    ``NAME_scores`` for a multi head); ``model_config`` only adds the model's provenance.
    """
    columns = read_columns(scored)
    heads = ScoredHeads.from_columns(columns)
    missing = [c for c in (text_column, "error") if c not in columns]
    if missing or not (heads.single or heads.multi):
        raise ValueError(f"{scored}: missing column(s) {missing or 'of any head'}; found {columns}. Report on a file "
                         "written by `earshot score` (and pass --text-column if its text column is not 'text')")
    for flag, column in (("--date-column", date_column), ("--by", by)):
        if column is not None and column not in columns:
            raise ValueError(f"{scored}: no column {column!r} for {flag}; found {columns}")
    tally = Tally(heads)
    offset = 0
    for chunk in read_chunks(scored, chunk_size):
        tally.add(chunk, text_column, date_column, by, offset)
        offset += len(chunk)
    write_text_atomic(output, _render(tally, scored, model_config, date_column, by, title, redact, themes))
    return tally


def _render(tally: Tally, scored: Path, config: EarshotConfig | None, date_column: str | None, by: str | None,
            heading_text: str | None, redact: Callable[[str], str] | None = None,
            themes: dict[str, Any] | None = None) -> str:
    heads = tally.heads
    moods = [label for label, _ in tally.single[heads.mood].most_common()] if heads.mood else [NO_LABEL]
    scored_rows = tally.rows - tally.errors
    sections = [f"<section id='{head}'><h2>{html.escape(title(head))} mix</h2><img alt='{head} mix' "
                f"src='{_single_chart(tally.single[head])}'></section>" for head in heads.single]
    for head in heads.multi:
        ranked = tally.ranked(head)
        rows = [[label, count, f"{count / max(scored_rows, 1):.1%}",
                 *([tally.mood[head][label][m] for m in moods] if heads.mood else [])] for label, count in ranked]
        chart = (f"<img alt='{head}' src='{_multi_chart(tally, head, moods)}'>" if ranked
                 else f"<p>No {html.escape(title(head).lower())} found.</p>")
        sections.append(f"<section id='{head.replace('_', '-')}'><h2>{html.escape(title(head))} by volume</h2>{chart}"
                        + _table([title(head), "texts", "share of texts", *(moods if heads.mood else [])], rows)
                        + "</section>")
    if date_column:
        sections.append(_trend_section(tally, date_column))
    if by:
        sections.append(_segment_section(tally, by, moods))
    if themes is not None:
        sections.append(_themes_section(themes, redact))
    sections.append(_examples_section(tally, redact))
    sections.append(_provenance_section(tally, scored, config))
    heading = html.escape(heading_text or f"Voice of the Customer: {scored.name}")
    summary = [f"{scored_rows} texts scored"]
    if heads.mood:
        summary.append(f"{tally.single[heads.mood].get('negative', 0) / max(scored_rows, 1):.0%} negative")
    for head in heads.multi:
        ranked = tally.ranked(head)
        summary.append(f"top of {html.escape(title(head).lower())}: {html.escape(ranked[0][0]) if ranked else 'none'}")
    summary = "; ".join(summary) + "."
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }}
td, th {{ border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }} img {{ max-width: 100%; }} .note {{ color: #666; font-size: .85rem; }}
mark {{ background: #fde68a; padding: 0 .1rem; }}
.score {{ display: inline-block; min-width: 2.6rem; color: #666; font-variant-numeric: tabular-nums; }}
li {{ margin: .25rem 0; }}
</style></head><body>
<h1>{heading}</h1><p class="summary">{summary}</p>
{''.join(sections)}
</body></html>
"""


def _trend_section(tally: Tally, date_column: str) -> str:
    days = sorted({day for head in tally.heads.multi for day in tally.by_day[head]})
    period, words = _granularity(days) if days else ("D", "daily")
    charts = []
    for head in tally.heads.multi:
        top = [label for label, _ in tally.ranked(head)[:6]]
        if tally.by_day[head] and top:
            charts.append(f"<h3>{html.escape(title(head))}</h3><img alt='{head} trend' "
                          f"src='{_trend_chart(tally.by_day[head], top, period, words)}'>")
    body = "".join(charts) or "<p>No parseable dates.</p>"
    note = f"<p class='note'>{tally.bad_dates} rows had no parseable date.</p>" if tally.bad_dates else ""
    return (f"<section id='trend'><h2>Trend over time ({words}, by {html.escape(date_column)})</h2>"
            f"{body}{note}</section>")


def _segment_section(tally: Tally, by: str, moods: list[str]) -> str:
    segments = sorted(tally.segment_mood, key=lambda s: -sum(tally.segment_mood[s].values()))
    shown = segments[:TOP_SEGMENTS]
    tops = [(head, label) for head in tally.heads.multi for label, _ in tally.ranked(head)[:4]]
    rows = []
    for segment in shown:
        total = sum(tally.segment_mood[segment].values())
        rows.append([segment, total,
                     *([f"{tally.segment_mood[segment][m] / max(total, 1):.0%}" for m in moods] if tally.heads.mood else []),
                     *[tally.by_segment[head][segment][label] for head, label in tops]])
    more = (f"<p class='note'>{len(segments) - len(shown)} smaller segments not shown.</p>"
            if len(segments) > len(shown) else "")
    headers = [by, "texts", *([f"% {m}" for m in moods] if tally.heads.mood else []), *[label for _, label in tops]]
    return f"<section id='segments'><h2>Breakdown by {html.escape(by)}</h2>" + _table(headers, rows) + more + "</section>"


def _examples_section(tally: Tally, redact: Callable[[str], str] | None = None) -> str:
    quotes = []
    for head in tally.heads.multi:
        for label, _ in tally.ranked(head):
            seen: set[str] = set()
            items = []
            for score, _, text, spans in sorted(tally.examples[head][label], reverse=True):
                if text not in seen and len(items) < TOP_TEXTS:
                    seen.add(text)
                    items.append(f"<li><span class='score'>{score:.2f}</span> {_quote(text, spans, redact)}</li>")
            quotes.append(f"<h3>{html.escape(title(head))}: {html.escape(label)}</h3><ul>{''.join(items)}</ul>")
    return ("<section id='examples'><h2>Most representative texts</h2><p class='note'>The texts the model is most "
            "confident about for each label; marked: the words its answer depends on, when the file was scored "
            "with <code>--explain</code>.</p>" + "".join(quotes) + "</section>")


def _themes_section(themes: dict[str, Any], redact: Callable[[str], str] | None) -> str:
    """What customers complain about that no label names (``earshot discover``), biggest first."""
    new = [theme for theme in themes.get("themes", []) if not theme.get("covered_by")]
    if not new:
        return ("<section id='new-themes'><h2>New themes</h2><p>No theme outside the labels among "
                f"{themes.get('considered', 0)} unexplained negative texts.</p></section>")
    rows = [[theme["name"], theme["size"], f"{theme['share_of_negative']:.1%}", ", ".join(theme["keywords"][:6])]
            for theme in new]
    quotes = "".join(f"<h3>{html.escape(theme['name'])}</h3><ul>" + "".join(
        f"<li>{html.escape(redact(text) if redact is not None else text)}</li>" for text in theme["examples"][:TOP_TEXTS])
        + "</ul>" for theme in new)
    return ("<section id='new-themes'><h2>New themes</h2><p class='note'>Negative texts that no label explains, "
            "grouped by <code>earshot discover</code>: candidates for new labels.</p>"
            + _table(["theme", "texts", "share of negative texts", "keywords"], rows) + quotes + "</section>")


def _evidence_cell(frame: pd.DataFrame, column: str, position: int) -> dict[str, list[dict]]:
    """A row's ``NAME_evidence`` (written by ``earshot score --explain``), or nothing."""
    if column not in frame:
        return {}
    cell = frame[column].iloc[position]
    return json.loads(cell) if isinstance(cell, str) and cell else {}


def _quote(text: str, spans: tuple, redact: Callable[[str], str] | None) -> str:
    """The text as HTML, its evidence spans marked, every piece redacted when asked."""
    pieces, last = [], 0
    for start, end in sorted(spans):
        if start < last or end > len(text):
            continue
        pieces += [(text[last:start], False), (text[start:end], True)]
        last = end
    pieces.append((text[last:], False))
    out = []
    for piece, marked in pieces:
        shown = html.escape(redact(piece) if redact is not None and piece else piece)
        out.append(f"<mark>{shown}</mark>" if marked else shown)
    return "".join(out)


def _provenance_section(tally: Tally, scored: Path, config: EarshotConfig | None) -> str:
    rows = [["scored file", scored.name], ["rows", tally.rows], ["rows scored", tally.rows - tally.errors],
            ["rows with an error (not scored)", tally.errors],
            ["model version(s)", ", ".join(f"{v} ({n} rows)" for v, n in tally.versions.most_common()) or "not recorded"],
            ["report made", datetime.now(timezone.utc).isoformat(timespec="seconds")]]
    if config is not None:
        rows += [["base model", config.base_model],
                 ["trained on", f"{config.provenance.get('data_file', '?')} "
                                f"({config.provenance.get('data_licence') or 'licence not stated'})"],
                 *[[f"{title(h.name)} labels", ", ".join(h.labels)] for h in config.heads],
                 ["trained at", config.provenance.get("trained_at", "?")]]
    return "<section id='provenance'><h2>Model and data provenance</h2>" + _table(["", ""], rows) + "</section>"
