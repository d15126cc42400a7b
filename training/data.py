"""Reading labelled feedback from files, and checking it where it enters.

Every problem is reported with the file, the row (1-based, header not counted) and the column, so
that a data scientist can fix the file rather than guess.

Example:
    >>> data = read_examples("train.csv", ColumnMapping(heads=(HeadColumn("sentiment", "single", "airline_sentiment"),
    ...                      HeadColumn("pain_points", "multi", "negativereason")), none_labels=("Can't Tell",)))
    >>> data.examples[0].text
    '@VirginAmerica What @dhepburn said.'
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from earshot.model.heads import (CellError, Head, HeadKind, check_name_and_kind, head_kind, is_missing,
                                 read_label_list)
from earshot.tables import TEXT_FORMATS, read_table, table_format

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad training or evaluation data; the message names the file, row, column and value."""


@dataclass(frozen=True)
class HeadColumn:
    """A head to train and the column that holds its labels.

    Example:
        >>> HeadColumn.parse("praise_points:multi:praise_points")
        HeadColumn(name='praise_points', kind='multi', column='praise_points', flag='--head praise_points:multi:praise_points')
    """

    name: str
    kind: str
    column: str
    flag: str = ""  # the command-line flag that named it, for error messages

    def __post_init__(self) -> None:
        check_name_and_kind(self.name, self.kind)
        if not self.flag:
            object.__setattr__(self, "flag", f"--head {self.name}:{self.kind}:{self.column}")

    @property
    def behaviour(self) -> HeadKind:
        return head_kind(self.kind)

    @classmethod
    def parse(cls, spec: str) -> "HeadColumn":
        """``NAME:KIND:COLUMN`` (``COLUMN`` may hold ':'), as given to ``--head``."""
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"--head {spec!r}: expected NAME:KIND:COLUMN, e.g. praise_points:multi:praise_points")
        return cls(parts[0], parts[1], parts[2], flag=f"--head {spec}")


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold the text and each head's labels, and which values mean "no label" or "unknown".

    ``none_labels`` apply to multi heads (e.g. the airline data's "Can't Tell" pain point).
    ``unknown_labels`` are cells that say nothing about their head (e.g. a source that never annotated
    pain points): the row trains the other heads only, as an empty single-label cell does.

    Example:
        >>> mapping = ColumnMapping(heads=(HeadColumn("sentiment", "single", "airline_sentiment"),))
    """

    text: str = "text"
    heads: tuple[HeadColumn, ...] = ()
    none_labels: tuple[str, ...] = ()
    unknown_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError("give at least one label column: --sentiment-column, --pain-points-column or "
                             "--head NAME:KIND:COLUMN")
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ValueError(f"two label columns for the same head: {names}")

    def required(self) -> dict[str, str]:
        """Column name -> the CLI flag that sets it."""
        columns = {self.text: "--text-column"}
        for head in self.heads:
            columns.setdefault(head.column, head.flag)
        return columns


@dataclass(frozen=True)
class Example:
    """One labelled text: ``labels[head]`` is a label (single head; None = unknown, so that row
    trains the other heads only) or a tuple of labels (multi head; empty = none of them)."""

    text: str
    labels: dict[str, str | tuple[str, ...] | None]
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

    def labels(self, head: str) -> list[str]:
        """Every label of ``head`` found in the data, sorted."""
        found: set[str] = set()
        for example in self.examples:
            value = example.labels.get(head)
            if isinstance(value, tuple):
                found.update(value)
            elif value is not None:
                found.add(value)
        return sorted(found)

    def heads(self, mapping: ColumnMapping) -> list[Head]:
        """One untrained head per mapped column, with the labels found in the data."""
        return [Head(h.name, h.kind, self.labels(h.name)) for h in mapping.heads]


def load_table(path: str | Path) -> pd.DataFrame:
    """Load a table in any format of ``earshot.tables.FORMATS``, or a saved HF dataset folder."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as error:
            raise DataError(f"{path}: not a saved dataset folder ({error})") from error
        if isinstance(loaded, datasets.DatasetDict):
            raise DataError(f"{path}: holds splits {list(loaded)}; point at one split's folder, e.g. {path}/train")
        return loaded.to_pandas()
    try:
        fmt = table_format(path)
    except ValueError as error:
        raise DataError(f"{error}, or a saved dataset folder") from None
    if fmt in TEXT_FORMATS:
        check_utf8(path)
    try:
        return read_table(path)
    except Exception as error:  # noqa: BLE001 - pandas/pyarrow raise many types; re-raised with the file named
        raise DataError(f"{path}: cannot be read as {fmt.upper()}: {error}") from error


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
                  known_labels: dict[str, Sequence[str]] | None = None) -> LoadedData:
    """Read and check labelled rows.

    With ``known_labels`` (head -> labels; validation or test data), a label the model does not
    know is an error. With ``skip_bad_rows`` a bad row is skipped and recorded in
    ``LoadedData.skipped`` instead of stopping.
    """
    table = load_table(path)
    source = str(path)
    check_columns(source, [str(c) for c in table.columns], mapping)
    known = {head: set(labels) for head, labels in (known_labels or {}).items()}
    columns = list(mapping.required())
    result = LoadedData(source=source, examples=[])
    cells = table[columns].to_dict("list")
    for index in range(len(table)):
        row = index + 1
        record = {column: cells[column][index] for column in columns}
        try:
            result.examples.append(_parse_row(record, row, mapping, known))
        except _RowError as error:
            if not skip_bad_rows:
                raise DataError(f"{source}: {error.skipped}. Fix the row, or pass --skip-bad-rows "
                                "to leave such rows out and list them.") from None
            result.skipped.append(error.skipped)
    if not result.examples:
        raise DataError(f"{source}: no usable rows" + (f" ({len(result.skipped)} skipped)" if result.skipped else ""))
    return result


def read_texts(path: str | Path, text_column: str, *, skip_bad_rows: bool = False) -> list[Example]:
    """Unlabelled rows: each text of ``text_column`` as an Example without labels.

    An empty or non-text cell is an error naming its row (or, with ``skip_bad_rows``, left out and counted).

    Example:
        >>> read_texts("tweets.csv", "text")[0].labels
        {}
    """
    table = load_table(path)
    if text_column not in table.columns:
        raise DataError(f"{path}: no text column {text_column!r}. Found columns: {[str(c) for c in table.columns]}. "
                        "Pass --text-column NAME to use another column.")
    examples, skipped = [], 0
    for index, text in enumerate(table[text_column].tolist()):
        if isinstance(text, str) and text.strip():
            examples.append(Example(text=text, labels={}, row=index + 1))
        elif skip_bad_rows:
            skipped += 1
        else:
            problem = "empty text" if isinstance(text, str) or is_missing(text) else f"text is {type(text).__name__}"
            raise DataError(f"{path}: row {index + 1}, column {text_column!r}: {problem}. Fix the row, or pass "
                            "--skip-bad-rows to leave such rows out.")
    if skipped:
        logger.warning("%s: skipped %d rows without text", path, skipped)
    if not examples:
        raise DataError(f"{path}: no rows with text in column {text_column!r}")
    return examples


class _RowError(Exception):
    def __init__(self, skipped: SkippedRow) -> None:
        super().__init__(str(skipped))
        self.skipped = skipped


def _parse_row(record: dict[str, Any], row: int, mapping: ColumnMapping, known: dict[str, set[str]]) -> Example:
    text = record[mapping.text]
    if is_missing(text) or (isinstance(text, str) and not text.strip()):
        raise _RowError(SkippedRow(row, mapping.text, "empty text"))
    if not isinstance(text, str):
        raise _RowError(SkippedRow(row, mapping.text, f"text is {type(text).__name__} {text!r}, not a string"))
    labels: dict[str, str | tuple[str, ...] | None] = {}
    for head in mapping.heads:
        kind = head.behaviour
        cell = record[head.column]
        if isinstance(cell, str) and cell.strip() in mapping.unknown_labels:
            labels[head.name] = None
            continue
        try:
            value = kind.parse_cell(cell, mapping.none_labels)
        except CellError as error:
            raise _RowError(SkippedRow(row, head.column, str(error))) from None
        found = () if value is None else (value,) if isinstance(value, str) else value
        unknown = [label for label in found if head.name in known and label not in known[head.name]]
        if unknown:
            hint = kind.unknown_label_hint
            raise _RowError(SkippedRow(row, head.column, f"unknown {head.name} label {unknown[0]!r}; the model "
                                                         f"knows {sorted(known[head.name])}{hint}"))
        labels[head.name] = value
    return Example(text=text, labels=labels, row=row)


def parse_label_cell(value: Any, row: int, column: str) -> tuple[str, ...]:
    """A multi-label cell as a tuple of labels (``earshot.model.heads.read_label_list``), or a row error
    naming ``row`` and ``column``."""
    try:
        return read_label_list(value)
    except CellError as error:
        raise _RowError(SkippedRow(row, column, str(error))) from None


def head_gold(head: Head, examples: Sequence[Example]) -> np.ndarray:
    """A single head's class indices ``(n,)`` (-1 where unknown), or a multi head's 0/1 ``(n, labels)``.

    Example:
        >>> head_gold(Head("sentiment", "single", ["neg", "pos"]), data.examples[:2])
        array([1, -1])
    """
    return head.behaviour.gold(head, [e.labels.get(head.name) for e in examples])


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


def _first(value: str | tuple[str, ...] | None) -> str:
    if isinstance(value, tuple):
        return value[0] if value else ""
    return value or ""


def split_validation(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A stratified, seeded split: each group of (every head's label or first label) keeps its share.

    Rows with the same text stay on the same side (the split is drawn over distinct texts, each with its
    first row's labels): a copy of a validation text in training would tune thresholds and early
    stopping on text the model has learnt. Without repeated texts the split is the plain row split.

    Example:
        >>> train, validation = split_validation(data.examples, 0.1, seed=13)
    """
    first_rows: dict[str, Example] = {}
    for example in examples:
        first_rows.setdefault(example.text, example)
    distinct = list(first_rows.values())
    keys = ["|".join(_first(value) for _, value in sorted(e.labels.items())) for e in distinct]
    held_texts = {distinct[i].text for i in stratified_holdout(keys, fraction, seed)}
    train = [e for e in examples if e.text not in held_texts]
    validation = [e for e in examples if e.text in held_texts]
    if not validation:
        raise ValueError(f"the validation fraction {fraction} of {len(examples)} rows leaves no validation rows")
    return train, validation


def label_sets(head: Head, examples: Sequence[Example]) -> list[frozenset[int] | None]:
    """Each example's labels of ``head`` as a set of label indices; None where the label is unknown.

    An empty set is a real answer of a multi head ("none of these"), so it is kept as one.
    """
    return head.behaviour.label_sets(head_gold(head, examples))


def rows_by_label(sets: Sequence[frozenset[int] | None]) -> dict[int, list[int]]:
    """Label index -> the rows that carry it, from :func:`label_sets`; an empty set is the label -1
    ("none of these"), an unknown label (None) is in no list.

    Example:
        >>> rows_by_label([frozenset({0}), frozenset(), None, frozenset({0, 1})])
        {0: [0, 3], -1: [1], 1: [3]}
    """
    rows: dict[int, list[int]] = {}
    for row, labels in enumerate(sets):
        for label in (labels or ({-1} if labels is not None else set())):
            rows.setdefault(label, []).append(row)
    return rows


def sample_per_label(examples: Sequence[Example], heads: Sequence[Head], per_label: int, seed: int) -> list[Example]:
    """Up to ``per_label`` examples of each label of each head, seeded, in data order.

    An empty multi-label set counts as a label of its own ("none of these"). A drawn example counts
    for every label it carries, so a multi-label sample holds at least ``per_label`` of each label
    that has as many. Labels with fewer keep all of theirs: see :func:`short_labels`.

    Example:
        >>> len(sample_per_label(data.examples, heads, 8, seed=1))  # Banking77: 77 intents x 8
        616
    """
    rng = random.Random(seed)
    chosen: set[int] = set()
    for head in heads:
        rows_of = rows_by_label(label_sets(head, examples))
        order = sorted(rows_of)
        rng.shuffle(order)
        for label in order:
            rows = rows_of[label][:]
            rng.shuffle(rows)
            have = sum(1 for row in rows if row in chosen)
            for row in rows:
                if have >= per_label:
                    break
                if row not in chosen:
                    chosen.add(row)
                    have += 1
    return [examples[i] for i in sorted(chosen)]


def short_labels(examples: Sequence[Example], heads: Sequence[Head], per_label: int) -> dict[str, dict[str, int]]:
    """Per head, the labels with fewer than ``per_label`` examples and how many they have (0 included).

    Example:
        >>> short_labels(sample, heads, 8)
        {'intent': {'card_swallowed': 1}}
    """
    short: dict[str, dict[str, int]] = {}
    for head in heads:
        gold = head_gold(head, examples)
        counts = head.behaviour.label_counts(gold, len(head.labels))
        found = {label: int(n) for label, n in zip(head.labels, counts) if n < per_label}
        if found:
            short[head.name] = found
    return short
