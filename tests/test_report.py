"""`earshot report`: one self-contained HTML file with every section, rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from earshot.cli import main
from earshot.model import EarshotModel
from earshot.report import build_report


@pytest.fixture()
def scored(tmp_path: Path) -> Path:
    """A scored file written by hand: the report is tested apart from any model's output."""
    rows = []
    for i in range(60):
        kind = i % 5
        text, sentiment, pains, praise = [
            ("my bag never arrived <script>alert(1)</script>", "negative", ["lost_item"], []),
            ("charged twice and late", "negative", ["billing", "late"], []),
            ("late again but the crew was lovely", "negative", ["late"], ["crew"]),
            ("thanks, lovely crew and a great app!", "positive", [], ["crew", "app"]),
            ("", None, None, None)][kind]
        scores = {label: (0.9 - 0.001 * i if label in (pains or []) else 0.05)
                  for label in ("billing", "late", "lost_item", "rude_staff")}
        praise_scores = {label: (0.8 if label in (praise or []) else 0.1) for label in ("app", "crew")}
        rows.append({"text": text, "created": f"2026-0{1 + i % 3}-{10 + i % 15} 10:00:00" if i != 7 else "not a date",
                     "channel": ["email", "chat", "twitter"][i % 3], "sentiment": sentiment,
                     "sentiment_score": 0.9 if sentiment else None,
                     "pain_points": ";".join(pains) if pains is not None else None,
                     "pain_points_scores": json.dumps(scores) if sentiment else None,
                     "praise_points": ";".join(praise) if praise is not None else None,
                     "praise_points_scores": json.dumps(praise_scores) if sentiment else None,
                     "model_version": "0123456789abcdef" if sentiment else None,
                     "error": "empty text" if kind == 4 else None})
    out = tmp_path / "scored.parquet"
    pd.DataFrame(rows).to_parquet(out)
    return out


def test_report_has_every_section_and_no_external_link(scored: Path, tiny_model: EarshotModel,
                                                       tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    tally = build_report(scored, page, model_config=tiny_model.config, date_column="created", by="channel")
    html = page.read_text()
    for section in ("sentiment", "pain-points", "praise-points", "trend", "segments", "examples", "provenance"):
        assert f"<section id='{section}'>" in html
    assert "What customers value by volume" in html and "What customers value: crew" in html
    assert "0123456789abcdef (48 rows)" in html
    assert tally.rows == 60 and tally.errors == 12 and tally.bad_dates == 1
    assert len(re.findall(r"src='data:image/png;base64,", html)) >= 3
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)
    assert "<script>alert" not in html and "&lt;script&gt;" in html  # feedback text is escaped
    assert "twitter" in html
    assert tally.multi["pain_points"]["late"] == 24 and tally.multi["pain_points"]["lost_item"] == 12
    assert tally.mood["pain_points"]["late"]["negative"] == 24
    assert tally.multi["praise_points"]["crew"] == 24 and tally.mood["praise_points"]["app"]["positive"] == 12


def test_a_file_scored_before_heads_were_data_still_reports(scored: Path, tmp_path: Path) -> None:
    old = pd.read_parquet(scored).drop(columns=["praise_points", "praise_points_scores", "model_version"])
    path = tmp_path / "old.parquet"
    old.rename(columns={"pain_points_scores": "pain_point_scores"}).to_parquet(path)
    tally = build_report(path, tmp_path / "r.html")
    assert tally.multi["pain_points"]["late"] == 24 and "<section id='pain-points'>" in (tmp_path / "r.html").read_text()


def test_report_without_a_sentiment_head_still_shows_every_multi_head(scored: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(scored).drop(columns=["sentiment", "sentiment_score"])
    path = tmp_path / "no-sentiment.csv"
    frame.to_csv(path, index=False)
    tally = build_report(path, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "<section id='pain-points'>" in html and "<section id='sentiment'>" not in html
    assert tally.multi["praise_points"]["app"] == 12


def test_report_names_a_missing_column(scored: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no column 'region' for --by"):
        build_report(scored, tmp_path / "r.html", by="region")


def test_report_renders_in_headless_chromium(scored: Path, tiny_model: EarshotModel, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = tmp_path / "report.html"
    build_report(scored, page, model_config=tiny_model.config, date_column="created", by="channel")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", page.as_uri()], check=True, timeout=120, capture_output=True)
    from PIL import Image

    image = Image.open(shot).convert("L")
    colours = image.getcolors(maxcolors=1 << 16)
    assert image.size == (1200, 2400)
    assert colours is None or len(colours) > 50  # a rendered page, not a blank one


def test_every_bar_chart_leaves_room_past_its_longest_bar(scored: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A stacked bar whose last segment is empty must not touch the chart's frame."""
    import earshot.report as report

    figures: list = []
    monkeypatch.setattr(report, "_png", lambda figure: figures.append(figure) or "")
    build_report(scored, tmp_path / "report.html")
    checked = 0
    for figure in figures:
        for axes in figure.axes:
            ends = [patch.get_x() + patch.get_width() for patch in axes.patches]
            if ends:
                assert axes.get_xlim()[1] > max(ends), axes.get_xlabel()
                checked += 1
    assert checked >= 2  # the sentiment mix and each multi head's volume chart


def test_report_with_redact_quotes_no_personal_data(scored: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(scored)
    frame.loc[1, "text"] = "charged twice, mail me at pat.lee@example.org or +1 415 555 2671"
    frame.to_parquet(scored)
    plain, redacted = tmp_path / "plain.html", tmp_path / "redacted.html"
    assert main(["report", str(scored), "-o", str(plain)]) == 0
    assert main(["report", str(scored), "-o", str(redacted), "--redact", "email", "phone"]) == 0
    assert "pat.lee@example.org" in plain.read_text()
    page = redacted.read_text()
    assert "pat.lee@example.org" not in page and "555 2671" not in page and "&lt;EMAIL&gt;" in page


def test_report_marks_the_evidence_of_an_explained_file(scored: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(scored)
    frame["pain_points_evidence"] = [json.dumps({"lost_item": [{"start": 3, "end": 6, "text": "bag", "weight": 0.4}]})
                                     if text.startswith("my bag") else None for text in frame["text"]]
    frame.to_parquet(scored)
    out = tmp_path / "report.html"
    assert main(["report", str(scored), "-o", str(out)]) == 0
    assert "my <mark>bag</mark> never arrived &lt;script&gt;" in out.read_text()


def test_report_shows_the_new_themes_that_discover_found(scored: Path, tmp_path: Path) -> None:
    themes = tmp_path / "themes.json"
    themes.write_text(json.dumps({"considered": 40, "themes": [
        {"name": "wifi / train", "size": 12, "share_of_negative": 0.25, "keywords": ["wifi", "train"],
         "examples": ["no wifi on the train <b>"], "covered_by": None},
        {"name": "late / flight", "size": 9, "share_of_negative": 0.2, "keywords": ["late"],
         "examples": ["late again"], "covered_by": "late"}]}))
    out = tmp_path / "report.html"
    assert main(["report", str(scored), "-o", str(out), "--themes", str(themes)]) == 0
    page = out.read_text()
    section = page[page.index("id='new-themes'"):page.index("id='examples'")]
    assert "wifi / train" in section and "25.0%" in section and "no wifi on the train &lt;b&gt;" in section
    assert "late / flight" not in section  # covered by a label: not new
