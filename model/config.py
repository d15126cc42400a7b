"""Earshot's own settings, stored in the model folder's ``config.json`` under the ``earshot`` key.

The encoder's configuration (hidden size, vocabulary, ...) stays at the top level of ``config.json``
so that the folder remains readable by ``transformers.AutoConfig``; everything earshot adds lives
under one key so that it never collides with a transformers field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CONFIG_KEY = "earshot"
FORMAT_VERSION = 1


@dataclass
class EarshotConfig:
    """Labels, thresholds and provenance of one trained earshot model.

    Example:
        >>> cfg = EarshotConfig(sentiment_labels=["negative", "positive"], pain_point_labels=["late"])
        >>> cfg.thresholds
        {'late': 0.5}
    """

    sentiment_labels: list[str]
    pain_point_labels: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)
    base_model: str = ""
    max_length: int = 128
    pooling: str = "mean"
    version: str = "0"
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name, labels in (("sentiment", self.sentiment_labels), ("pain-point", self.pain_point_labels)):
            if len(set(labels)) != len(labels):
                raise ValueError(f"duplicate {name} labels: {labels}")
        if not self.sentiment_labels and not self.pain_point_labels:
            raise ValueError("a model needs at least one head: no sentiment and no pain-point labels were given")
        if len(self.sentiment_labels) == 1:
            raise ValueError(f"a sentiment head needs at least two classes, got {self.sentiment_labels}")
        unknown = set(self.thresholds) - set(self.pain_point_labels)
        if unknown:
            raise ValueError(f"thresholds given for unknown pain points: {sorted(unknown)}")
        for label in self.pain_point_labels:
            self.thresholds.setdefault(label, 0.5)
        for label, value in self.thresholds.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"threshold for {label!r} must be in (0, 1), got {value}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EarshotConfig":
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(
                f"this model folder was written by a newer earshot (format {version}); "
                f"this earshot reads format {FORMAT_VERSION} at most: upgrade earshot"
            )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
