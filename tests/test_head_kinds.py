"""A third kind of head, written here alone: an ordinal rating (1 to 5 stars) trains, predicts, scores
and serves through the same code as the built-in kinds, without a line of library code knowing it.

The server loads this module through EARSHOT_PLUGINS, as a team's own plugin module would be loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from earshot.cli import main
from earshot.model import EarshotModel, Head
from earshot.model.heads import SingleKind, head_kind, register_kind

from conftest import FEEDBACK_CSV
from servers import clean_env, free_port, start_server, stop


class Ordinal(SingleKind):
    """Ordered ratings: softmax over them, trained with cross-entropy plus the squared distance of the
    expected rating; the answer is the rating nearest the expected one."""

    name = "ordinal"
    headline = "within_one"
    description = "an ordered rating"

    def check(self, head: Head) -> None:
        super().check(head)
        if not all(label.isdigit() for label in head.labels):
            raise ValueError(f"head {head.name!r} (ordinal) takes numeric ratings, got {head.labels}")

    def decide(self, head: Head, scores: np.ndarray) -> list[list[tuple[str, float]]]:
        nearest = _nearest(head, scores)
        return [[(head.labels[i], float(row[i]))] for i, row in zip(nearest, scores)]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, function: torch.nn.Module, config: Any) -> torch.Tensor:
        value = super().loss(logits, targets, function, config)
        known = targets >= 0
        if not known.any():
            return value
        ranks = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
        expected = (logits[known].softmax(dim=-1) * ranks).sum(dim=-1)
        return value + ((expected - targets[known].to(logits.dtype)) ** 2).mean() / logits.shape[1]

    def metrics(self, head: Head, gold: np.ndarray, probabilities: np.ndarray,
                thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        metrics = super().metrics(head, gold, probabilities)
        known = gold >= 0
        distance = np.abs(_nearest(head, probabilities[known]) - gold[known])
        return {**metrics, "within_one": float((distance <= 1).mean()), "mean_absolute_error": float(distance.mean())}


def _nearest(head: Head, scores: np.ndarray) -> np.ndarray:
    values = np.array([float(label) for label in head.labels])
    expected = scores @ values
    return np.abs(values[None, :] - expected[:, None]).argmin(axis=1)


register_kind(Ordinal())

STARS = {"negative": ("1", "2"), "neutral": ("3",), "positive": ("4", "5")}


@pytest.fixture()
def rated_csv(tmp_path: Path) -> Path:
    """The fixture's feedback with a star rating that follows its sentiment."""
    frame = pd.read_csv(FEEDBACK_CSV, keep_default_na=False)
    frame["stars"] = [STARS[mood][i % len(STARS[mood])] for i, mood in enumerate(frame["sentiment"])]
    frame.to_csv(tmp_path / "rated.csv", index=False)
    return tmp_path / "rated.csv"


def _train(rated: Path, tiny_base: Path, output: Path) -> None:
    assert main(["train", "--data", str(rated), "--output", str(output), "--base-model", str(tiny_base),
                 "--sentiment-column", "sentiment", "--head", "rating:ordinal:stars", "--epochs", "3",
                 "--recipe", "fine-tune", "--no-progress"]) == 0


def test_a_kind_registered_outside_the_library_trains_predicts_and_scores(rated_csv: Path, tiny_base: Path,
                                                                         tmp_path: Path) -> None:
    _train(rated_csv, tiny_base, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())["earshot"]
    assert {"name": "rating", "kind": "ordinal", "labels": ["1", "2", "3", "4", "5"]} in config["heads"]
    validation = config["metrics"]["validation"]["rating"]
    assert 0.0 <= validation["within_one"] <= 1.0 and "mean_absolute_error" in validation

    model = EarshotModel.from_pretrained(tmp_path / "m", backend="torch")
    texts = ["Staff shouted at my kids at the gate.", "The crew was lovely and the trip was smooth!"]
    probabilities = model.predict_proba(texts)["rating"]
    answers = model.predict(texts)
    head = model.config.head("rating")
    for row, answer in zip(probabilities, answers):
        expected = float(row @ np.arange(1, 6))
        assert answer["rating"].kind == "ordinal"
        assert abs(int(answer["rating"].label) - expected) <= 0.5 + 1e-6  # the nearest rating, not the likeliest
        assert answer["rating"].scores == pytest.approx(dict(zip(head.labels, row.tolist())))

    source = tmp_path / "to-score.parquet"
    pd.DataFrame({"text": texts + ["  "]}).to_parquet(source)
    assert main(["score", str(source), "-o", str(tmp_path / "scored.parquet"), "--model", str(tmp_path / "m"),
                 "--backend", "torch", "--no-progress"]) == 0
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert list(scored.columns) == ["text", "sentiment", "sentiment_score", "rating", "rating_score",
                                    "model_version", "error"]
    assert scored["rating"].iloc[:2].tolist() == [a["rating"].label for a in answers]
    assert pd.isna(scored["rating"].iloc[2]) and scored["error"].iloc[2] == "empty text"


def test_an_unknown_kind_names_the_kinds_and_how_to_register_one() -> None:
    with pytest.raises(ValueError, match=r"kind must be one of \('single', 'multi', 'ordinal'.*EARSHOT_PLUGINS"):
        Head("stars", "likert", ["1", "2"])
    assert head_kind("ordinal").headline == "within_one"


@pytest.mark.integration
def test_a_plugin_kind_is_served_by_a_real_server(rated_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    _train(rated_csv, tiny_base, tmp_path / "m")
    tests = str(Path(__file__).parent)
    env = clean_env(EARSHOT_PLUGINS="test_head_kinds", PYTHONPATH=tests)
    port = free_port()
    process, _log = start_server(["--model", str(tmp_path / "m"), "--backend", "torch"], env, port)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/classify", timeout=30,
                              json={"items": [{"text": "Staff shouted at my kids at the gate."}]})
        assert response.status_code == 200, response.text
        rating = response.json()[0]["heads"]["rating"]
        assert rating["kind"] == "ordinal" and rating["labels"][0]["label"] in {"1", "2", "3", "4", "5"}
        expected = sum(float(label) * score for label, score in rating["scores"].items())
        assert abs(float(rating["labels"][0]["label"]) - expected) <= 0.5 + 1e-6
        info = httpx.get(f"http://127.0.0.1:{port}/model", timeout=30).json()
        assert {"name": "rating", "kind": "ordinal"}.items() <= next(h for h in info["heads"]
                                                                    if h["name"] == "rating").items()
    finally:
        stop(process)



def test_catch_all_and_floors_round_trip_and_stay_out_of_older_configs() -> None:
    plain = Head("category", "single", ["bug", "other"])
    assert set(plain.to_dict()) == {"name", "kind", "labels"}  # configs written before them read the same
    marked = Head("category", "single", ["bug", "other"], floors={"other": (0.5, -2.0)}, catch_all=("other",))
    again = Head.from_dict(marked.to_dict())
    assert again.catch_all == ("other",) and again.floors == {"other": (0.5, -2.0)}
    assert "`other` is the catch-all" in marked.behaviour.describe(marked)  # the model card says so
    assert "catch-all" not in plain.behaviour.describe(plain)
    from earshot.service.schemas import HeadInfo

    assert HeadInfo.of(marked).catch_all == ["other"] and HeadInfo.of(plain).catch_all == []  # GET /model
    assert Head.from_dict(Head("c", "single", ["a", "b"], catch_all=()).to_dict()).catch_all == ()
    with pytest.raises(ValueError, match=r"catch-all labels it does not have: \['misc'\]"):
        Head("category", "single", ["bug", "other"], catch_all=("misc",))
    with pytest.raises(ValueError, match="has no catch-all label"):
        Head("tags", "multi", ["bug", "other"], catch_all=("other",))
    with pytest.raises(ValueError, match=r"floors for labels it does not have: \['misc'\]"):
        Head("category", "single", ["bug", "other"], floors={"misc": (0.5, -2.0)})
