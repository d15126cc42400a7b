"""`--engine ray` on a real local Ray cluster gives the local engine's predictions, row for row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from earshot.ray_engine import score_file_with_ray
from earshot.scoring import score_file
from earshot.model import EarshotModel

pytestmark = pytest.mark.integration


def test_ray_equals_local(tiny_model: EarshotModel, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    frame = pd.DataFrame({"id": [str(i) for i in range(300)],
                          "text": [["late again", "my bag is lost", "", "thanks!", "charged twice"][i % 5] + f" {i}"
                                   if i % 5 else "" for i in range(300)],
                          "price": [f"{i}.10" for i in range(300)]})
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    local, distributed = tmp_path / "local.csv", tmp_path / "ray.csv"
    # Both engines on the default backend (auto: int8 ONNX on a CPU), as `earshot score` runs them.
    score_file(EarshotModel.from_pretrained(folder, device="cpu", backend="auto"), source, local, chunk_size=64,
               progress=False)
    ray.init(num_cpus=3, include_dashboard=False)  # two actors and one CPU for the read tasks
    try:
        summary = score_file_with_ray(folder, source, distributed, actors=2, chunk_size=64)
    finally:
        ray.shutdown()
    assert summary.rows == 300 and summary.errors == 60
    expected = pd.read_csv(local, dtype=str, keep_default_na=False)
    got = pd.read_csv(distributed, dtype=str, keep_default_na=False)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got.drop(columns=["sentiment_score", "pain_points_scores"]),
                                  expected.drop(columns=["sentiment_score", "pain_points_scores"]))
    diff = (got["sentiment_score"].replace("", "0").astype(float)
            - expected["sentiment_score"].replace("", "0").astype(float)).abs()
    assert diff.max() < 1e-5

