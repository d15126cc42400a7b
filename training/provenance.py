"""Where a model came from: data file, checksum, columns and software versions, kept in its config."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from earshot.files import sha256

from .data import ColumnMapping, LoadedData


def data_provenance(data_path: Path, mapping: ColumnMapping, data: LoadedData, train_rows: int,
                    validation_rows: int, validation_path: Path | None = None, licence: str = "") -> dict[str, Any]:
    """The provenance record stored under ``earshot.provenance`` in the model's config."""
    import torch
    import transformers

    return {
        "data_file": data_path.name,
        "data_sha256": sha256(data_path),
        "data_licence": licence,
        "validation_file": validation_path.name if validation_path else None,
        "columns": {"text": mapping.text, "heads": {h.name: h.column for h in mapping.heads},
                    "none_labels": list(mapping.none_labels), "unknown_labels": list(mapping.unknown_labels)},
        "rows_read": len(data.examples) + len(data.skipped),
        "rows_skipped": len(data.skipped),
        "train_rows": train_rows,
        "validation_rows": validation_rows,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
