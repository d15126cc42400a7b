"""A head is data: a name, a kind and its labels. A kind is behaviour: everything that differs between
kinds of head lives in its ``HeadKind`` object, and the rest of earshot calls that object.

``single``: exactly one label per text (softmax), such as sentiment. ``multi``: any number of labels
per text (independent sigmoids, one threshold per label), such as pain points or praise points.
Another kind is a ``HeadKind`` subclass given to :func:`register_kind` (a process that loads models
with such heads imports the module that registers it: ``EARSHOT_PLUGINS=module,...`` or the
``earshot.plugins`` entry-point group), as cleanlab registers issue managers.

Example:
    >>> Head("praise_points", "multi", ["food", "service"]).thresholds
    {'food': 0.5, 'service': 0.5}
    >>> head_kind("single").headline
    'macro_f1'
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .modeling import HeadPrediction

SINGLE, MULTI = "single", "multi"
# Head names become weight names, output names and table columns: keep them plain.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Names a head cannot take, because the forward pass or the scored tables already use them.
RESERVED = frozenset({"embedding", "error", "model_version", "truncated", "id", "text"})
PLUGINS_ENV = "EARSHOT_PLUGINS"
PLUGIN_GROUP = "earshot.plugins"

LabelValue = Any  # an example's labels of one head: a label, a tuple of labels or None (training.data.Example)
Chosen = list[tuple[str, float]]  # the labels a head gives one text, with their scores, best first


class CellError(ValueError):
    """A label cell that cannot be read; the message says why (the caller adds row and column)."""


class HeadKind:
    """What one kind of head does; one object per kind, shared by every head of that kind.

    Subclasses set ``name`` and ``headline`` and override what differs. The methods take the
    ``Head`` (its name, labels and thresholds) and arrays in the shapes ``model.predict_proba`` and
    ``training.data.head_gold`` give.
    """

    name: ClassVar[str]
    headline: ClassVar[str]  # the metric that early stopping and model promotion read
    thresholded: ClassVar[bool] = False  # whether heads of this kind carry per-label thresholds
    # Whether a label such as "other" may stand for "none of the others" (a kind that gives every text
    # exactly one label needs one; a multi head says "none" with its empty set).
    takes_catch_all: ClassVar[bool] = False
    description: ClassVar[str] = ""  # for --help and errors
    unknown_label_hint: ClassVar[str] = ""  # added to the error for a label the head does not know

    # ---------------------------------------------------------------------------- configuration
    def check(self, head: "Head") -> None:
        """A ValueError when ``head``'s labels or thresholds do not suit this kind."""
        if head.thresholds and not self.thresholded:
            raise ValueError(f"head {head.name!r} ({self.name}) has no thresholds")

    def describe(self, head: "Head") -> str:
        """One line for the model card."""
        return f"- `{head.name}` ({self.name}): {', '.join(head.labels)}."

    # -------------------------------------------------------------------------------- inference
    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decide(self, head: "Head", scores: np.ndarray) -> list[Chosen]:
        """The labels given to each row of ``scores`` (rows x labels), best first."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- data
    def parse_cell(self, value: Any, none_labels: Sequence[str] = ()) -> LabelValue:
        """A table cell as this head's label value; a ``CellError`` when it cannot be read."""
        raise NotImplementedError

    def label_value(self, labels: Sequence[str]) -> LabelValue:
        """The label value of an example that has ``labels`` (a correction, a taxonomy description)."""
        raise NotImplementedError

    def known(self, value: LabelValue) -> bool:
        """Whether an example's value says anything about this head (None: the row leaves it out)."""
        return value is not None

    def gold(self, head: "Head", values: Sequence[LabelValue]) -> np.ndarray:
        """Examples' values as the arrays training and metrics take (see ``training.data.head_gold``)."""
        raise NotImplementedError

    def labelled(self, gold: np.ndarray) -> np.ndarray:
        """Which rows of ``gold`` carry a label (a boolean per row)."""
        raise NotImplementedError

    def label_sets(self, gold: np.ndarray) -> list[frozenset[int] | None]:
        """Each row's label indices; None where unknown, an empty set for "none of these"."""
        raise NotImplementedError

    def label_counts(self, gold: np.ndarray, labels: int) -> np.ndarray:
        """Rows per label."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------- training
    def targets(self, gold: np.ndarray) -> torch.Tensor:
        """``gold`` as the loss takes it."""
        raise NotImplementedError

    def loss_function(self, head: "Head", targets: torch.Tensor, power: float, max_pos_weight: float) -> nn.Module:
        """The head's loss, weighted against class imbalance by ``power`` (0: none, 1: balanced)."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, function: nn.Module, config: Any) -> torch.Tensor:
        """The head's loss on a batch; ``config`` is the ``TrainingConfig`` (weights of its terms)."""
        raise NotImplementedError

    def logistic_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The summed loss of a linear head fitted on frozen vectors (the few-shot start)."""
        raise NotImplementedError

    def soften(self, probabilities: np.ndarray, temperature: float) -> np.ndarray:
        """A teacher's probabilities as they would be with its logits divided by ``temperature``."""
        raise NotImplementedError

    def soft_loss(self, logits: torch.Tensor, soft: torch.Tensor, config: Any) -> torch.Tensor:
        """The loss of a student's (tempered) logits against a teacher's softened probabilities."""
        raise NotImplementedError

    def tuned_thresholds(self, head: "Head", gold: np.ndarray, probabilities: np.ndarray,
                         shrinkage: float) -> dict[str, float] | None:
        """Per-label thresholds chosen on validation data, or None for a kind without thresholds."""
        return None

    def metrics(self, head: "Head", gold: np.ndarray, probabilities: np.ndarray,
                thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        """The head's metrics (``self.headline`` among them, and a ``confusion_matrix``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ review loop
    def uncertainty(self, answer: "HeadPrediction", thresholds: dict[str, float]) -> float:
        """0 (sure) to 1 (a coin toss): what orders the review queue."""
        raise NotImplementedError

    def unsure(self, answer: "HeadPrediction", thresholds: dict[str, float], margin_below: float,
               confidence_below: float) -> list[str]:
        """Why the answer needs a person: ``margin`` and/or ``confidence``, or nothing."""
        raise NotImplementedError

    def check_correction(self, head: "Head", value: Any, where: str) -> tuple[Any, list[str]]:
        """A correction's value in this kind's stored shape and the labels it names; a ValueError
        naming ``where`` and the head when its shape is wrong."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- scoring
    def columns(self, head: "Head") -> list[str]:
        """The columns a scored table gets for this head."""
        raise NotImplementedError

    def cells(self, head: "Head", answers: Sequence["HeadPrediction | None"]) -> dict[str, Any]:
        """Those columns' values for rows answered (None: a row that could not be scored)."""
        raise NotImplementedError


class SingleKind(HeadKind):
    """Exactly one label per text: softmax, cross-entropy, the best label."""

    name = SINGLE
    headline = "macro_f1"  # every class counts, however rare
    takes_catch_all = True
    description = "one label per text"

    def check(self, head: "Head") -> None:
        super().check(head)
        if len(head.labels) < 2:
            raise ValueError(f"head {head.name!r} (single) needs at least two labels, got {head.labels}")

    def describe(self, head: "Head") -> str:
        floored = "".join(f" `{label}` is the catch-all: it also takes every text that no other label's description "
                          "is near." for label in head.floors)
        return f"- `{head.name}` (one label per text): {', '.join(head.labels)}.{floored}"

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float32)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def decide(self, head: "Head", scores: np.ndarray) -> list[Chosen]:
        best = scores.argmax(axis=1)
        return [[(head.labels[b], float(row[b]))] for b, row in zip(best, scores)]

    def parse_cell(self, value: Any, none_labels: Sequence[str] = ()) -> str | None:
        return read_label(value)

    def label_value(self, labels: Sequence[str]) -> str | None:
        return labels[0] if labels else None

    def gold(self, head: "Head", values: Sequence[Any]) -> np.ndarray:
        index = {label: i for i, label in enumerate(head.labels)}
        return np.array([index[v] if v is not None else -1 for v in values], dtype=np.int64)

    def labelled(self, gold: np.ndarray) -> np.ndarray:
        return gold >= 0

    def label_sets(self, gold: np.ndarray) -> list[frozenset[int] | None]:
        return [None if g < 0 else frozenset([int(g)]) for g in gold]

    def label_counts(self, gold: np.ndarray, labels: int) -> np.ndarray:
        return np.bincount(gold[gold >= 0], minlength=labels)

    def targets(self, gold: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(gold)
        return tensor.masked_fill(tensor < 0, -100)  # cross-entropy's ignore index: unknown labels

    def loss_function(self, head: "Head", targets: torch.Tensor, power: float, max_pos_weight: float) -> nn.Module:
        counts = torch.bincount(targets[targets >= 0], minlength=len(head.labels)).float().clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)) ** power
        return nn.CrossEntropyLoss(weight=weight, ignore_index=-100)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, function: nn.Module, config: Any) -> torch.Tensor:
        # A batch of rows without this head's label trains only the other heads.
        return function(logits, targets) if (targets >= 0).any() else logits.new_zeros(())

    def logistic_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long(), reduction="sum")

    def soften(self, probabilities: np.ndarray, temperature: float) -> np.ndarray:
        logits = np.log(_clip(probabilities)) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        soft = np.exp(logits)
        soft /= soft.sum(axis=1, keepdims=True)
        return soft.astype(np.float32)

    def soft_loss(self, logits: torch.Tensor, soft: torch.Tensor, config: Any) -> torch.Tensor:
        return F.kl_div(F.log_softmax(logits, dim=-1), soft, reduction="batchmean")

    def metrics(self, head: "Head", gold: np.ndarray, probabilities: np.ndarray,
                thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        from earshot.training.metrics import single_label_metrics  # numpy only; training imports this module

        return single_label_metrics(gold, probabilities, head.labels)

    def uncertainty(self, answer: "HeadPrediction", thresholds: dict[str, float]) -> float:
        return 1.0 - _margin(answer)

    def unsure(self, answer: "HeadPrediction", thresholds: dict[str, float], margin_below: float,
               confidence_below: float) -> list[str]:
        found = ["margin"] if _margin(answer) < margin_below else []
        return found + (["confidence"] if max(answer.scores.values()) < confidence_below else [])

    def check_correction(self, head: "Head", value: Any, where: str) -> tuple[Any, list[str]]:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: head {head.name!r} is single: give one label or null, not {value!r}")
        return value, ([] if value is None else [value])

    def columns(self, head: "Head") -> list[str]:
        return [head.name, f"{head.name}_score"]

    def cells(self, head: "Head", answers: Sequence["HeadPrediction | None"]) -> dict[str, Any]:
        import pandas as pd

        return {head.name: [a.label if a is not None else None for a in answers],
                f"{head.name}_score": pd.array([a.labels[0].score if a is not None else None for a in answers],
                                               dtype="Float64")}


class MultiKind(HeadKind):
    """Any number of labels per text: independent sigmoids, one threshold per label.

    Gold is a 0/1 matrix (rows x labels); a row whose labels are unknown (the example's value is None:
    a source that never annotated this head) is a row of NaN, which the loss, thresholds and metrics
    leave out, so that it trains the other heads only. An empty set stays a real answer: "none of these".
    """

    name = MULTI
    headline = "micro_f1"  # every label decision counts
    thresholded = True
    description = "any number of labels per text"
    unknown_label_hint = (" (add --none-label for values that mean no label, --unknown-label for values that "
                          "leave the head unknown)")

    def check(self, head: "Head") -> None:
        if not head.labels:
            raise ValueError(f"head {head.name!r} (multi) needs at least one label")
        unknown = set(head.thresholds) - set(head.labels)
        if unknown:
            raise ValueError(f"head {head.name!r}: thresholds given for unknown labels {sorted(unknown)}")
        head.thresholds = {label: float(head.thresholds.get(label, 0.5)) for label in head.labels}
        for label, value in head.thresholds.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"head {head.name!r}: threshold for {label!r} must be in (0, 1), got {value}")

    def describe(self, head: "Head") -> str:
        return (f"- `{head.name}` (any number of labels per text, {len(head.labels)}): "
                + ", ".join(f"{label} (threshold {head.thresholds[label]:.2f})" for label in head.labels) + ".")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))

    def decide(self, head: "Head", scores: np.ndarray) -> list[Chosen]:
        thresholds = np.array([head.thresholds[label] for label in head.labels], dtype=np.float32)
        return [sorted(((head.labels[i], float(row[i])) for i in np.flatnonzero(row >= thresholds)),
                       key=lambda pair: pair[1], reverse=True) for row in scores]

    def parse_cell(self, value: Any, none_labels: Sequence[str] = ()) -> tuple[str, ...]:
        return tuple(label for label in read_label_list(value) if label not in none_labels)

    def label_value(self, labels: Sequence[str]) -> tuple[str, ...]:
        return tuple(labels)

    def known(self, value: Any) -> bool:
        return isinstance(value, tuple)

    def gold(self, head: "Head", values: Sequence[Any]) -> np.ndarray:
        index = {label: i for i, label in enumerate(head.labels)}
        gold = np.zeros((len(values), len(index)), dtype=np.float32)
        for row, value in enumerate(values):
            if value is None:
                gold[row] = np.nan
            for label in value or ():
                gold[row, index[label]] = 1.0
        return gold

    def labelled(self, gold: np.ndarray) -> np.ndarray:
        # An empty set is an answer ("none of these"); only a row of NaN is unknown.
        return ~np.isnan(gold).any(axis=1)

    def label_sets(self, gold: np.ndarray) -> list[frozenset[int] | None]:
        return [frozenset(np.flatnonzero(row).tolist()) if known else None
                for row, known in zip(gold, self.labelled(gold))]

    def label_counts(self, gold: np.ndarray, labels: int) -> np.ndarray:
        return gold[self.labelled(gold)].sum(axis=0).astype(int)

    def targets(self, gold: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(gold)

    def loss_function(self, head: "Head", targets: torch.Tensor, power: float, max_pos_weight: float) -> nn.Module:
        targets = targets[_known_rows(targets)]  # class weights count the rows that have labels
        positives = targets.sum(dim=0).clamp(min=1)
        pos_weight = (((len(targets) - positives) / positives) ** power).clamp(max=max_pos_weight)
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, function: nn.Module, config: Any) -> torch.Tensor:
        known = _known_rows(targets)
        if not known.all():
            # Rows that leave this head unknown train only the other heads.
            if not known.any():
                return logits.new_zeros(())
            logits, targets = logits[known], targets[known]
        value = config.multi_label_loss_weight * function(logits, targets)
        if config.ranking_loss_weight > 0:
            value = value + config.ranking_loss_weight * ranking_loss(logits, targets)
        return value

    def logistic_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = _known_rows(targets)
        return F.binary_cross_entropy_with_logits(logits[known], targets[known].double(), reduction="sum")

    def soften(self, probabilities: np.ndarray, temperature: float) -> np.ndarray:
        p = _clip(probabilities)
        return (1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))).astype(np.float32)

    def soft_loss(self, logits: torch.Tensor, soft: torch.Tensor, config: Any) -> torch.Tensor:
        return config.multi_label_loss_weight * F.binary_cross_entropy_with_logits(logits, soft)

    def tuned_thresholds(self, head: "Head", gold: np.ndarray, probabilities: np.ndarray,
                         shrinkage: float) -> dict[str, float]:
        from earshot.training.metrics import tune_thresholds

        known = self.labelled(gold)
        tuned = tune_thresholds(gold[known], probabilities[known], shrinkage=shrinkage)
        return {label: float(t) for label, t in zip(head.labels, tuned)}

    def metrics(self, head: "Head", gold: np.ndarray, probabilities: np.ndarray,
                thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        from earshot.training.metrics import multi_label_metrics, top_label_confusion

        chosen = thresholds if thresholds is not None else head.thresholds
        cut = np.array([chosen[label] for label in head.labels])
        known = self.labelled(gold)  # rows that leave this head unknown are not scored
        gold, probabilities = gold[known], probabilities[known]
        metrics = multi_label_metrics(gold, probabilities, cut, head.labels)
        metrics["confusion_matrix"] = top_label_confusion(gold.astype(bool), probabilities, cut, head.labels)
        return metrics

    def uncertainty(self, answer: "HeadPrediction", thresholds: dict[str, float]) -> float:
        return min(1.0, max(0.0, 1.0 - 2.0 * _distance_to_threshold(answer, thresholds)))

    def unsure(self, answer: "HeadPrediction", thresholds: dict[str, float], margin_below: float,
               confidence_below: float) -> list[str]:
        return ["margin"] if _distance_to_threshold(answer, thresholds) < margin_below / 2 else []

    def check_correction(self, head: "Head", value: Any, where: str) -> tuple[Any, list[str]]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: head {head.name!r} is multi: give a list of labels, not {value!r}")
        return sorted(set(value)), value

    def columns(self, head: "Head") -> list[str]:
        return [head.name, f"{head.name}_scores"]

    def cells(self, head: "Head", answers: Sequence["HeadPrediction | None"]) -> dict[str, Any]:
        return {head.name: [";".join(p.label for p in a.labels) if a is not None else None for a in answers],
                f"{head.name}_scores": [json.dumps({k: round(v, 6) for k, v in a.scores.items()})
                                        if a is not None else None for a in answers]}


_KINDS: dict[str, HeadKind] = {}


def register_kind(kind: HeadKind) -> HeadKind:
    """Make ``kind`` available to heads by its name; returns it.

    Example:
        >>> class Ordinal(SingleKind):
        ...     name = "ordinal"
        >>> register_kind(Ordinal()).name
        'ordinal'
    """
    if not _NAME.match(kind.name):
        raise ValueError(f"kind name {kind.name!r} must be lower-case letters, digits and '_'")
    _KINDS[kind.name] = kind
    return kind


def head_kind(name: str) -> HeadKind:
    """The registered kind called ``name``; plugins are imported once on a miss; a ValueError names the kinds."""
    if name not in _KINDS:
        load_plugins()
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"kind must be one of {kind_names()}, got {name!r} (another kind is registered by a "
                         f"module named in {PLUGINS_ENV} or the {PLUGIN_GROUP!r} entry points)") from None


def kind_names() -> tuple[str, ...]:
    return tuple(_KINDS)


_plugins_loaded: set[str] = set()


def load_plugins() -> None:
    """Import each module named in ``EARSHOT_PLUGINS`` (comma-separated) and each ``earshot.plugins``
    entry point, once; they register kinds."""
    from importlib.metadata import entry_points

    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        if name not in _plugins_loaded:
            importlib.import_module(name)
            _plugins_loaded.add(name)
    for point in entry_points(group=PLUGIN_GROUP):
        if point.value not in _plugins_loaded:
            point.load()
            _plugins_loaded.add(point.value)


register_kind(SingleKind())
register_kind(MultiKind())
KINDS = kind_names()  # the built-in kinds


def check_name_and_kind(name: str, kind: str) -> None:
    """A ValueError unless ``name`` can name a head (weights, outputs, columns) and ``kind`` is a kind."""
    if not _NAME.match(name) or name in RESERVED:
        raise ValueError(f"head name {name!r} must be lower-case letters, digits and '_', starting "
                         f"with a letter, and not one of {sorted(RESERVED)}")
    try:
        head_kind(kind)
    except ValueError as error:
        raise ValueError(f"head {name!r}: {error}") from None


@dataclass
class Head:
    """One output of the model. ``thresholds`` is for kinds that have them (``multi``: 0.5 per label
    unless given). ``floors``: labels whose logit never falls below ``slope * |vector| + intercept``
    (``{label: (slope, intercept)}``, see ``HeadLayer``); the names recipe gives one to a catch-all
    label such as ``other``, so that it wins when no other label's description is near the text."""

    name: str
    kind: str
    labels: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)
    floors: dict[str, tuple[float, float]] = field(default_factory=dict)
    # The labels that stand for "none of the others", as a taxonomy names them; None: those named so
    # (``other``, ``misc`` ...: ``training.few_shot.catch_all_labels``), () for none at all.
    catch_all: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_name_and_kind(self.name, self.kind)
        self.labels = list(self.labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"head {self.name!r}: duplicate labels in {self.labels}")
        if any(not isinstance(label, str) or not label.strip() for label in self.labels):
            raise ValueError(f"head {self.name!r}: every label must be non-empty text, got {self.labels}")
        self.behaviour.check(self)
        unknown = sorted(set(self.floors) - set(self.labels))
        if unknown:
            raise ValueError(f"head {self.name!r}: floors for labels it does not have: {unknown}")
        self.floors = {label: (float(slope), float(intercept)) for label, (slope, intercept) in self.floors.items()}
        if self.catch_all is not None:
            self.catch_all = tuple(self.catch_all)
            strange = sorted(set(self.catch_all) - set(self.labels))
            if strange:
                raise ValueError(f"head {self.name!r}: catch-all labels it does not have: {strange}")
            if self.catch_all and not self.behaviour.takes_catch_all:
                raise ValueError(f"head {self.name!r} ({self.kind}) has no catch-all label: its kind says "
                                 "'none of these' otherwise")

    @property
    def behaviour(self) -> HeadKind:
        """The kind's object: what this head does (``HeadKind``)."""
        return head_kind(self.kind)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "labels": list(self.labels)}
        if self.behaviour.thresholded:
            data["thresholds"] = dict(self.thresholds)
        if self.floors:  # only heads that have floors say so: older configs (and their versions) unchanged
            data["floors"] = {label: list(floor) for label, floor in self.floors.items()}
        if self.catch_all is not None:
            data["catch_all"] = list(self.catch_all)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Head":
        return cls(name=data["name"], kind=data["kind"], labels=list(data["labels"]),
                   thresholds=dict(data.get("thresholds") or {}),
                   floors={label: tuple(floor) for label, floor in (data.get("floors") or {}).items()},
                   catch_all=tuple(data["catch_all"]) if data.get("catch_all") is not None else None)


class HeadLayer(nn.Linear):
    """A head's linear layer, in which some labels' logits may never fall below ``slope * |x| + intercept``
    (``x``: the pooled vector; ``set_floors``). With rows ``scale * centre / length`` and bias
    ``-scale * shift`` (the names recipe), a label's logit is ``scale * (|x| * cos / length - shift)``,
    so a floor with slope ``scale * tau / length`` and the same intercept lets that label win exactly
    when no other label's cosine reaches ``tau``. Without floors it is ``nn.Linear`` (same weights, same
    exported graph); with them the floor is part of the exported network, one graph for every backend.
    The floors are the head's data (``Head.floors`` in config.json), not weights.

    Example:
        >>> layer = HeadLayer(2, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.eye(2)); _ = layer.bias.zero_()
        >>> layer.set_floors([NO_FLOOR, (0.0, 1.0)])
        >>> layer(torch.tensor([[3.0, 0.0]])).tolist()
        [[3.0, 1.0]]
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("slope", None, persistent=False)
        self.register_buffer("intercept", None, persistent=False)

    def set_floors(self, floors: Sequence[tuple[float, float]] | None) -> None:
        """One ``(slope, intercept)`` per label (``NO_FLOOR`` for none), or None for no floors."""
        if floors is None:
            self.slope = self.intercept = None
            return
        slopes, intercepts = zip(*floors)
        # Buffers that are not saved: they move with the layer, and the weights file stays as it was.
        self.register_buffer("slope", torch.tensor(slopes, dtype=self.weight.dtype, device=self.weight.device),
                             persistent=False)
        self.register_buffer("intercept", torch.tensor(intercepts, dtype=self.weight.dtype, device=self.weight.device),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.slope is None:
            return logits
        length = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        return torch.maximum(logits, length * self.slope.to(logits.dtype) + self.intercept.to(logits.dtype))


# A label without a floor: an intercept far below any logit, so the maximum is the logit itself.
NO_FLOOR = (0.0, -1e4)


def head_floors(head: Head) -> list[tuple[float, float]] | None:
    """``head``'s floors in label order for ``HeadLayer.set_floors`` (None when it has none)."""
    return [head.floors.get(label, NO_FLOOR) for label in head.labels] if head.floors else None


def head_layer(head: Head, hidden: int) -> HeadLayer:
    """The layer that computes ``head``'s logits from a pooled vector of size ``hidden``, with the
    head's floors.

    Example:
        >>> head_layer(Head("mood", "single", ["good", "bad"]), 4).slope is None
        True
    """
    layer = HeadLayer(hidden, len(head.labels))
    layer.set_floors(head_floors(head))
    return layer


# ------------------------------------------------------------------------------------ label cells
def is_missing(value: Any) -> bool:
    """An absent cell: None, or the NaN that pandas reads for a null in JSON or Parquet."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def read_label(value: Any) -> str | None:
    """One label from a cell (None when empty); a ``CellError`` for anything but text or a number."""
    if is_missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CellError(f"malformed label {value!r}: expected text")
    label = str(value).strip()
    return label or None


def read_label_list(value: Any) -> tuple[str, ...]:
    """A multi-label cell as a tuple of labels.

    Accepts ``a;b`` text, a JSON list ``["a", "b"]``, a list (Parquet/JSONL), a single label, or an
    empty cell (no labels). Anything else is a ``CellError``.

    Example:
        >>> read_label_list('["late", "rude"]'), read_label_list("late; rude")
        (('late', 'rude'), ('late', 'rude'))
    """
    if is_missing(value):
        return ()
    if isinstance(value, np.ndarray):  # a list cell of Parquet or a saved dataset, as pandas reads it
        value = value.tolist()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise CellError(f"malformed cell {value!r}: not a JSON list ({error.msg})") from None
    if isinstance(value, (list, tuple)):
        labels = []
        for item in value:
            if not isinstance(item, str):
                raise CellError(f"malformed cell {value!r}: list item {item!r} is not text")
            if item.strip():
                labels.append(item.strip())
        return tuple(dict.fromkeys(labels))
    label = read_label(value)
    if label is None:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in label.split(";") if part.strip()))


# --------------------------------------------------------------------------------------- helpers
_EPSILON = 1e-6


def _clip(probabilities: np.ndarray) -> np.ndarray:
    return np.clip(probabilities.astype(np.float64), _EPSILON, 1 - _EPSILON)


def _margin(answer: "HeadPrediction") -> float:
    scores = sorted(answer.scores.values(), reverse=True)
    return scores[0] - (scores[1] if len(scores) > 1 else 0.0)


def _distance_to_threshold(answer: "HeadPrediction", thresholds: dict[str, float]) -> float:
    """How close the closest label is to its decision (its threshold, 0.5 when not given)."""
    return min(abs(score - thresholds.get(label, 0.5)) for label, score in answer.scores.items())


def _known_rows(targets: torch.Tensor) -> torch.Tensor:
    """Which rows of a multi head's targets carry labels (a NaN row: the row leaves the head unknown)."""
    return ~targets.isnan().any(dim=1)


def ranking_loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Mean of -log(softmax mass on the gold labels) over rows with at least one gold label.

    For a row with one label this is the usual cross-entropy; rows without labels add nothing
    (the sigmoid loss teaches "none"), and a batch without any gives 0.

    Example:
        >>> ranking_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))  # -log(e^2 / (e^2 + 1))
        tensor(0.1269)
    """
    labelled = gold.sum(dim=1) > 0
    if not labelled.any():
        return logits.new_zeros(())
    log_probs = torch.log_softmax(logits[labelled].float(), dim=-1)
    gold_mass = torch.logsumexp(log_probs.masked_fill(gold[labelled] <= 0, float("-inf")), dim=-1)
    return -gold_mass.mean()
