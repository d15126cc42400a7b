"""Where a model came from: data file, checksum, columns and software versions, kept in its config."""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data import ColumnMapping, LoadedData


def file_sha256(path: Path) -> str:
    """Checksum of a file, or of every file in a folder (saved datasets), in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_provenance(data_path: Path, mapping: ColumnMapping, data: LoadedData, train_rows: int,
                    validation_rows: int, validation_path: Path | None = None, licence: str = "") -> dict[str, Any]:
    """The provenance record stored under ``earshot.provenance`` in the model's config."""
    import torch
    import transformers

    return {
        "data_file": data_path.name,
        "data_sha256": file_sha256(data_path),
        "data_licence": licence,
        "validation_file": validation_path.name if validation_path else None,
        "columns": {"text": mapping.text, "sentiment": mapping.sentiment, "pain_points": mapping.pain_points,
                    "none_labels": list(mapping.none_labels)},
        "rows_read": len(data.examples) + len(data.skipped),
        "rows_skipped": len(data.skipped),
        "train_rows": train_rows,
        "validation_rows": validation_rows,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
