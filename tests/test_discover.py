"""Themes nobody labelled: `earshot discover` finds planted themes, names covered ones, and its proposed
taxonomy trains a model that predicts the new label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earshot.cli import main
from earshot.discover import DiscoverConfig, ctfidf_keywords, discover
from earshot.model import EarshotModel

THEMES = {
    "wifi": ["the wifi was missing on the train", "no wifi on the train again", "wifi never worked on my train",
             "the train wifi is missing", "still no wifi on this train"],
    "app": ["the app shows no booking", "my booking is missing in the app", "app does not show my booking",
            "the app lost my booking again", "where is my booking in the app"],
    "meal": ["the meal was cold", "a cold meal again", "my meal arrived cold", "cold meal on the flight",
             "the meal on this flight was cold"],
}


def scored_frame(per_theme: int, labelled: str | None = None, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Scored rows of three planted themes (negative, no pain point) plus positive rows, and text vectors
    around one centre per theme."""
    rng = np.random.default_rng(seed)
    centres = {name: rng.normal(size=64) for name in THEMES}
    rows, vectors = [], []
    for name, texts in THEMES.items():
        for i in range(per_theme):
            rows.append({"text": f"{texts[i % len(texts)]} {i}", "sentiment": "negative",
                         "pain_points": "late" if name == labelled else "", "error": "", "theme": name})
            vectors.append(centres[name] + 0.25 * rng.normal(size=64))
    for i in range(per_theme):
        rows.append({"text": f"lovely crew {i}", "sentiment": "positive", "pain_points": "", "error": "",
                     "theme": "praise"})
        vectors.append(rng.normal(size=64))
    vectors = np.array(vectors)
    return pd.DataFrame(rows), vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_discover_finds_each_planted_theme_with_its_rows_and_keywords() -> None:
    frame, vectors = scored_frame(40)
    negative = (frame.sentiment == "negative").to_numpy()
    found = discover(frame, DiscoverConfig(), vectors=vectors[negative], progress=False)
    assert found.considered == 120 and found.negative == 120
    assert len(found.themes) == 3
    for theme in found.themes:
        planted = frame.theme.iloc[theme.rows]
        assert planted.nunique() == 1 and len(planted) >= 36  # one theme each, nearly all its rows
        assert planted.iloc[0] in theme.keywords[:2] and theme.covered_by is None
        assert theme.share_of_negative == pytest.approx(theme.size / 120)
        assert all(example in set(frame.text.iloc[theme.rows]) for example in theme.examples)


def test_with_all_rows_a_theme_that_a_label_covers_is_named_so() -> None:
    frame, vectors = scored_frame(40, labelled="meal")
    found = discover(frame, DiscoverConfig(everything=True), vectors=vectors, progress=False)
    by_theme = {frame.theme.iloc[t.rows[0]]: t for t in found.themes}
    assert by_theme["meal"].covered_by == "late"
    assert by_theme["wifi"].covered_by is None and by_theme["app"].covered_by is None


def test_ctfidf_prefers_words_of_one_theme_over_words_of_all() -> None:
    keywords = ctfidf_keywords([["cold meal again", "cold meal @brand"], ["wifi missing again", "no wifi again"]], 3)
    assert keywords == [["cold", "cold meal", "meal"], ["wifi", "wifi missing", "missing"]]  # not "again", "brand"


def test_discover_names_a_missing_column(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scored = tmp_path / "scored.csv"
    pd.DataFrame({"text": ["a"], "sentiment": ["negative"]}).to_csv(scored, index=False)
    assert main(["discover", str(scored), "-o", str(tmp_path / "t.json")]) == 2
    assert "no column ['pain_points']" in caplog.text


@pytest.mark.integration
def test_a_proposed_taxonomy_trains_a_model_that_predicts_the_new_label(tiny_base: Path, saved_tiny: Path,
                                                                       feedback_csv: Path, tmp_path: Path) -> None:
    frame, _ = scored_frame(30)
    scored = tmp_path / "scored.csv"
    frame.drop(columns="theme").to_csv(scored, index=False)
    themes, taxonomy = tmp_path / "themes.json", tmp_path / "proposed.yaml"
    assert main(["discover", str(scored), "-o", str(themes), "--html", str(tmp_path / "themes.html"),
                 "--taxonomy-out", str(taxonomy), "--model", str(saved_tiny), "--no-progress"]) == 0
    found = json.loads(themes.read_text())
    planted = frame.theme.to_numpy()
    for name in THEMES:  # each planted theme is found: most of its rows sit in themes made of it
        held = sum(int((planted[t["rows"]] == name).sum()) for t in found["themes"]
                   if (planted[t["rows"]] == name).mean() > 0.8)
        assert held >= 24, (name, [(t["name"], t["size"]) for t in found["themes"]])
    assert "wifi" in (tmp_path / "themes.html").read_text()
    heads = yaml.safe_load(taxonomy.read_text())["heads"]
    assert heads["sentiment"]["labels"][0] == {"name": "negative", "description": "negative"}
    proposed = heads["pain_points"]
    names = [label["name"] for label in proposed["labels"]]
    assert names[:4] == ["billing", "late", "lost_item", "rude_staff"] and len(names) == 4 + len(found["themes"])
    wifi = next(label for label in proposed["labels"][4:] if "wifi" in label["name"].lower())
    model_dir = tmp_path / "model"
    assert main(["train", "--taxonomy", str(taxonomy), "--data", str(feedback_csv), "--output", str(model_dir),
                 "--sentiment-column", "sentiment", "--pain-points-column", "pain_points", "--base-model",
                 str(tiny_base), "--recipe", "fine-tune", "--epochs", "12", "--learning-rate", "2e-3",
                 "--head-learning-rate", "1e-2", "--patience", "0", "--max-length", "32", "--batch-size", "8",
                 "--no-progress"]) == 0
    model = EarshotModel.from_pretrained(model_dir, backend="torch")
    assert wifi["name"] in model.config.head("pain_points").labels
    answers = model.predict(wifi["examples"])
    assert sum(wifi["name"] in [e.label for e in a["pain_points"].labels] for a in answers) >= 3
