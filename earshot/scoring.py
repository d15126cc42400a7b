"""``earshot score``: add predictions to every row of a table, streaming, atomically, resumably.

The input is read in chunks; each scored chunk is written as a part file of its own under a work
folder beside the output; when all parts are done they are joined into the output through a
temporary file and a rename. A crash leaves no file that looks complete, and ``resume=True`` keeps
the parts already written and scores the rows after them, in chunks of this run's size (which may
differ from the interrupted run's: a text's scores do not depend on the texts beside it).

Example:
    >>> summary = score_file(EarshotModel.from_pretrained(), Path("tickets.csv"), Path("scored.parquet"))
    >>> summary.rows
    120000
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from earshot.model import EarshotModel, Head, HeadPrediction
from earshot.model.explain import Explainer, evidence_dicts
from earshot.training.data import DataError

from .files import write_text_atomic
from .tables import count_rows, join_parts, read_chunks, read_columns, table_format, write_part

logger = logging.getLogger(__name__)


def prediction_columns(heads: list[Head], explain: bool = False) -> list[str]:
    """The columns scoring adds: per single head ``NAME`` (label) and ``NAME_score``; per multi head
    ``NAME`` (labels at or over threshold, ';'-joined) and ``NAME_scores`` (JSON, every label);
    with ``explain``, per head ``NAME_evidence`` (JSON: each answered label's evidence spans);
    then ``model_version`` and ``error``.

    Example:
        >>> prediction_columns([Head("sentiment", "single", ["neg", "pos"]), Head("pain_points", "multi", ["late"])])
        ['sentiment', 'sentiment_score', 'pain_points', 'pain_points_scores', 'model_version', 'error']
    """
    return [*(column for head in heads for column in head.behaviour.columns(head)),
            *([f"{head.name}_evidence" for head in heads] if explain else []), "model_version", "error"]


@dataclass
class ScoreSummary:
    rows: int
    errors: int
    seconds: float
    resumed_rows: int = 0


def check_text_column(columns: list[str], text_column: str, source: str, heads: list[Head],
                      explain: bool = False) -> None:
    """A DataError naming the missing text column, the columns found and the flag; or clashing names."""
    if text_column not in columns:
        raise DataError(f"{source}: no text column {text_column!r}. Found columns: {columns}. "
                        "Pass --text-column NAME to use another column.")
    clashes = [c for c in prediction_columns(heads, explain) if c in columns]
    if clashes:
        raise DataError(f"{source}: already has column(s) {clashes}, which scoring adds; rename or drop them "
                        "first so that no input value is overwritten")


def text_problem(value: Any) -> str | None:
    """Why a cell cannot be scored, or None when it can."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing text"
    if not isinstance(value, str):
        return f"text is {type(value).__name__}, not a string"
    if not value.strip():
        return "empty text"
    return None


def score_frame(model: EarshotModel, frame: pd.DataFrame, text_column: str,
                batch_size: int | None = None, explain: bool = False) -> pd.DataFrame:
    """The frame with the prediction columns added; rows whose text cannot be scored get an ``error``.
    ``explain``: also each answered label's evidence (``earshot.model.explain``; a text of n words is
    scored n + 1 times).

    This is the one place that turns model predictions into table columns: the local engine and the
    Ray engine both call it.
    """
    problems = [text_problem(value) for value in frame[text_column]]
    good = [i for i, problem in enumerate(problems) if problem is None]
    predictions = model.predict([frame[text_column].iat[i] for i in good], batch_size=batch_size)
    scored = frame.copy()
    for head in model.config.heads:
        answers: list[HeadPrediction | None] = [None] * len(frame)
        for i, prediction in zip(good, predictions):
            answers[i] = prediction[head.name]
        for column, values in head.behaviour.cells(head, answers).items():
            scored[column] = values
    if explain:
        found = Explainer(model).explain([frame[text_column].iat[i] for i in good], predictions)
        for head in model.config.heads:
            cells: list[str | None] = [None] * len(frame)
            for i, evidence in zip(good, found):
                cells[i] = json.dumps(evidence_dicts(evidence)[head.name], ensure_ascii=False)
            scored[f"{head.name}_evidence"] = cells
    scored["model_version"] = [model.version if problem is None else None for problem in problems]
    scored["error"] = problems
    return scored


def score_file(model: EarshotModel, input_path: Path, output_path: Path, text_column: str = "text",
               chunk_size: int = 4096, batch_size: int | None = None, progress: bool = True,
               resume: bool = False, explain: bool = False) -> ScoreSummary:
    """Score a whole file; see the module docstring for how crashes and ``resume`` are handled."""
    started = time.monotonic()
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
    if not input_path.is_file():
        raise DataError(f"{input_path}: no such file")
    out_format = table_format(output_path)
    table_format(input_path)
    columns = read_columns(input_path)
    check_text_column(columns, text_column, str(input_path), model.config.heads, explain)
    work = _work_dir(output_path)
    manifest = {**_manifest(model, input_path, text_column, out_format), "explain": explain}
    done = _prepare_work_dir(work, manifest, resume)
    total = count_rows(input_path)
    parts = [_part_path(work, number, out_format) for number in range(len(done))]
    resumed = rows = sum(part_rows for part_rows, _ in done)
    errors = sum(part_errors for _, part_errors in done)
    bar = tqdm(total=total, unit="rows", desc="scoring", disable=not progress, dynamic_ncols=True, smoothing=0.1)
    bar.update(resumed)
    for chunk in _chunks_after(input_path, chunk_size, resumed):
        number = len(parts)
        part = _part_path(work, number, out_format)
        parts.append(part)
        scored = score_frame(model, chunk, text_column, batch_size=batch_size, explain=explain)
        write_part(scored, part, out_format)
        chunk_errors = int(scored["error"].notna().sum())
        _record_part(work, number, len(chunk), chunk_errors)
        rows += len(chunk)
        errors += chunk_errors
        bar.update(len(chunk))
    bar.close()
    if not parts:  # an input with a header and no rows still gives an output with every column
        part = _part_path(work, 0, out_format)
        write_part(pd.DataFrame(columns=[*columns, *prediction_columns(model.config.heads, explain)]), part,
                   out_format)
        parts.append(part)
    join_parts(parts, output_path, out_format)
    shutil.rmtree(work, ignore_errors=True)
    if resumed:
        logger.info("resumed: %d rows were already scored by the interrupted run", resumed)
    return ScoreSummary(rows=rows, errors=errors, seconds=time.monotonic() - started, resumed_rows=resumed)


def _work_dir(output_path: Path) -> Path:
    return output_path.parent / f".{output_path.name}.earshot-parts"


def _part_path(work: Path, number: int, out_format: str) -> Path:
    return work / f"part-{number:06d}.{out_format}"


def _chunks_after(input_path: Path, chunk_size: int, skip: int) -> Iterator[pd.DataFrame]:
    """The input's chunks from row ``skip`` on (rows before it were scored by an interrupted run)."""
    seen = 0
    for chunk in read_chunks(input_path, chunk_size):
        start, seen = max(0, skip - seen), seen + len(chunk)
        if start < len(chunk):
            yield chunk.iloc[start:] if start else chunk


def _manifest(model: EarshotModel, input_path: Path, text_column: str, out_format: str) -> dict:
    """What a resumed run must share with the interrupted one: the input, the model and how it runs
    (another backend, or compiling, moves scores by rounding)."""
    stat = input_path.stat()
    return {"input": str(input_path.resolve()), "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "text_column": text_column, "format": out_format, "model": model.version, "backend": model.backend}


def _prepare_work_dir(work: Path, manifest: dict, resume: bool) -> list[tuple[int, int]]:
    """Create the work folder; with ``resume``, the rows and errors of each part an earlier run completed."""
    manifest_file = work / "manifest.json"
    if resume and manifest_file.is_file():
        previous = json.loads(manifest_file.read_text(encoding="utf-8"))
        changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
        if changed:
            raise ValueError(f"cannot resume: {changed} changed since the interrupted run; "
                             f"run without --resume to start over (this deletes {work})")
        done = _done_parts(work)
        logger.info("resuming: %d chunks, %d rows already scored", len(done), sum(rows for rows, _ in done))
        return done
    if work.exists():
        if not resume:
            logger.info("starting over: removing the parts of an earlier interrupted run in %s", work)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_text_atomic(work / "manifest.json", json.dumps(manifest))
    return []


def _done_parts(work: Path) -> list[tuple[int, int]]:
    """Rows and errors of the consecutive parts, from the first, recorded as complete."""
    log = work / "parts.jsonl"
    done: list[tuple[int, int]] = []
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a crash: the parts before it are the complete ones
            if record.get("part") != len(done):
                break
            done.append((int(record["rows"]), int(record["errors"])))
    return done


def _record_part(work: Path, number: int, rows: int, errors: int) -> None:
    with open(work / "parts.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps({"part": number, "rows": rows, "errors": errors}) + "\n")
