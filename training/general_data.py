"""The general customer-feedback dataset: every commercially usable source mapped onto one taxonomy.

Three kinds of file live in ``training/general/`` (installed with the package):

* ``taxonomy.yaml``: the general heads ``sentiment`` (single), ``pain_points`` and ``praise_points``
  (multi), in the format of :func:`earshot.training.taxonomy.read_taxonomy`.
* ``sources.yaml``: where each source's files are under the shared data folder, which column holds
  the text and which the labels, licence and domain.
* ``mappings/<source>.csv``: one hand-reviewed row per source label, with the columns
  ``source_label,description,sentiment,pain_points,praise_points``. ``description`` says what the
  source label means; ``sentiment`` is one general sentiment or empty (cannot tell);
  ``pain_points`` and ``praise_points`` are ``;``-separated general labels or empty (none).

How a source row becomes a general row (:func:`build_general_rows`):

* A row's labels are its label cell split on ``;`` for multi-label sources; an empty cell is the
  empty label set ("none of this source's labels": no pain or praise point, sentiment unknown).
* Pain and praise points are the union of what the row's labels map to. For aspect sources (MAMS),
  the categories in the ``pain_points`` column contribute their mapped pain points and those in the
  ``praise_points`` column their mapped praise points.
* Sentiment is combined from the sentiments the row's labels map to, empty ones ignored
  (:func:`combine_sentiments`): both ``negative`` and ``positive`` -> unknown (the row trains the
  other heads only); one of them, with or without ``neutral`` -> that one (a problem report in a
  turn that also asks a neutral question is negative); only ``neutral`` -> ``neutral``; none ->
  unknown. So a GoEmotions row ``negative;positive`` has no sentiment, ``ambiguous;positive`` is
  positive, and ``ambiguous`` alone has none.
* Exact duplicate texts within a source are merged into one row whose label set is the union of
  the duplicates' labels (so a text labelled twice with different intents keeps both), at the
  position of its first occurrence.
* In the result an empty ``pain_points`` / ``praise_points`` cell means "none of them"; an empty
  ``sentiment`` means unknown. A source that never annotated a multi head (``unannotated`` in
  ``sources.yaml``: GoEmotions says how a Reddit comment feels, nothing about a company's pain
  points) gets ``unannotated`` in that head's cells, which ``earshot train --unknown-label
  unannotated`` reads as unknown: those rows train the other heads only, instead of teaching that
  an angry text names no pain point.

Errors are :class:`~earshot.training.data.DataError` (a ``ValueError``) naming the file, the line or
data row (1-based, header not counted) and the label.

Example:
    >>> mapping = read_mapping("banking77")
    >>> mapping["card_arrival"].pain_points, mapping["card_arrival"].sentiment
    (('Delays',), 'negative')
    >>> rows = build_general_rows(Path("../shared/data"), ["banking77", "mams"])
    >>> list(rows.columns)
    ['text', 'sentiment', 'pain_points', 'praise_points', 'source', 'source_labels']
    >>> label_counts(rows)["pain_points"]["Delays"]["banking77"]
    1437
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from earshot.model.heads import MULTI, SINGLE

from .data import DataError
from .taxonomy import read_taxonomy

GENERAL_DIR = Path(__file__).resolve().parent / "general"
TAXONOMY_PATH = GENERAL_DIR / "taxonomy.yaml"
SOURCES_PATH = GENERAL_DIR / "sources.yaml"
MAPPINGS_DIR = GENERAL_DIR / "mappings"

MAPPING_COLUMNS = ("source_label", "description", "sentiment", "pain_points", "praise_points")
OUTPUT_COLUMNS = ("text", "sentiment", "pain_points", "praise_points", "source", "source_labels")
HEAD_KINDS = {"sentiment": SINGLE, "pain_points": MULTI, "praise_points": MULTI}
SEPARATOR = ";"
NEUTRAL = "neutral"
UNKNOWN = "(unknown)"  # label_counts key for rows without a sentiment
NONE = "(none)"  # label_counts key for rows with no pain (or praise) point
UNANNOTATED = "unannotated"  # the cell of a multi head that a source never annotated (see the module docstring)
NOT_ANNOTATED = "(not annotated)"  # label_counts key for those cells


@dataclass(frozen=True)
class MappedLabel:
    """What one source label means and maps to in the general taxonomy.

    Example:
        >>> label = MappedLabel("A refund has not arrived.", "negative", ("Refunds and returns", "Delays"), ())
        >>> label.sentiment, label.pain_points
        ('negative', ('Refunds and returns', 'Delays'))
    """

    description: str
    sentiment: str | None
    pain_points: tuple[str, ...]
    praise_points: tuple[str, ...]


@dataclass(frozen=True)
class SourceSpec:
    """How to read one source: its files (relative to the data folder) and columns.

    ``label_column`` holds the labels of an intent or sentiment source; ``aspect_columns`` (head ->
    column) holds the categories an aspect source mentions negatively (``pain_points``) and
    positively (``praise_points``). Exactly one of the two is set.

    Example:
        >>> spec = read_sources()["mams"]
        >>> spec.label_columns(), spec.files
        (('pain_points', 'praise_points'), ('mams/train.csv',))
    """

    name: str
    files: tuple[str, ...]
    text_column: str
    multi_label: bool
    label_column: str | None = None
    aspect_columns: Mapping[str, str] = field(default_factory=dict)
    validation_files: tuple[str, ...] = ()
    licence: str = ""
    domain: str = ""
    unannotated: tuple[str, ...] = ()  # multi heads this source says nothing about

    def label_columns(self) -> tuple[str, ...]:
        """The columns whose cells hold source labels, in the order they are read."""
        return (self.label_column,) if self.label_column else tuple(self.aspect_columns.values())


def general_labels(taxonomy_path: str | Path = TAXONOMY_PATH) -> dict[str, tuple[str, ...]]:
    """Head name -> its label names, from the general taxonomy; checks the three heads and kinds.

    Example:
        >>> general_labels()["sentiment"]
        ('negative', 'neutral', 'positive')
    """
    taxonomy = read_taxonomy(taxonomy_path)
    labels: dict[str, tuple[str, ...]] = {}
    for name, kind in HEAD_KINDS.items():
        head = taxonomy.head(name)
        if head is None or head.kind != kind:
            found = f"kind {head.kind!r}" if head is not None else "no such head"
            raise DataError(f"{taxonomy_path}: the general taxonomy needs a {kind} head {name!r} ({found})")
        labels[name] = tuple(label.name for label in head.labels)
    return labels


def read_sources(path: str | Path = SOURCES_PATH) -> dict[str, SourceSpec]:
    """Source name -> :class:`SourceSpec`, in file order, from a ``sources.yaml``.

    Example:
        >>> read_sources()["banking77"].label_column
        'category'
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"{path}: cannot read the sources file ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML ({error})") from None
    entries = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DataError(f"{path}: expected a mapping 'sources:' of source name -> files and columns")
    return {str(name): _source_spec(path, str(name), entry) for name, entry in entries.items()}


def _source_spec(path: str | Path, name: str, entry: Any) -> SourceSpec:
    where = f"{path}, source {name!r}"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a mapping with files, text_column and label_column")
    files = entry.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise DataError(f"{where}: 'files' must be a non-empty list of paths relative to the data folder")
    label_column = entry.get("label_column")
    aspects = entry.get("label_columns") or {}
    if bool(label_column) == bool(aspects):
        raise DataError(f"{where}: give exactly one of 'label_column' (a column name) or 'label_columns' "
                        "({pain_points: COLUMN, praise_points: COLUMN})")
    if aspects and (not isinstance(aspects, dict) or not set(aspects) <= {"pain_points", "praise_points"}):
        raise DataError(f"{where}: 'label_columns' maps pain_points and/or praise_points to columns, got {aspects!r}")
    if not isinstance(entry.get("text_column"), str) or not entry["text_column"]:
        raise DataError(f"{where}: 'text_column' is missing")
    unannotated = entry.get("unannotated") or []
    if not isinstance(unannotated, list) or not set(unannotated) <= {"pain_points", "praise_points"}:
        raise DataError(f"{where}: 'unannotated' lists heads the source never annotated, of pain_points and "
                        f"praise_points; got {unannotated!r}")
    return SourceSpec(name=name, files=tuple(files), text_column=entry["text_column"],
                      multi_label=bool(entry.get("multi_label", False)),
                      label_column=str(label_column) if label_column else None,
                      aspect_columns={str(k): str(v) for k, v in aspects.items()},
                      validation_files=tuple(entry.get("validation_files") or ()),
                      licence=str(entry.get("licence", "")), domain=str(entry.get("domain", "")),
                      unannotated=tuple(unannotated))


def read_mapping(source: str, mappings_dir: str | Path = MAPPINGS_DIR,
                 taxonomy_path: str | Path = TAXONOMY_PATH) -> dict[str, MappedLabel]:
    """Source label -> :class:`MappedLabel`, from ``<mappings_dir>/<source>.csv``.

    Every general label named must be a label of its head in the taxonomy; a bad row raises a
    DataError naming the file, the line and the label.

    Example:
        >>> complaint = read_mapping("bitext")["complaint"]
        >>> complaint.description
        'The customer wants to file a complaint against the company.'
        >>> complaint.sentiment, complaint.pain_points, complaint.praise_points
        ('negative', ('Customer service',), ())
    """
    path = Path(mappings_dir) / f"{source}.csv"
    labels = general_labels(taxonomy_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read the mapping table of source {source!r} ({error.strerror})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != MAPPING_COLUMNS:
        raise DataError(f"{path}, line 1: expected the header {','.join(MAPPING_COLUMNS)}, found {header}")
    mapping: dict[str, MappedLabel] = {}
    lines: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(MAPPING_COLUMNS):
            raise DataError(f"{path}, line {line}: expected {len(MAPPING_COLUMNS)} cells, found {len(cells)}")
        name, description, sentiment, pain, praise = (cell.strip() for cell in cells)
        if not name:
            raise DataError(f"{path}, line {line}: empty source_label")
        if name in mapping:
            raise DataError(f"{path}, line {line}: source label {name!r} appears twice (first at line {lines[name]})")
        if not description or "\n" in description:
            raise DataError(f"{path}, line {line}: source label {name!r} needs a one-line description")
        where = f"{path}, line {line}, source label {name!r}"
        mapping[name] = MappedLabel(
            description=description,
            sentiment=_check_labels(where, "sentiment", [sentiment] if sentiment else [], labels, taxonomy_path)[0]
            if sentiment else None,
            pain_points=_check_labels(where, "pain_points", _split(pain), labels, taxonomy_path),
            praise_points=_check_labels(where, "praise_points", _split(praise), labels, taxonomy_path))
        lines[name] = line
    return mapping


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(SEPARATOR)] if cell.strip() else []


def _check_labels(where: str, head: str, names: Sequence[str], labels: Mapping[str, tuple[str, ...]],
                  taxonomy_path: str | Path) -> tuple[str, ...]:
    for name in names:
        if name not in labels[head]:
            raise DataError(f"{where}: {head} label {name!r} is not a label of head {head!r} in {taxonomy_path} "
                            f"(its labels: {', '.join(labels[head])})")
    if len(set(names)) != len(names):
        raise DataError(f"{where}: {head} names a label twice: {SEPARATOR.join(names)}")
    return tuple(names)


def combine_sentiments(values: Iterable[str | None]) -> str | None:
    """One sentiment from the sentiments a row's labels map to, or None (unknown).

    Empty values are ignored; ``negative`` with ``positive`` is unknown; a polar value outweighs
    ``neutral``.

    Example:
        >>> combine_sentiments(["neutral", "negative", None])
        'negative'
        >>> combine_sentiments(["negative", "positive"]) is None
        True
        >>> combine_sentiments([None]) is None
        True
    """
    found = {value for value in values if value}
    polar = found - {NEUTRAL}
    if len(polar) > 1:
        return None
    if polar:
        return polar.pop()
    return NEUTRAL if found else None


def split_labels(cell: str, multi_label: bool) -> tuple[str, ...]:
    """A label cell's labels: ``;``-separated when ``multi_label``; an empty cell has none.

    Example:
        >>> split_labels("why;card", True), split_labels("", False)
        (('why', 'card'), ())
    """
    if not cell.strip():
        return ()
    return tuple(part.strip() for part in cell.split(SEPARATOR) if part.strip()) if multi_label else (cell.strip(),)


def source_labels(spec: SourceSpec, data_dir: str | Path, include_validation: bool = True) -> set[str]:
    """Every label that occurs in a source's label column(s), over its training (and validation) files.

    Example:
        >>> sorted(source_labels(read_sources()["goemotions"], Path("../shared/data")))
        ['ambiguous', 'negative', 'neutral', 'positive']
    """
    found: set[str] = set()
    files = (*spec.files, *spec.validation_files) if include_validation else spec.files
    for relative in files:
        frame = _read_data(Path(data_dir) / relative, spec.label_columns())
        for column in spec.label_columns():
            for cell in frame[column]:
                found.update(split_labels(cell, spec.multi_label))
    return found


def _read_data(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV file, every cell a string (empty cells as '')."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except OSError as error:
        raise DataError(f"{path}: cannot read the data file ({error.strerror or error})") from None
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (found: {', '.join(map(str, header))}); "
                        "check its entry in sources.yaml")
    return pd.read_csv(path, usecols=list(dict.fromkeys(columns)), dtype=str, keep_default_na=False)


def build_general_rows(data_dir: str | Path, sources: list[str] | None = None, *,
                       sources_path: str | Path = SOURCES_PATH, mappings_dir: str | Path = MAPPINGS_DIR,
                       taxonomy_path: str | Path = TAXONOMY_PATH) -> pd.DataFrame:
    """The training files of ``sources`` (default: all in ``sources_path``) as general-taxonomy rows.

    Columns: ``text, sentiment, pain_points, praise_points, source, source_labels`` (the source's own
    labels of the text, ``;``-joined); pain and praise points are
    ``;``-joined in taxonomy order (empty: none), sentiment is empty where unknown. See the module
    docstring for how labels combine and duplicates merge. A label missing from its mapping table
    raises a DataError naming the source, the file, the row and the label.

    Example:
        >>> rows = build_general_rows(Path("../shared/data"), ["bitext"])
        >>> row = rows[rows.text == "I need help to file a consumer complaint"].iloc[0]
        >>> row.sentiment, row.pain_points, row.praise_points, row.source
        ('negative', 'Customer service', '', 'bitext')
    """
    specs = read_sources(sources_path)
    names = list(specs) if sources is None else list(sources)
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise DataError(f"{sources_path}: no source {unknown[0]!r} (sources: {', '.join(specs)})")
    order = general_labels(taxonomy_path)
    frames = [_general_rows(specs[name], Path(data_dir), read_mapping(name, mappings_dir, taxonomy_path),
                            Path(mappings_dir) / f"{name}.csv", order) for name in names]
    if not frames:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _general_rows(spec: SourceSpec, data_dir: Path, mapping: Mapping[str, MappedLabel], mapping_path: Path,
                  order: Mapping[str, tuple[str, ...]]) -> pd.DataFrame:
    merged = _merged_labels(spec, data_dir, mapping, mapping_path)
    pain_column = spec.aspect_columns.get("pain_points", spec.label_column)
    praise_column = spec.aspect_columns.get("praise_points", spec.label_column)
    records = []
    for text, by_column in merged.items():
        every = [mapping[label] for labels in by_column.values() for label in labels]
        pain = {p for label in by_column.get(pain_column, ()) for p in mapping[label].pain_points}
        praise = {p for label in by_column.get(praise_column, ()) for p in mapping[label].praise_points}
        cells = {head: UNANNOTATED if head in spec.unannotated else SEPARATOR.join(p for p in order[head] if p in found)
                 for head, found in (("pain_points", pain), ("praise_points", praise))}
        records.append((text, combine_sentiments(m.sentiment for m in every) or "",
                        cells["pain_points"], cells["praise_points"], spec.name,
                        SEPARATOR.join(sorted({label for labels in by_column.values() for label in labels}))))
    return pd.DataFrame.from_records(records, columns=list(OUTPUT_COLUMNS))


def _merged_labels(spec: SourceSpec, data_dir: Path, mapping: Mapping[str, MappedLabel],
                   mapping_path: Path) -> dict[str, dict[str, set[str]]]:
    """Text -> label column -> its labels, duplicates merged, in order of first occurrence."""
    columns = spec.label_columns()
    merged: dict[str, dict[str, set[str]]] = {}
    for relative in spec.files:
        path = data_dir / relative
        frame = _read_data(path, (spec.text_column, *columns))
        for row, values in enumerate(zip(frame[spec.text_column], *(frame[c] for c in columns)), start=1):
            text = values[0]
            if not text.strip():
                raise DataError(f"source {spec.name!r}: {path}, row {row}: empty {spec.text_column!r}")
            entry = merged.setdefault(text, {column: set() for column in columns})
            for column, cell in zip(columns, values[1:]):
                for label in split_labels(cell, spec.multi_label):
                    if label not in mapping:
                        raise DataError(f"source {spec.name!r}: {path}, row {row}, column {column!r}: label "
                                        f"{label!r} is not in the mapping table {mapping_path}; add a row for it")
                    entry[column].add(label)
    return merged


def label_counts(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """Head -> label -> source -> number of rows, for a frame from :func:`build_general_rows`.

    Rows without a sentiment count under ``(unknown)``; rows without a pain (praise) point under
    ``(none)``, and those of a source that never annotated the head under ``(not annotated)``. Labels are
    sorted, those keys last.

    Example:
        >>> frame = pd.DataFrame({"text": ["a", "b"], "sentiment": ["negative", ""],
        ...                       "pain_points": ["Delays;Billing and charges", ""], "praise_points": ["", ""],
        ...                       "source": ["x", "x"]})
        >>> label_counts(frame)["pain_points"]
        {'Billing and charges': {'x': 1}, 'Delays': {'x': 1}, '(none)': {'x': 1}}
    """
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for head in HEAD_KINDS:
        empty = UNKNOWN if head == "sentiment" else NONE
        table: dict[str, dict[str, int]] = {}
        for cell, source in zip(frame[head], frame["source"]):
            found = (NOT_ANNOTATED,) if cell == UNANNOTATED else split_labels(cell, head != "sentiment")
            for label in (found or (empty,)):
                per_source = table.setdefault(label, {})
                per_source[source] = per_source.get(source, 0) + 1
        counts[head] = {label: table[label] for label in sorted(table, key=lambda name: (name.startswith("("), name))}
    return counts


WRITTEN_PATH = GENERAL_DIR / "written.csv"
WRITTEN = "written"  # the source name of the examples written for this project (written.csv)
WRITTEN_LICENCE = "Apache-2.0 (written for earshot)"


def with_licences(frame: pd.DataFrame, sources_path: str | Path = SOURCES_PATH) -> pd.DataFrame:
    """``frame`` with a ``licence`` column: each row's source's licence from ``sources.yaml``."""
    licences = {name: spec.licence for name, spec in read_sources(sources_path).items()}
    return frame.assign(licence=[licences.get(source, WRITTEN_LICENCE if source == WRITTEN else "")
                                 for source in frame["source"]])


def read_written(path: str | Path = WRITTEN_PATH, taxonomy_path: str | Path = TAXONOMY_PATH) -> pd.DataFrame:
    """The examples written for this project, as general rows (source ``written``); every label checked.

    Example:
        >>> read_written().source.unique().tolist()
        ['written']
    """
    frame = _read_data(Path(path), ("text", "sentiment", "pain_points", "praise_points"))
    labels = general_labels(taxonomy_path)
    for row, values in enumerate(frame.itertuples(index=False), start=1):
        where = f"{path}, row {row}"
        if not values.text.strip():
            raise DataError(f"{where}: empty text")
        _check_labels(where, "sentiment", [values.sentiment] if values.sentiment else [], labels, taxonomy_path)
        _check_labels(where, "pain_points", _split(values.pain_points), labels, taxonomy_path)
        _check_labels(where, "praise_points", _split(values.praise_points), labels, taxonomy_path)
    frame = frame.drop_duplicates("text").assign(source=WRITTEN, source_labels="")
    return frame[list(OUTPUT_COLUMNS)].reset_index(drop=True)


def held_out(frame: pd.DataFrame, fraction: float) -> pd.Series:
    """Which rows to hold out for testing: ``fraction`` of each source, chosen by a hash of the text, so a
    text is on the same side whatever else the data holds (a boolean Series).

    Example:
        >>> held_out(pd.DataFrame({"text": ["a", "b"], "source": ["x", "x"]}), 0.5).tolist()
        [True, False]
    """
    import hashlib

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    buckets = [int(hashlib.sha256(f"{s}\0{t}".encode()).hexdigest()[:8], 16) / 16 ** 8
               for s, t in zip(frame["source"], frame["text"])]
    return pd.Series([b < fraction for b in buckets], index=frame.index)


def cap_per_label(frame: pd.DataFrame, caps: Mapping[str, int], seed: int) -> pd.DataFrame:
    """At most ``caps[source]`` rows of each source label (its ``source_labels`` cell) of each source
    named in ``caps``, drawn with ``seed``; other sources whole. Keeps the row order.

    Large sources would otherwise drown the small ones and the written examples, and cost training
    time on what the model already knows from their first rows.
    """
    kept = []
    for (source, _labels), group in frame.groupby(["source", "source_labels"], sort=False):
        cap = caps.get(source)
        kept.append(group if cap is None or len(group) <= cap else group.sample(cap, random_state=seed))
    return pd.concat(kept).sort_index() if kept else frame
