"""``earshot audit``: which labels in a training file are probably wrong.

Each text is embedded once by a frozen encoder (the base encoder by default: an encoder fine-tuned on
these very labels would have learnt the mistakes too). For every head, a linear model trained on the
other folds gives each row out-of-fold probabilities, so no row is judged by a model that saw its
label. Confident learning (cleanlab) then estimates how many labels of a head are wrong and flags
that many, lowest label quality (self-confidence) first; a multi head's labels are flagged with
``cleanlab.filter.find_label_issues``. Needs ``pip install 'earshot[audit]'``.

Example:
    >>> suspects = audit(data.examples, mapping, embed_texts(DEFAULT_BASE_MODEL, texts))
    >>> suspects[0].row, suspects[0].given, suspects[0].suggested
    (4711, 'card_arrival', 'lost_or_stolen_card')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from earshot.extras import require
from earshot.files import write_text_atomic
from earshot.model import MULTI, SINGLE, EarshotModel, Head

from .data import ColumnMapping, DataError, Example, head_gold

FEATURE = "earshot audit"
NONE = "(none)"


@dataclass(frozen=True)
class Suspect:
    """One probably-wrong label: ``row`` counts data rows from 1 (header not counted), as data errors do."""

    row: int
    head: str
    column: str
    given: str
    suggested: str
    score: float  # 1 - label quality: higher is more suspect


def embed_texts(base_model: str, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
    """Unit-length pooled vectors of ``texts`` from the encoder ``base_model`` (hub id or folder)."""
    encoder = EarshotModel.from_base(base_model, [Head("unused", MULTI, ["unused"])]).to_device("cpu")
    vectors = encoder.embed(list(texts), batch_size=batch_size)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# Regularisation of the linear heads. The labels being audited contain the mistakes to be found, and a
# weakly regularised model fits them; C=3 found the most planted flips on Banking77 at the same
# precision (docs/experiments.md, "Figures behind the code").
DEFAULT_C = 3.0
# Multi heads: cleanlab's stricter filter (a label must be off both by the noise-rate estimate and per
# class), more precise than its default filter on the same flips. Single heads flag cleanlab's estimate
# of how many labels are wrong, lowest quality first.
FILTER = "both"


def out_of_fold(head: Head, gold: np.ndarray, embeddings: np.ndarray, folds: int, seed: int,
                c: float = DEFAULT_C) -> np.ndarray:
    """Probabilities (rows x labels) for each row from a logistic regression trained on the other folds.

    Rows of unknown label (single: gold -1; multi: a NaN row) get NaN rows. Multi heads: one regression
    per label.
    """
    return _auditor(head).out_of_fold(head, gold, embeddings, folds, seed, c)


def _multi_out_of_fold(head: Head, gold: np.ndarray, embeddings: np.ndarray, folds: int, seed: int,
                       c: float) -> np.ndarray:
    model_selection = require("sklearn.model_selection", extra="audit", feature=FEATURE)
    linear = require("sklearn.linear_model", extra="audit", feature=FEATURE)
    probabilities = np.full((len(gold), len(head.labels)), np.nan)
    known = np.flatnonzero(head.behaviour.labelled(gold))
    vectors = embeddings[known]
    for j in range(len(head.labels)):
        column = gold[known, j]
        if column.sum() < folds:  # too few positives to hold any out: the base rate
            probabilities[known, j] = column.mean()
            continue
        for train, held in model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed).split(
                vectors, column):
            fitted = linear.LogisticRegression(C=c, max_iter=2000).fit(vectors[train], column[train])
            probabilities[known[held], j] = fitted.predict_proba(vectors[held])[:, 1]
    return probabilities


def _single_out_of_fold(head: Head, gold: np.ndarray, embeddings: np.ndarray, folds: int, seed: int,
                        c: float) -> np.ndarray:
    model_selection = require("sklearn.model_selection", extra="audit", feature=FEATURE)
    linear = require("sklearn.linear_model", extra="audit", feature=FEATURE)
    probabilities = np.full((len(gold), len(head.labels)), np.nan)
    known = np.flatnonzero(gold >= 0)
    splitter = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, held in splitter.split(embeddings[known], gold[known]):
        fitted = linear.LogisticRegression(C=c, max_iter=2000).fit(embeddings[known[train]], gold[known[train]])
        rows = np.zeros((len(held), len(head.labels)))
        rows[:, fitted.classes_] = fitted.predict_proba(embeddings[known[held]])
        probabilities[known[held]] = rows
    return probabilities


def audit(examples: Sequence[Example], mapping: ColumnMapping, embeddings: np.ndarray, heads: Sequence[Head],
          folds: int = 5, seed: int = 13, c: float = DEFAULT_C) -> list[Suspect]:
    """Every flagged label of every head, most suspect first."""
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    columns = {h.name: h.column for h in mapping.heads}
    suspects: list[Suspect] = []
    for head in heads:
        gold = head_gold(head, examples)
        probabilities = out_of_fold(head, gold, embeddings, folds, seed, c)
        auditor = _auditor(head)
        flagged, quality = auditor.issues(head, gold, probabilities, folds)
        for i in flagged:
            suspects.append(Suspect(row=examples[i].row, head=head.name, column=columns[head.name],
                                    given=auditor.names(head, gold[i]),
                                    suggested=auditor.suggested(head, probabilities[i]),
                                    score=round(1.0 - float(quality[i]), 6)))
    return sorted(suspects, key=lambda s: -s.score)


def _single_issues(head: Head, gold: np.ndarray, probabilities: np.ndarray, folds: int) -> tuple[list[int], np.ndarray]:
    cleanlab_count = require("cleanlab.count", extra="audit", feature=FEATURE)
    cleanlab_rank = require("cleanlab.rank", extra="audit", feature=FEATURE)
    known = np.flatnonzero(gold >= 0)
    counts = np.bincount(gold[known], minlength=len(head.labels))
    if (counts[counts > 0] < folds).any():
        rare = [head.labels[j] for j in np.flatnonzero((counts > 0) & (counts < folds))]
        raise DataError(f"head {head.name!r}: labels {rare} have fewer rows than --folds {folds}; "
                        "the audit needs at least that many of each (or fewer folds)")
    count = cleanlab_count.num_label_issues(gold[known], probabilities[known])
    quality = np.ones(len(gold))
    quality[known] = cleanlab_rank.get_label_quality_scores(gold[known], probabilities[known])
    lowest = np.argsort(quality[known], kind="stable")[:count]
    return [int(known[i]) for i in lowest], quality


def _multi_issues(head: Head, gold: np.ndarray, probabilities: np.ndarray, folds: int
                  ) -> tuple[list[int], np.ndarray]:
    cleanlab_filter = require("cleanlab.filter", extra="audit", feature=FEATURE)
    multilabel_rank = require("cleanlab.multilabel_classification.rank", extra="audit", feature=FEATURE)
    known = np.flatnonzero(head.behaviour.labelled(gold))
    labels = [list(np.flatnonzero(row)) for row in gold[known]]
    flagged = cleanlab_filter.find_label_issues(labels, probabilities[known], multi_label=True, filter_by=FILTER)
    quality = np.ones(len(gold))
    quality[known] = multilabel_rank.get_label_quality_scores(labels, probabilities[known])
    return [int(known[i]) for i in np.flatnonzero(flagged)], quality


def _multi_names(head: Head, gold_row: np.ndarray) -> str:
    return ";".join(head.labels[j] for j in np.flatnonzero(gold_row)) or NONE


def _multi_suggested(head: Head, probability_row: np.ndarray) -> str:
    return ";".join(head.labels[j] for j in np.flatnonzero(probability_row >= 0.5)) or NONE


def _single_name(head: Head, gold_row: np.integer) -> str:
    return head.labels[int(gold_row)]


def _single_suggested(head: Head, probability_row: np.ndarray) -> str:
    return head.labels[int(np.argmax(probability_row))]


@dataclass(frozen=True)
class _Auditor:
    """How the audit treats one kind of head: out-of-fold probabilities, flagged rows, label names."""

    out_of_fold: Callable[..., np.ndarray]
    issues: Callable[..., tuple[list[int], np.ndarray]]
    names: Callable[[Head, Any], str]
    suggested: Callable[[Head, np.ndarray], str]


# Confident learning differs by kind (cleanlab's multi-label filter against its class counts), so the
# audit keeps one auditor per kind it supports.
_AUDITORS = {
    SINGLE: _Auditor(_single_out_of_fold, _single_issues, _single_name, _single_suggested),
    MULTI: _Auditor(_multi_out_of_fold, _multi_issues, _multi_names, _multi_suggested),
}


def _auditor(head: Head) -> _Auditor:
    try:
        return _AUDITORS[head.kind]
    except KeyError:
        raise DataError(f"head {head.name!r} is of kind {head.kind!r}; the audit checks heads of kinds "
                        f"{sorted(_AUDITORS)}") from None


def write_suspects(suspects: Sequence[Suspect], path: Path) -> None:
    """The ranked suspects as a CSV with columns row, head, column, given, suggested, score."""
    frame = pd.DataFrame([asdict(s) for s in suspects], columns=list(Suspect.__dataclass_fields__))
    write_text_atomic(path, frame.to_csv(index=False))


def excluded_rows(path: Path) -> set[int]:
    """The ``row`` numbers listed in a file written by ``earshot audit`` (or any table with a ``row`` column)."""
    from earshot.tables import read_table

    frame = read_table(path)
    if "row" not in frame.columns:
        raise DataError(f"{path}: no 'row' column for --exclude; found {list(frame.columns)}. Pass a file "
                        "written by `earshot audit` or any table whose 'row' column holds data row numbers")
    rows = set()
    for index, value in enumerate(frame["row"], start=1):
        text = str(value).strip()
        if not text.isdigit() or int(text) < 1:
            raise DataError(f"{path}: row {index}, column 'row': {value!r} is not a row number (1, 2, ...)")
        rows.add(int(text))
    return rows
