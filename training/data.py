"""Reading labelled feedback from files, and checking it where it enters.

Every problem is reported with the file, the row (1-based, header not counted) and the column, so
that a data scientist can fix the file rather than guess.

Example:
    >>> data = read_examples("train.csv", ColumnMapping(sentiment="airline_sentiment",
    ...                      pain_points="negativereason", none_labels=("Can't Tell",)))
    >>> data.examples[0].text
    '@VirginAmerica What @dhepburn said.'
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import datasets

# Extension -> (datasets builder, extra builder arguments)
_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"keep_default_na": False, "na_filter": False}),
    ".tsv": ("csv", {"sep": "\t", "keep_default_na": False, "na_filter": False}),
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".parquet": ("parquet", {}),
}
_TEXT_FORMATS = {".csv", ".tsv", ".jsonl", ".json"}


class DataError(ValueError):
    """Bad training or evaluation data; the message names the file, row, column and value."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold what, and which label values mean "no pain point".

    A head whose column is ``None`` is not trained (e.g. Banking77 has no sentiment).
    """

    text: str = "text"
    sentiment: str | None = None
    pain_points: str | None = None
    none_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sentiment is None and self.pain_points is None:
            raise ValueError("give at least one label column: --sentiment-column or --pain-points-column")

    def required(self) -> dict[str, str]:
        """Column name -> the CLI flag that sets it."""
        columns = {self.text: "--text-column"}
        if self.sentiment is not None:
            columns[self.sentiment] = "--sentiment-column"
        if self.pain_points is not None:
            columns[self.pain_points] = "--pain-points-column"
        return columns


@dataclass(frozen=True)
class Example:
    """One labelled text. ``sentiment`` None means unknown: that row trains only the pain-point head."""

    text: str
    sentiment: str | None
    pain_points: tuple[str, ...]
    row: int


@dataclass(frozen=True)
class SkippedRow:
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.reason}"


@dataclass
class LoadedData:
    source: str
    examples: list[Example]
    skipped: list[SkippedRow] = field(default_factory=list)

    def sentiment_labels(self) -> list[str]:
        return sorted({e.sentiment for e in self.examples if e.sentiment is not None})

    def pain_point_labels(self) -> list[str]:
        return sorted({label for e in self.examples for label in e.pain_points})


def load_table(path: str | Path) -> datasets.Dataset:
    """Load CSV, TSV, JSONL, Parquet or a saved HF dataset folder as a ``datasets.Dataset``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as error:
            raise DataError(f"{path}: not a saved dataset folder ({error})") from error
        if isinstance(loaded, datasets.DatasetDict):
            raise DataError(f"{path}: holds splits {list(loaded)}; point at one split's folder, e.g. {path}/train")
        return loaded
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(f"{path}: unknown format {suffix!r}; use one of {sorted(_FORMATS)} or a saved dataset folder")
    if suffix in _TEXT_FORMATS:
        check_utf8(path)
    builder, options = _FORMATS[suffix]
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # noqa: BLE001 - pandas/pyarrow raise many types; re-raised with the file named
        raise DataError(f"{path}: cannot be read as {suffix[1:].upper()}: {error}") from error


def check_utf8(path: Path) -> None:
    """Raise a DataError naming the line of the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
        ) from error


def check_columns(source: str, found: Sequence[str], mapping: ColumnMapping) -> None:
    """A DataError naming each missing column, the columns found and the flag that fixes it."""
    missing = [(column, flag) for column, flag in mapping.required().items() if column not in found]
    if missing:
        wanted = "; ".join(f"column {column!r} (set with {flag})" for column, flag in missing)
        raise DataError(f"{source}: missing {wanted}. Found columns: {list(found)}. "
                        "Pass the flag with the name of the column that holds those values.")


def read_examples(path: str | Path, mapping: ColumnMapping, *, skip_bad_rows: bool = False,
                  sentiment_labels: Sequence[str] | None = None,
                  pain_point_labels: Sequence[str] | None = None) -> LoadedData:
    """Read and check labelled rows.

    With ``sentiment_labels`` / ``pain_point_labels`` given (validation or test data), a label the
    model does not know is an error. With ``skip_bad_rows`` a bad row is skipped and recorded in
    ``LoadedData.skipped`` instead of stopping.
    """
    table = load_table(path)
    source = str(path)
    check_columns(source, table.column_names, mapping)
    known_sentiments = set(sentiment_labels) if sentiment_labels is not None else None
    known_pain_points = set(pain_point_labels) if pain_point_labels is not None else None
    columns = list(mapping.required())
    result = LoadedData(source=source, examples=[])
    cells = table.select_columns(columns).to_dict()
    for index in range(table.num_rows):
        row = index + 1
        record = {column: cells[column][index] for column in columns}
        try:
            result.examples.append(_parse_row(record, row, mapping, known_sentiments, known_pain_points))
        except _RowError as error:
            if not skip_bad_rows:
                raise DataError(f"{source}: {error.skipped}. Fix the row, or pass --skip-bad-rows "
                                "to leave such rows out and list them.") from None
            result.skipped.append(error.skipped)
    if not result.examples:
        raise DataError(f"{source}: no usable rows" + (f" ({len(result.skipped)} skipped)" if result.skipped else ""))
    return result


class _RowError(Exception):
    def __init__(self, skipped: SkippedRow) -> None:
        super().__init__(str(skipped))
        self.skipped = skipped


def _parse_row(record: dict[str, Any], row: int, mapping: ColumnMapping,
               known_sentiments: set[str] | None, known_pain_points: set[str] | None) -> Example:
    text = record[mapping.text]
    if text is None or (isinstance(text, str) and not text.strip()):
        raise _RowError(SkippedRow(row, mapping.text, "empty text"))
    if not isinstance(text, str):
        raise _RowError(SkippedRow(row, mapping.text, f"text is {type(text).__name__} {text!r}, not a string"))
    sentiment = None
    if mapping.sentiment is not None:
        sentiment = _parse_label(record[mapping.sentiment], row, mapping.sentiment)
        if sentiment is not None and known_sentiments is not None and sentiment not in known_sentiments:
            raise _RowError(SkippedRow(row, mapping.sentiment,
                                       f"unknown sentiment {sentiment!r}; the model knows {sorted(known_sentiments)}"))
    pain_points: tuple[str, ...] = ()
    if mapping.pain_points is not None:
        labels = parse_label_cell(record[mapping.pain_points], row, mapping.pain_points)
        pain_points = tuple(label for label in labels if label not in mapping.none_labels)
        if known_pain_points is not None:
            unknown = [label for label in pain_points if label not in known_pain_points]
            if unknown:
                raise _RowError(SkippedRow(row, mapping.pain_points,
                                           f"unknown pain point {unknown[0]!r}; the model knows "
                                           f"{sorted(known_pain_points)} (add --none-label for values that "
                                           "mean no pain point)"))
    return Example(text=text, sentiment=sentiment, pain_points=pain_points, row=row)


def _parse_label(value: Any, row: int, column: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _RowError(SkippedRow(row, column, f"malformed label {value!r}: expected text"))
    label = str(value).strip()
    return label or None


def parse_label_cell(value: Any, row: int, column: str) -> tuple[str, ...]:
    """A multi-label cell as a tuple of labels.

    Accepts ``a;b`` text, a JSON list ``["a", "b"]``, a list (Parquet/JSONL), a single label, or an
    empty cell (no labels). Anything else raises, naming the row and column.
    """
    if value is None:
        return ()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise _RowError(SkippedRow(row, column, f"malformed cell {value!r}: not a JSON list ({error.msg})")) from None
    if isinstance(value, (list, tuple)):
        labels = []
        for item in value:
            if not isinstance(item, str):
                raise _RowError(SkippedRow(row, column, f"malformed cell {value!r}: list item {item!r} is not text"))
            if item.strip():
                labels.append(item.strip())
        return tuple(dict.fromkeys(labels))
    label = _parse_label(value, row, column)
    if label is None:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in label.split(";") if part.strip()))


def stratified_holdout(keys: Sequence[str], fraction: float, seed: int) -> set[int]:
    """Indices to hold out: ``fraction`` of each key's rows, chosen with ``seed``.

    Example:
        >>> sorted(stratified_holdout(["a", "a", "b", "b"], 0.5, seed=1))
        [1, 2]
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    rng = random.Random(seed)
    held_out: set[int] = set()
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        take = round(len(members) * fraction) if len(members) > 1 else 0
        held_out.update(members[:take])
    return held_out


def split_validation(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A stratified, seeded split: each sentiment / first-pain-point group keeps its share.

    Example:
        >>> train, validation = split_validation(data.examples, 0.1, seed=13)
    """
    keys = [f"{e.sentiment or ''}|{e.pain_points[0] if e.pain_points else ''}" for e in examples]
    held_out = stratified_holdout(keys, fraction, seed)
    train = [e for i, e in enumerate(examples) if i not in held_out]
    validation = [e for i, e in enumerate(examples) if i in held_out]
    if not validation:
        raise ValueError(f"the validation fraction {fraction} of {len(examples)} rows leaves no validation rows")
    return train, validation
