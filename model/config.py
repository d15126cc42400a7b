"""Earshot's own settings, stored in the model folder's ``config.json`` under the ``earshot`` key.

The encoder's configuration (hidden size, vocabulary, ...) stays at the top level of ``config.json``
so that the folder remains readable by ``transformers.AutoConfig``; everything earshot adds lives
under one key so that it never collides with a transformers field.

A model is a list of heads (``model.heads.Head``): data, not code. Folders written before heads were
data (format 1: ``sentiment_labels`` and ``pain_point_labels``) are migrated when read, and their
files are never rewritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .heads import MULTI, SINGLE, Head

CONFIG_KEY = "earshot"
# Format 3 added heads' catch-all floors. A config is written in the lowest format that holds it, so a
# model without floors stays readable by (and byte-identical to) format 2, and an earshot that reads
# format 2 at most refuses a floored model instead of answering without its catch-all rule.
FORMAT_VERSION = 3
FLOORS_FORMAT = 3
HEADS_FORMAT = 2  # heads as a list (format 1 had two fixed heads)
# Format 1 named its two heads in code; these are the names and weight prefixes they migrate to.
LEGACY_HEADS = {"sentiment_head.": "heads.sentiment.", "pain_point_head.": "heads.pain_points."}


@dataclass
class EarshotConfig:
    """Heads, labels, thresholds and provenance of one earshot model.

    Example:
        >>> cfg = EarshotConfig(heads=[Head("sentiment", "single", ["negative", "positive"]),
        ...                            Head("pain_points", "multi", ["late"])])
        >>> cfg.head("pain_points").thresholds
        {'late': 0.5}
    """

    heads: list[Head]
    base_model: str = ""
    max_length: int = 128
    pooling: str = "mean"
    label: str = ""  # a human name for this model version (the version id itself is derived from the files)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.heads = [h if isinstance(h, Head) else Head.from_dict(h) for h in self.heads]
        if not self.heads:
            raise ValueError("a model needs at least one head (a label column to learn from)")
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate head names: {names}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")

    def head(self, name: str) -> Head:
        """The head called ``name``, or a KeyError listing the heads there are."""
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"the model has no head {name!r}; its heads are {[h.name for h in self.heads]}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["heads"] = [h.to_dict() for h in self.heads]
        data["format_version"] = FLOORS_FORMAT if any(h.floors for h in self.heads) else HEADS_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EarshotConfig":
        version = data.get("format_version", 1)
        if version > FORMAT_VERSION:
            raise ValueError(
                f"this model folder was written by a newer earshot (format {version}); "
                f"this earshot reads format {FORMAT_VERSION} at most: upgrade earshot"
            )
        if version < HEADS_FORMAT:
            data = _from_format_1(data)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1's two fixed heads as a list of heads; the rest unchanged."""
    heads = []
    if data.get("sentiment_labels"):
        heads.append({"name": "sentiment", "kind": SINGLE, "labels": data["sentiment_labels"]})
    if data.get("pain_point_labels"):
        heads.append({"name": "pain_points", "kind": MULTI, "labels": data["pain_point_labels"],
                      "thresholds": data.get("thresholds", {})})
    rest = {k: v for k, v in data.items() if k not in ("sentiment_labels", "pain_point_labels", "thresholds",
                                                        "version")}
    return {**rest, "heads": heads, "format_version": FORMAT_VERSION}


def migrate_state(state: dict[str, Any]) -> dict[str, Any]:
    """Weights saved by format 1 under the heads' new names (``sentiment_head.weight`` ->
    ``heads.sentiment.weight``); other names unchanged."""
    renamed = {}
    for name, tensor in state.items():
        for old, new in LEGACY_HEADS.items():
            if name.startswith(old):
                name = new + name[len(old):]
                break
        renamed[name] = tensor
    return renamed
