"""Streaming reads and writes of CSV, TSV, JSONL and Parquet tables, in chunks of rows.

Memory stays flat whatever the file size: only one chunk is held at a time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def table_format(path: Path) -> str:
    """The format named by a file's extension, or a ValueError listing the ones supported."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; use one of {sorted(FORMATS)}")
    return fmt


def count_rows(path: Path) -> int | None:
    """Rows in a table, cheaply: exact for Parquet and JSONL; for CSV, lines (exact unless cells hold newlines)."""
    fmt = table_format(path)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    lines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            lines += block.count(b"\n")
    return max(lines - (1 if fmt in ("csv", "tsv") else 0), 0)


def read_columns(path: Path) -> list[str]:
    """Column names, read from the header / schema / first record only."""
    fmt = table_format(path)
    if fmt == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    first = next(read_chunks(path, 1), None)
    return list(first.columns) if first is not None else []


def read_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The table as DataFrames of ``chunk_size`` rows, in file order.

    CSV/TSV cells are read as text, exactly as written (no number or NA guessing), so that every
    input value comes out unchanged.
    """
    fmt = table_format(path)
    if fmt in ("csv", "tsv"):
        yield from pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               na_filter=False, chunksize=chunk_size, encoding="utf-8")
    elif fmt == "jsonl":
        yield from pd.read_json(path, lines=True, chunksize=chunk_size, dtype=False, convert_dates=False,
                                encoding="utf-8")
    else:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()


def write_part(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write one chunk as a complete file of its own, atomically."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        tmp = handle.name
    try:
        if fmt in ("csv", "tsv"):
            frame.to_csv(tmp, sep="\t" if fmt == "tsv" else ",", index=False, encoding="utf-8")
        elif fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def join_parts(parts: Sequence[Path], output: Path, fmt: str) -> None:
    """Concatenate part files into ``output`` via a temporary file and a rename.

    A crash at any moment leaves either no output or the complete one, never a half-written file.
    """
    with tempfile.NamedTemporaryFile(dir=output.parent, prefix=f".{output.name}.", delete=False) as handle:
        tmp = handle.name
    try:
        if fmt == "parquet":
            _join_parquet(parts, tmp)
        else:
            with open(tmp, "wb") as out:
                for number, part in enumerate(parts):
                    with open(part, "rb") as source:
                        if fmt in ("csv", "tsv") and number > 0:
                            source.readline()  # every part carries the header; keep the first only
                        while block := source.read(1 << 24):
                            out.write(block)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _join_parquet(parts: Sequence[Path], tmp: str) -> None:
    # A column that is all-null in one chunk has type null there: write every part in the unified schema.
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts]) if parts else pa.schema([])
    with pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).select(schema.names).cast(schema))
