"""The `earshot` command end to end on the tiny model: train, kill -9 + resume, evaluate, score."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earshot.cli import main
from earshot.model import EarshotModel
from earshot.model.device import bf16_matrix_units

COLUMNS = ["--sentiment-column", "sentiment", "--pain-points-column", "pain_points"]


def _train_args(data: Path, base: Path, out: Path, epochs: int = 2) -> list[str]:
    return ["train", "--data", str(data), "--output", str(out), "--base-model", str(base), "--recipe", "fine-tune",
            "--epochs", str(epochs),
            "--learning-rate", "2e-3", "--head-learning-rate", "1e-2", "--patience", "0", "--max-length", "32",
            "--batch-size", "8", "--no-progress", *COLUMNS]


def test_train_evaluate_score(feedback_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert main(_train_args(feedback_csv, tiny_base, out)) == 0
    model = EarshotModel.from_pretrained(out)
    assert model.config.provenance["data_file"] == "feedback.csv"
    assert model.config.provenance["config"]["mixed_precision"] is True
    assert model.config.provenance["columns"]["heads"] == {"sentiment": "sentiment", "pain_points": "pain_points"}

    assert main(["evaluate", "--data", str(feedback_csv), "--model", str(out), *COLUMNS]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["heads"]) == {"sentiment", "pain_points"}
    assert metrics["heads"]["pain_points"]["per_label"]["late"]["support"] > 0
    assert (out / "confusion_sentiment.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert "## Metrics on `feedback.csv`" in card and "| late |" in card and "## Limits" in card
    precision = "bfloat16 mixed" if bf16_matrix_units() else "float32"  # how training ran on this CPU
    assert model.config.provenance["precision"] == precision and f", {precision}." in card
    # evaluate runs the service's backend choice (auto: int8 on the CPU), and the card says which it was
    auto = "bf16" if bf16_matrix_units() else "onnx-int8"  # the service's choice on this CPU
    assert metrics["backend"] == auto and f"rows, backend {auto}, evaluated" in card

    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(feedback_csv, keep_default_na=False)[["text"]].to_csv(unlabelled, index=False)
    scored = tmp_path / "scored.csv"
    assert main(["score", str(unlabelled), "-o", str(scored), "--model", str(out), "--no-progress"]) == 0
    # as text: a version id is 16 hex digits, and one of them all digits would otherwise read as a number
    frame = pd.read_csv(scored, dtype=str, keep_default_na=False)
    assert len(frame) == 204 and frame["sentiment"].isin(["negative", "neutral", "positive"]).all()
    assert set(frame["model_version"]) == {model.version} and metrics["model_version"] == model.version


def test_any_number_of_heads_from_columns(feedback_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(feedback_csv, keep_default_na=False)
    frame["praise"] = ["crew" if "crew" in t else ("app" if "app" in t else "") for t in frame["text"]]
    data = tmp_path / "three.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "model"
    head = ["--head", "praise_points:multi:praise"]
    assert main([*_train_args(data, tiny_base, out, epochs=1), *head]) == 0
    model = EarshotModel.from_pretrained(out)
    assert [(h.name, h.kind) for h in model.config.heads] == [
        ("sentiment", "single"), ("pain_points", "multi"), ("praise_points", "multi")]
    assert main(["evaluate", "--data", str(data), "--model", str(out), *COLUMNS, *head]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["heads"]) == {"sentiment", "pain_points", "praise_points"}
    assert "### Praise points" in (out / "README.md").read_text()
    texts, scored = tmp_path / "texts.csv", tmp_path / "scored.parquet"
    frame[["text"]].to_csv(texts, index=False)
    assert main(["score", str(texts), "-o", str(scored), "--model", str(out), "--no-progress"]) == 0
    assert list(pd.read_parquet(scored).columns) == [
        "text", "sentiment", "sentiment_score", "pain_points", "pain_points_scores", "praise_points",
        "praise_points_scores", "model_version", "error"]


def test_retraining_on_other_data_gives_another_version(feedback_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    pd.read_csv(feedback_csv, keep_default_na=False).iloc[:150].to_csv(other, index=False)
    assert main(_train_args(feedback_csv, tiny_base, tmp_path / "a", epochs=1)) == 0
    assert main(_train_args(other, tiny_base, tmp_path / "b", epochs=1)) == 0
    versions = {EarshotModel.from_pretrained(tmp_path / name).version for name in ("a", "b")}
    assert len(versions) == 2


def test_bad_data_exits_2_with_the_message(feedback_csv: Path, tiny_base: Path, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    args = _train_args(feedback_csv, tiny_base, tmp_path / "m")
    args[args.index("sentiment")] = "mood"
    assert main(args) == 2
    assert "missing column 'mood' (set with --sentiment-column)" in caplog.text


def test_validation_file_with_unknown_label(feedback_csv: Path, tiny_base: Path, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    validation = tmp_path / "validation.csv"
    pd.DataFrame([{"text": "a", "sentiment": "angry", "pain_points": ""}]).to_csv(validation, index=False)
    assert main(_train_args(feedback_csv, tiny_base, tmp_path / "m") + ["--validation", str(validation)]) == 2
    assert "validation.csv: row 1, column 'sentiment': unknown sentiment label 'angry'" in caplog.text


def test_kill_9_then_resume_equals_an_uninterrupted_run(feedback_csv: Path, tiny_base: Path, tmp_path: Path) -> None:
    bigger = tmp_path / "bigger.csv"
    frame = pd.read_csv(feedback_csv, keep_default_na=False)
    pd.concat([frame] * 8).to_csv(bigger, index=False)  # long enough epochs to kill one half-way

    straight = tmp_path / "straight"
    assert main(_train_args(bigger, tiny_base, straight, epochs=3)) == 0

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "earshot.cli", *_train_args(bigger, tiny_base, killed, epochs=3)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "epoch-0001").exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 2
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "model.safetensors").exists()

    assert main([*_train_args(bigger, tiny_base, killed, epochs=3), "--resume"]) == 0
    texts = frame["text"].tolist()
    expected = EarshotModel.from_pretrained(straight).predict_proba(texts)
    resumed = EarshotModel.from_pretrained(killed).predict_proba(texts)
    for head in ("sentiment", "pain_points"):
        np.testing.assert_allclose(resumed[head], expected[head], atol=1e-5)


def test_a_resumed_run_counts_the_time_before_the_interruption(feedback_csv: Path, tiny_base: Path,
                                                                tmp_path: Path) -> None:
    """The model card's training time is the whole cost, not the last run's share of it."""
    out = tmp_path / "m"
    assert main([*_train_args(feedback_csv, tiny_base, out), "--keep-checkpoints"]) == 0
    state_file = out / "checkpoints" / "epoch-0002" / "state.json"
    meta = json.loads(state_file.read_text())
    assert meta["training_state"]["seconds"] > 0
    meta["training_state"]["seconds"] = 1000.0  # as if the first run had trained for 1,000 s before a kill
    state_file.write_text(json.dumps(meta))
    assert main([*_train_args(feedback_csv, tiny_base, out), "--keep-checkpoints", "--resume"]) == 0
    seconds = EarshotModel.from_pretrained(out).config.provenance["training_seconds"]
    assert 1000.0 <= seconds < 1100.0


def test_split_keeps_every_row_and_column_and_stratifies(feedback_csv: Path, tmp_path: Path) -> None:
    train, test = tmp_path / "new" / "train.parquet", tmp_path / "new" / "test.csv"
    assert main(["split", str(feedback_csv), "--train-output", str(train), "--test-output", str(test),
                 "--test-fraction", "0.25", "--stratify-column", "sentiment", "--seed", "3"]) == 0
    original = pd.read_csv(feedback_csv, keep_default_na=False)
    parts = [pd.read_parquet(train), pd.read_csv(test, keep_default_na=False)]
    assert sum(len(p) for p in parts) == len(original) and all(list(p.columns) == list(original.columns) for p in parts)
    assert sorted(pd.concat(parts)["text"]) == sorted(original["text"])
    assert (parts[1]["sentiment"] == "positive").sum() == round(30 * 0.25)


def test_a_missing_ray_names_the_extra_to_install(tiny_model: EarshotModel, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["late again"]}).to_csv(source, index=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # an import of ray now fails as if it were not installed
    code = main(["score", str(source), "-o", str(tmp_path / "o.csv"), "--model", str(folder), "--engine", "ray"])
    assert code == 2
    assert "pip install 'earshot[ray]'" in caplog.text


@pytest.mark.parametrize("command", ["train", "distill"])
def test_no_mixed_precision_reaches_the_training_config(command: str, tmp_path: Path) -> None:
    from earshot.cli import _build_parser, training_config

    given = ["--teacher", "t", "--data", "d.csv"] if command == "distill" else []
    parse = _build_parser().parse_args
    assert training_config(parse([command, *given, "--output", str(tmp_path), "--no-mixed-precision"])).mixed_precision is False
    assert training_config(parse([command, *given, "--output", str(tmp_path)])).mixed_precision is True
