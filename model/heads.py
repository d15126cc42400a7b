"""A head is data: a name, a kind and its labels.

``single``: exactly one label per text (softmax), such as sentiment. ``multi``: any number of labels
per text (independent sigmoids, one threshold per label), such as pain points or praise points. Code
iterates over a model's heads; no layer names a particular head.

Example:
    >>> Head("praise_points", "multi", ["food", "service"]).thresholds
    {'food': 0.5, 'service': 0.5}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SINGLE, MULTI = "single", "multi"
KINDS = (SINGLE, MULTI)
# Head names become weight names, output names and table columns: keep them plain.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Names a head cannot take, because the forward pass or the scored tables already use them.
RESERVED = frozenset({"embedding", "error", "model_version", "truncated", "id", "text"})


def check_name_and_kind(name: str, kind: str) -> None:
    """A ValueError unless ``name`` can name a head (weights, outputs, columns) and ``kind`` is a kind."""
    if not _NAME.match(name) or name in RESERVED:
        raise ValueError(f"head name {name!r} must be lower-case letters, digits and '_', starting "
                         f"with a letter, and not one of {sorted(RESERVED)}")
    if kind not in KINDS:
        raise ValueError(f"head {name!r}: kind must be one of {KINDS}, got {kind!r}")


@dataclass
class Head:
    """One output of the model. ``thresholds`` is for ``multi`` heads only (default 0.5 per label)."""

    name: str
    kind: str
    labels: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name_and_kind(self.name, self.kind)
        self.labels = list(self.labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"head {self.name!r}: duplicate labels in {self.labels}")
        if any(not isinstance(label, str) or not label.strip() for label in self.labels):
            raise ValueError(f"head {self.name!r}: every label must be non-empty text, got {self.labels}")
        if self.kind == SINGLE:
            if len(self.labels) < 2:
                raise ValueError(f"head {self.name!r} (single) needs at least two labels, got {self.labels}")
            if self.thresholds:
                raise ValueError(f"head {self.name!r} (single) takes the best label; it has no thresholds")
            return
        if not self.labels:
            raise ValueError(f"head {self.name!r} (multi) needs at least one label")
        unknown = set(self.thresholds) - set(self.labels)
        if unknown:
            raise ValueError(f"head {self.name!r}: thresholds given for unknown labels {sorted(unknown)}")
        self.thresholds = {label: float(self.thresholds.get(label, 0.5)) for label in self.labels}
        for label, value in self.thresholds.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"head {self.name!r}: threshold for {label!r} must be in (0, 1), got {value}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "labels": list(self.labels)}
        if self.kind == MULTI:
            data["thresholds"] = dict(self.thresholds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Head":
        return cls(name=data["name"], kind=data["kind"], labels=list(data["labels"]),
                   thresholds=dict(data.get("thresholds") or {}))
