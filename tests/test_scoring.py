"""`earshot score`: every row and column kept in order, bad rows marked, atomic and resumable output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import earshot.scoring as scoring
from earshot.scoring import prediction_columns, score_file
from earshot.model import EarshotModel
from earshot.training.data import DataError


def _input(tmp_path: Path, suffix: str, rows: int = 23) -> Path:
    frame = pd.DataFrame({
        "ticket": [f"T{i:03d}" for i in range(rows)],
        "text": [["my bag never arrived", "thanks a lot", "charged twice", "", "  ", "late again"][i % 6]
                 for i in range(rows)],
        "amount": [f"{i}.50" for i in range(rows)],
    })
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".json":
        frame.to_json(path, orient="records")
    else:
        frame.to_parquet(path)
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("source, target", [(".csv", ".csv"), (".tsv", ".jsonl"), (".jsonl", ".parquet"),
                                            (".parquet", ".csv"), (".csv", ".parquet"), (".json", ".json")])
def test_formats_round_trip_with_every_row_and_column(tiny_model: EarshotModel, tmp_path: Path,
                                                      source: str, target: str) -> None:
    path = _input(tmp_path, source)
    out = tmp_path / f"out{target}"
    summary = score_file(tiny_model, path, out, chunk_size=5, progress=False)
    scored = _read(out)
    assert summary.rows == 23 and summary.errors == 8
    assert list(scored.columns) == ["ticket", "text", "amount", "sentiment", "sentiment_score", "pain_points",
                                    "pain_points_scores", "model_version", "error"]
    assert list(scored["ticket"]) == [f"T{i:03d}" for i in range(23)]
    assert [str(a) for a in scored["amount"]] == [f"{i}.50" for i in range(23)]
    good = scored[scored["text"].astype(str).str.strip() != ""]
    assert good["error"].isna().all() | (good["error"] == "").all()
    scores = json.loads(good["pain_points_scores"].iloc[0])
    assert set(scores) == set(tiny_model.config.head("pain_points").labels)
    assert set(good["sentiment"]) <= set(tiny_model.config.head("sentiment").labels)


def test_bad_rows_are_marked_not_dropped(tiny_model: EarshotModel, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    score_file(tiny_model, _input(tmp_path, ".csv", rows=6), out, progress=False)
    scored = pd.read_parquet(out)
    assert len(scored) == 6
    assert scored["error"].fillna("").tolist() == ["", "", "", "empty text", "empty text", ""]
    assert scored["sentiment"].isna().tolist() == [False, False, False, True, True, False]


def test_every_scored_row_records_the_model_version(tiny_model: EarshotModel, tmp_path: Path) -> None:
    version = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "out.csv"
    score_file(tiny_model, _input(tmp_path, ".csv", rows=6), out, progress=False)
    assert _read(out)["model_version"].tolist() == [version, version, version, "", "", version]


def test_predictions_equal_the_models_own(tiny_model: EarshotModel, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    score_file(tiny_model, _input(tmp_path, ".csv", rows=6), out, chunk_size=2, progress=False)
    scored = pd.read_parquet(out)
    direct = tiny_model.predict(["my bag never arrived"])[0]
    assert scored["sentiment"].iloc[0] == direct["sentiment"].label
    assert float(scored["sentiment_score"].iloc[0]) == pytest.approx(direct["sentiment"].labels[0].score, abs=1e-5)


def test_missing_text_column_names_the_flag(tiny_model: EarshotModel, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no text column 'body'. Found columns: \['ticket', 'text', 'amount'\]. "
                                        r"Pass --text-column"):
        score_file(tiny_model, _input(tmp_path, ".csv"), tmp_path / "o.csv", text_column="body", progress=False)


def test_a_crash_leaves_no_output_and_resume_completes_it(tiny_model: EarshotModel, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = _input(tmp_path, ".csv", rows=40)
    straight = tmp_path / "straight.csv"
    score_file(tiny_model, path, straight, chunk_size=7, progress=False)

    calls = {"n": 0}
    real = scoring.score_frame

    def dies_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_frame", dies_on_third_chunk)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        score_file(tiny_model, path, out, chunk_size=7, progress=False)
    assert not out.exists()  # nothing that looks complete

    calls["n"] = 10  # no more crashes; count how many chunks the resumed run scores
    summary = score_file(tiny_model, path, out, chunk_size=7, progress=False, resume=True)
    assert summary.resumed_rows == 14 and calls["n"] == 10 + 4
    assert out.read_bytes() == straight.read_bytes()


def test_resume_refuses_a_changed_input(tiny_model: EarshotModel, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _input(tmp_path, ".csv", rows=20)
    monkeypatch.setattr(scoring, "join_parts", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        score_file(tiny_model, path, tmp_path / "o.csv", chunk_size=7, progress=False)
    monkeypatch.undo()
    with open(path, "a", encoding="utf-8") as more:
        more.write("T099,one more row,9.50\n")
    with pytest.raises(ValueError, match=r"cannot resume: \['input_mtime_ns', 'input_size'\] changed"):
        score_file(tiny_model, path, tmp_path / "o.csv", chunk_size=5, progress=False, resume=True)


def test_resume_with_another_chunk_size_scores_the_rest_once(tiny_model: EarshotModel, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = _input(tmp_path, ".csv", rows=40)
    straight = tmp_path / "straight.csv"
    score_file(tiny_model, path, straight, chunk_size=7, progress=False)
    scored_rows: list[int] = []
    real = scoring.score_frame

    def dies_on_third_chunk(model, chunk, *args, **kwargs):
        if len(scored_rows) == 2:
            raise KeyboardInterrupt("simulated crash")
        scored_rows.append(len(chunk))
        return real(model, chunk, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_frame", dies_on_third_chunk)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        score_file(tiny_model, path, out, chunk_size=7, progress=False)
    scored_rows.append(-1)  # no more crashes
    summary = score_file(tiny_model, path, out, chunk_size=5, progress=False, resume=True)
    # 14 rows were done; the rest come in chunks of 5 aligned to the input (rows 10-14 cut to row 14)
    assert summary.resumed_rows == 14 and summary.rows == 40
    assert scored_rows[3:] == [1, 5, 5, 5, 5, 5]
    resumed, expected = pd.read_csv(out), pd.read_csv(straight)
    pd.testing.assert_frame_equal(resumed.drop(columns=["sentiment_score", "pain_points_scores"]),
                                  expected.drop(columns=["sentiment_score", "pain_points_scores"]))
    np.testing.assert_allclose(resumed["sentiment_score"], expected["sentiment_score"], atol=1e-5)


def test_header_only_input_gives_header_only_output(tiny_model: EarshotModel, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("id,text\n")
    out = tmp_path / "out.parquet"
    assert score_file(tiny_model, path, out, progress=False).rows == 0
    assert pq.read_schema(out).names == ["id", "text", *prediction_columns(tiny_model.config.heads)]


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tiny_model: EarshotModel, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    source = _input(tmp_path, ".csv", rows=6000)
    straight, resumed = tmp_path / "straight.parquet", tmp_path / "resumed.parquet"
    common = ["--model", str(folder), "--chunk-size", "200", "--batch-size", "16", "--no-progress"]
    cli = [sys.executable, "-m", "earshot.cli", "score", str(source)]
    subprocess.run([*cli, "-o", str(straight), *common], check=True, capture_output=True, timeout=600)

    process = subprocess.Popen([*cli, "-o", str(resumed), *common], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    log = tmp_path / ".resumed.parquet.earshot-parts" / "parts.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):
        assert process.poll() is None, "scoring finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not resumed.exists()  # a killed run leaves no file that looks complete
    done_before = len(log.read_text().splitlines())
    assert done_before < 30  # killed mid-run, not at the end

    finished = subprocess.run([*cli, "-o", str(resumed), *common, "--resume"], capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "already scored" in finished.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(resumed), pd.read_parquet(straight))
    assert len(pd.read_parquet(resumed)) == 6000


def test_explain_adds_each_heads_evidence_column(tiny_model: EarshotModel, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    texts = ["my bag is lost and the crew was rude", "", "late again"]
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    score_file(tiny_model, source, out, progress=False, explain=True)
    scored = pd.read_csv(out, keep_default_na=False)
    assert list(scored.columns) == ["text", *prediction_columns(tiny_model.config.heads, explain=True)]
    assert scored["sentiment_evidence"].iloc[1] == ""  # a row that could not be scored has none
    evidence = json.loads(scored["sentiment_evidence"].iloc[0])
    assert list(evidence) == [scored["sentiment"].iloc[0]]  # the answered label, and only it
    for span in evidence[scored["sentiment"].iloc[0]]:
        assert texts[0][span["start"]:span["end"]] == span["text"]
    pains = json.loads(scored["pain_points_evidence"].iloc[0])
    assert sorted(pains) == sorted(label for label in scored["pain_points"].iloc[0].split(";") if label)
