"""The one registry of table formats, with streaming reads and atomic writes in chunks of rows.

Training, evaluation, scoring, splitting and reports all read and write through here, so every
command takes the same formats. Memory stays flat whatever the file size: only one chunk is held
at a time (a ``.json`` file holding one JSON array is the exception: it is read whole).

| extension | format                                              |
|-----------|-----------------------------------------------------|
| .csv      | comma-separated, cells read as text, exactly as written |
| .tsv      | tab-separated, likewise                             |
| .jsonl    | one JSON object per line                            |
| .json     | a JSON array of objects, or JSON lines              |
| .parquet  | Apache Parquet                                      |
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .files import atomic_path

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl", "json"})
_BLOCK = 1 << 24


def table_format(path: Path) -> str:
    """The format named by a file's extension, or a ValueError listing the ones supported."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; use one of {sorted(FORMATS)}")
    return fmt


def count_rows(path: Path) -> int | None:
    """Rows in a table, cheaply: exact for Parquet and JSONL; for CSV, lines (exact unless cells hold
    newlines); None for a JSON array."""
    fmt = table_format(path)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "json" and _is_json_array(path):
        return None
    lines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            lines += block.count(b"\n")
    return max(lines - (1 if fmt in ("csv", "tsv") else 0), 0)


def read_columns(path: Path) -> list[str]:
    """Column names, read from the header / schema / first record only."""
    fmt = table_format(path)
    if fmt == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    first = next(read_chunks(path, 1), None)
    return [str(c) for c in first.columns] if first is not None else []


def read_table(path: Path) -> pd.DataFrame:
    """A whole table as one DataFrame (for data that fits in memory: training, evaluation, splits)."""
    chunks = list(read_chunks(path, 100_000))
    if not chunks:
        return pd.DataFrame(columns=read_columns(path) if table_format(path) == "parquet" else [])
    return pd.concat(chunks, ignore_index=True)


def read_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The table as DataFrames of ``chunk_size`` rows, in file order.

    CSV/TSV cells are read as text, exactly as written (no number or NA guessing), so that every
    input value comes out unchanged.
    """
    fmt = table_format(path)
    if fmt in ("csv", "tsv"):
        yield from pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               na_filter=False, chunksize=chunk_size, encoding="utf-8")
    elif fmt == "json" and _is_json_array(path):
        whole = pd.read_json(path, dtype=False, convert_dates=False, encoding="utf-8")
        for start in range(0, len(whole), chunk_size):
            yield whole.iloc[start: start + chunk_size].reset_index(drop=True)
    elif fmt in ("jsonl", "json"):
        if path.stat().st_size == 0:
            return
        yield from pd.read_json(path, lines=True, chunksize=chunk_size, dtype=False, convert_dates=False,
                                encoding="utf-8")
    else:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()


def _is_json_array(path: Path) -> bool:
    with open(path, "rb") as handle:
        start = handle.read(4096).lstrip()
    return start.startswith(b"[")


def write_part(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write one chunk as a complete file of its own, atomically (``.json``: an array of records)."""
    with atomic_path(path) as tmp:
        if fmt in ("csv", "tsv"):
            frame.to_csv(tmp, sep="\t" if fmt == "tsv" else ",", index=False, encoding="utf-8")
        elif fmt in ("jsonl", "json"):
            frame.to_json(tmp, orient="records", lines=fmt == "jsonl", force_ascii=False)
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)


def join_parts(parts: Sequence[Path], output: Path, fmt: str) -> None:
    """Concatenate part files into ``output`` via a temporary file and a rename.

    A crash at any moment leaves either no output or the complete one, never a half-written file.
    """
    with atomic_path(output) as tmp:
        if fmt == "parquet":
            _join_parquet(parts, tmp)
        elif fmt == "json":
            _join_json_arrays(parts, tmp)
        else:
            with open(tmp, "wb") as out:
                for number, part in enumerate(parts):
                    with open(part, "rb") as source:
                        if fmt in ("csv", "tsv") and number > 0:
                            source.readline()  # every part carries the header; keep the first only
                        while block := source.read(_BLOCK):
                            out.write(block)


def _join_json_arrays(parts: Sequence[Path], tmp: Path) -> None:
    """One JSON array of every part's records (each part is an array of one chunk)."""
    with open(tmp, "wb") as out:
        out.write(b"[")
        wrote = False
        for part in parts:
            inner = part.read_bytes().strip()[1:-1].strip()
            if inner:
                out.write((b"," if wrote else b"") + inner)
                wrote = True
        out.write(b"]\n")


def _join_parquet(parts: Sequence[Path], tmp: Path) -> None:
    # A column that is all-null in one chunk has type null there: write every part in the unified schema.
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts]) if parts else pa.schema([])
    with pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).select(schema.names).cast(schema))
