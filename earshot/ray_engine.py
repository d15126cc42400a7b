"""``earshot score --engine ray``: the same scoring on Ray Data, locally or on a cluster.

Each actor of an actor pool loads the model once and calls the same :func:`earshot.scoring.score_frame`
as the local engine, so both give identical rows. Ray keeps the input order (``preserve_order``);
the driver writes the scored blocks through the same atomic part files as the local engine.

On a cluster, the input file must be readable at the same path on every node (a shared file system
or object storage URI), and the model folder too.

Example:
    >>> score_file_with_ray(Path("model/default"), Path("tickets.parquet"), Path("scored.parquet"))
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .extras import require
from .scoring import ScoreSummary, check_text_column, prediction_columns, score_frame
from .tables import join_parts, read_columns, table_format, write_part

logger = logging.getLogger(__name__)


class _Scorer:
    """A Ray actor: one model per actor, loaded in its constructor."""

    def __init__(self, model_dir: str, text_column: str, device: str | None, batch_size: int | None,
                 backend: str = "auto", compiled: bool = False) -> None:
        from .model import EarshotModel

        self.model = EarshotModel.from_pretrained(model_dir, device=device, backend=backend, compiled=compiled)
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return score_frame(self.model, frame, self.text_column, batch_size=self.batch_size)


def _read_dataset(path: Path, columns: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    fmt = table_format(path)
    if fmt in ("csv", "tsv"):
        # Every cell as text, as the local engine reads it: no number guessing ("1.50" stays "1.50").
        return ray.data.read_csv(
            str(path), parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    if fmt == "jsonl":
        return ray.data.read_json(str(path), lines=True)
    return ray.data.read_parquet(str(path))


def score_file_with_ray(model_dir: Path, input_path: Path, output_path: Path, text_column: str = "text",
                        address: str | None = None, actors: int | None = None, chunk_size: int = 4096,
                        batch_size: int | None = None, device: str | None = None,
                        num_gpus_per_actor: float = 0.0, backend: str = "auto",
                        compiled: bool = False) -> ScoreSummary:
    """Score ``input_path`` on Ray; output written atomically like the local engine's."""
    ray = require("ray", extra="ray", feature="--engine ray")
    DataContext = require("ray.data", extra="ray", feature="--engine ray").DataContext
    from .model import read_config

    started = time.monotonic()
    out_format = table_format(output_path)
    columns = read_columns(input_path)
    heads = read_config(model_dir).heads
    check_text_column(columns, text_column, str(input_path), heads)
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    try:
        DataContext.get_current().execution_options.preserve_order = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # Each actor takes a CPU for as long as the job runs; the read tasks need one too, or the job
        # waits forever. So at most CPUs - 1 actors (on CPU), and half the CPUs by default.
        ceiling = max(1, cpus - 1) if num_gpus_per_actor == 0 else None
        pool = actors or max(1, cpus // 2)
        if ceiling is not None and pool > ceiling:
            logger.warning("asked for %d actors on %d CPUs: using %d so that reading can proceed", pool, cpus, ceiling)
            pool = ceiling
        scored = _read_dataset(input_path, columns).map_batches(
            _Scorer, fn_constructor_kwargs={"model_dir": str(model_dir.resolve()), "text_column": text_column,
                                            "device": device, "batch_size": batch_size, "backend": backend,
                                            "compiled": compiled},
            batch_format="pandas", batch_size=chunk_size, concurrency=pool, num_gpus=num_gpus_per_actor)
        work = output_path.parent / f".{output_path.name}.earshot-ray-parts"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        parts, rows, errors = [], 0, 0
        for number, frame in enumerate(scored.iter_batches(batch_format="pandas", batch_size=chunk_size)):
            part = work / f"part-{number:06d}.{out_format}"
            write_part(frame, part, out_format)
            parts.append(part)
            rows += len(frame)
            errors += int(frame["error"].notna().sum())
        if not parts:
            part = work / f"part-000000.{out_format}"
            write_part(pd.DataFrame(columns=[*columns, *prediction_columns(heads)]), part, out_format)
            parts.append(part)
        join_parts(parts, output_path, out_format)
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if started_ray:
            ray.shutdown()
    return ScoreSummary(rows=rows, errors=errors, seconds=time.monotonic() - started)
