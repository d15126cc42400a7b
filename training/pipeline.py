"""The training pipeline below the command line: read and check the data, build the heads, fit a model.

``earshot train``, ``earshot retrain``, ``earshot distill`` and the benchmarks call these functions;
the CLI only turns flags into a ``DataSources`` and a ``TrainingConfig``.

Example:
    >>> sources = DataSources(data=Path("tickets.csv"), mapping=ColumnMapping(
    ...     heads=(HeadColumn("sentiment", "single", "mood"),)))
    >>> config = TrainingConfig(output_dir="runs/tickets")
    >>> model = fit(config, load_training_set(sources, config.seed))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from earshot.files import write_text_atomic
from earshot.model import DEFAULT_BASE_MODEL, NAMES_MODEL_DIR, EarshotModel, Head
from earshot.model.modeling import is_model_folder

from .config import TrainingConfig
from .data import (ColumnMapping, DataError, Example, HeadColumn, LoadedData, read_examples, sample_per_label,
                   short_labels, split_validation)
from .provenance import data_provenance
from .taxonomy import Taxonomy, read_taxonomy

logger = logging.getLogger("earshot")
TAXONOMY_NAME = "taxonomy.yaml"


@dataclass(frozen=True)
class DataSources:
    """Where training rows come from and how to read them.

    ``mapping``: the label columns of ``data`` (None: only with a ``taxonomy`` and no ``data``, where the
    validation file's columns are the taxonomy's heads). ``per_label``: train on at most that many rows
    of each label (seeded); ``exclude``: a file whose ``row`` column lists data rows to leave out (an
    audit's output); ``licence``: the data's licence, for the model card. ``source_column`` names a
    column of ``data`` that says where each row comes from (and ``licence_column`` under which licence):
    the model card then counts each source's training rows per label.
    """

    data: Path | None = None
    mapping: ColumnMapping | None = None
    taxonomy: Path | None = None
    validation: Path | None = None
    validation_fraction: float = 0.1
    per_label: int | None = None
    exclude: Path | None = None
    skip_bad_rows: bool = False
    licence: str = ""
    text_column: str = "text"
    none_labels: tuple[str, ...] = ()
    unknown_labels: tuple[str, ...] = ()
    source_column: str | None = None
    licence_column: str | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.taxonomy is None:
            raise DataError("give --data (labelled rows), --taxonomy (labels with descriptions), or both")
        if self.data is not None and self.mapping is None:
            ColumnMapping(text=self.text_column)  # raises: name the label columns
        if self.per_label is not None and self.per_label < 1:
            raise DataError(f"--per-label must be at least 1, got {self.per_label}")


@dataclass
class TrainingSet:
    """Heads to train, training and validation rows, and where they came from (the model card's provenance)."""

    heads: list[Head]
    train: list[Example]
    validation: list[Example]
    provenance: dict[str, Any] = field(default_factory=dict)
    taxonomy: Path | None = None  # the taxonomy file the heads come from, copied beside the trained model


def read_checked(path: Path, mapping: ColumnMapping, *, skip_bad_rows: bool = False,
                 known_labels: dict[str, list[str]] | None = None) -> LoadedData:
    """``read_examples``, with the rows skipped by ``skip_bad_rows`` logged by row and column."""
    data = read_examples(path, mapping, skip_bad_rows=skip_bad_rows, known_labels=known_labels)
    if data.skipped:
        shown = "\n  ".join(str(s) for s in data.skipped[:20])
        more = f"\n  ... and {len(data.skipped) - 20} more" if len(data.skipped) > 20 else ""
        logger.warning("skipped %d bad rows of %s:\n  %s%s", len(data.skipped), data.source, shown, more)
    return data


def load_training_set(sources: DataSources, seed: int) -> TrainingSet:
    """Read and check the data and taxonomy: heads, training and validation rows, provenance."""
    taxonomy = read_taxonomy(sources.taxonomy) if sources.taxonomy is not None else None
    if sources.data is None:
        return _taxonomy_only(sources, taxonomy)
    mapping = sources.mapping
    known = _taxonomy_labels(taxonomy, mapping) if taxonomy is not None else None
    data = read_checked(sources.data, mapping, skip_bad_rows=sources.skip_bad_rows, known_labels=known)
    read = len(data.examples)
    if sources.exclude is not None:
        data = exclude_rows(data, sources.exclude)
    heads = ([taxonomy.head(h.name).head() for h in mapping.heads] if taxonomy is not None
             else data.heads(mapping))
    if sources.validation is not None:
        validation = read_checked(sources.validation, mapping, skip_bad_rows=sources.skip_bad_rows,
                                  known_labels={head.name: head.labels for head in heads})
        train, held = data.examples, validation.examples
    else:
        train, held = split_validation(data.examples, sources.validation_fraction, seed)
    if sources.per_label is not None:
        train = _sample(train, heads, sources.per_label, seed, taxonomy is not None)
    provenance = data_provenance(sources.data, mapping, data, len(train), len(held),
                                 validation_path=sources.validation, licence=sources.licence)
    if sources.exclude is not None:
        provenance["excluded"] = {"file": sources.exclude.name, "rows": read - len(data.examples)}
    if sources.source_column is not None:
        provenance["sources"] = source_counts(sources, train, heads)
    if taxonomy is not None:
        provenance["taxonomy"] = sources.taxonomy.name
        train = [*train, *taxonomy.examples()]
    return TrainingSet(heads, train, held, provenance, sources.taxonomy)


def fit(config: TrainingConfig, training: TrainingSet, *, base_model: str | None = None, label: str = "",
        max_length: int | None = None, resume: bool = False) -> EarshotModel:
    """Train a fresh model on the base encoder and save it in ``config.output_dir``.

    The base is ``base_model`` when given; else, for a taxonomy from names alone (the ``names`` recipe),
    the shipped encoder aligned with label descriptions (``model/names``); else all-MiniLM-L6-v2.
    """
    import torch

    from .trainer import Trainer

    torch.manual_seed(config.seed)  # the heads' initial weights
    extra = {"max_length": max_length} if max_length is not None else {}
    base = base_model or default_base(config, training.train)
    model = EarshotModel.from_base(base, training.heads, label=label, **extra)
    model.config.provenance = training.provenance
    logger.info("training on %d rows, validating on %d; heads %s", len(training.train), len(training.validation),
                ", ".join(f"{h.name} ({h.kind}, {len(h.labels)} labels)" for h in training.heads))
    result = Trainer(model, training.train, training.validation, config).train(resume=resume)
    if training.taxonomy is not None:  # the labels' descriptions travel with the model
        write_text_atomic(Path(config.output_dir) / TAXONOMY_NAME, training.taxonomy.read_text(encoding="utf-8"))
    logger.info("done in %.0f s: best epoch %d of %d, validation score %.4f; model %s in %s",
                result.seconds, result.best_epoch, result.epochs_run, result.best_score, model.version,
                config.output_dir)
    return model


def default_base(config: TrainingConfig, train: Sequence[Example]) -> str:
    """The base encoder when none is named: the shipped aligned encoder (``model/names``) for a run that
    takes the ``names`` recipe (as configured, or under "auto" when every row is a description), where it
    is installed; all-MiniLM-L6-v2 otherwise, whose fine-tuning the other recipes were measured on.

    Example:
        >>> default_base(TrainingConfig(output_dir="runs/x"), data_rows)
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    names = config.recipe == "names" or (config.recipe == "auto" and all(example.row == 0 for example in train))
    return str(NAMES_MODEL_DIR) if names and is_model_folder(NAMES_MODEL_DIR) else DEFAULT_BASE_MODEL


def source_counts(sources: DataSources, train: Sequence[Example], heads: Sequence[Head]) -> dict[str, Any]:
    """Per source (``source_column``): its licence, training rows, and rows per label of each head."""
    from .data import load_table

    columns = [c for c in (sources.source_column, sources.licence_column) if c]
    table = load_table(sources.data)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{sources.data}: no column(s) {missing} (--source-column, --licence-column); found "
                        f"{[str(c) for c in table.columns]}")
    names = table[sources.source_column].fillna("").astype(str).tolist()
    licences = table[sources.licence_column].fillna("").astype(str).tolist() if sources.licence_column else None
    found: dict[str, Any] = {}
    for example in train:
        name = names[example.row - 1] or "(not stated)"
        entry = found.setdefault(name, {"licences": set(), "rows": 0, "labels": {head.name: {} for head in heads}})
        if licences and licences[example.row - 1]:
            entry["licences"].add(licences[example.row - 1])
        entry["rows"] += 1
        for head in heads:
            value = example.labels.get(head.name)
            for label in ((value,) if isinstance(value, str) else value or ()):
                entry["labels"][head.name][label] = entry["labels"][head.name].get(label, 0) + 1
    return {name: {"licence": "; ".join(sorted(entry.pop("licences"))), **entry}
            for name, entry in sorted(found.items())}


def exclude_rows(data: LoadedData, listing: Path) -> LoadedData:
    """``data`` without the rows listed in ``listing``; a listed row the data does not have is an error."""
    from .audit import excluded_rows

    rows = excluded_rows(listing)
    present = {e.row for e in data.examples} | {s.row for s in data.skipped}
    missing = sorted(rows - present)
    if missing:
        raise DataError(f"{listing}: rows {missing[:10]} are not in {data.source} ({len(present)} rows); "
                        "was the audit made on another file?")
    kept = [e for e in data.examples if e.row not in rows]
    logger.info("--exclude: leaving out %d rows listed in %s", len(data.examples) - len(kept), listing)
    return replace(data, examples=kept)


def _taxonomy_only(sources: DataSources, taxonomy: Taxonomy) -> TrainingSet:
    """Heads and rows from the taxonomy's descriptions alone; --validation read in its heads' columns."""
    heads = [head.head() for head in taxonomy.heads]
    validation: list[Example] = []
    if sources.validation is not None:
        mapping = sources.mapping or ColumnMapping(
            text=sources.text_column, heads=tuple(HeadColumn(h.name, h.kind, h.name) for h in taxonomy.heads),
            none_labels=sources.none_labels, unknown_labels=sources.unknown_labels)
        validation = read_checked(sources.validation, mapping, skip_bad_rows=sources.skip_bad_rows,
                                  known_labels={h.name: h.labels for h in heads}).examples
    provenance = {"taxonomy": sources.taxonomy.name, "train_rows": 0, "validation_rows": len(validation)}
    return TrainingSet(heads, taxonomy.examples(), validation, provenance, sources.taxonomy)


def _taxonomy_labels(taxonomy: Taxonomy, mapping: ColumnMapping) -> dict[str, list[str]]:
    """Each mapped head's labels from the taxonomy; a mapped head it lacks, or a kind it contradicts, is an error."""
    known = {}
    for column in mapping.heads:
        head = taxonomy.head(column.name)
        if head is None:
            raise DataError(f"{taxonomy.source}: no head {column.name!r} for the column {column.column!r} "
                            f"({column.flag}); its heads: {[h.name for h in taxonomy.heads]}")
        if head.kind != column.kind:
            raise DataError(f"{taxonomy.source}: head {column.name!r} is {head.kind} there but {column.kind} "
                            f"in {column.flag}")
        known[column.name] = [label.name for label in head.labels]
    unmapped = [h.name for h in taxonomy.heads if h.name not in known]
    if unmapped:
        raise DataError(f"{taxonomy.source}: heads {unmapped} have no column in --data: add --head NAME:KIND:COLUMN")
    return known


def _sample(train: Sequence[Example], heads: Sequence[Head], per_label: int, seed: int,
            described: bool) -> list[Example]:
    """At most ``per_label`` rows of each label; labels with fewer are logged by name."""
    sample = sample_per_label(train, heads, per_label, seed)
    for head, counts in short_labels(sample, heads, per_label).items():
        logger.warning("--per-label %d: %s labels have fewer rows, all of them kept: %s", per_label, head,
                       ", ".join(f"{label} ({n})" for label, n in counts.items()))
        scarce = [label for label, n in counts.items() if n < 2]
        if scarce:
            logger.warning("%s labels with fewer than 2 rows (the contrastive stage pairs rows of a label; these "
                           "learn from %s alone): %s", head, "their taxonomy description and" if described
                           else "their one row, if any,", ", ".join(scarce))
    return sample
