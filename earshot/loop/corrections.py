"""Checking corrections against a model's heads, and turning them into training examples.

Example:
    >>> check_labels({"sentiment": "negative"}, [Head("sentiment", "single", ["negative", "positive"])])
    {'sentiment': 'negative'}
"""

from __future__ import annotations

from typing import Any, Sequence

from earshot.model import Head
from earshot.training.data import Example

from .store import Correction, Labels, text_hash


def check_labels(labels: dict[str, Any], heads: Sequence[Head], *, allow_new_labels: bool = False,
                 where: str = "correction") -> Labels:
    """``labels`` with each value in its head's shape (single: a label or null; multi: a list).

    An unknown head, a value of the wrong shape, or (unless ``allow_new_labels``) a label the head
    does not have is a ValueError naming ``where``, the head and the label.
    """
    by_name = {head.name: head for head in heads}
    if not labels:
        raise ValueError(f"{where}: no labels; give one entry per head, e.g. {{{heads[0].name!r}: ...}}")
    checked: Labels = {}
    for name, value in labels.items():
        head = by_name.get(name)
        if head is None:
            raise ValueError(f"{where}: unknown head {name!r}; the model's heads are {sorted(by_name)}")
        stored, values = head.behaviour.check_correction(head, value, where)
        for label in values:
            if not label.strip():
                raise ValueError(f"{where}: head {name!r}: empty label")
            if label not in head.labels and not allow_new_labels:
                raise ValueError(f"{where}: unknown label {label!r} for head {name!r} (known: {head.labels}); "
                                 "send allow_new_labels: true to add it to the taxonomy")
        checked[name] = stored
    return checked


def merge_corrections(examples: Sequence[Example], corrections: Sequence[Correction], heads: Sequence[Head],
                      ) -> tuple[list[Example], list[Head], int]:
    """Training examples with the corrections applied, one per text; heads grown by any new labels.

    A correction replaces the base labels of the same text (heads it leaves out keep the base
    labels; for a text not in the base data, a left-out single head is unknown and a left-out multi
    head has none of its labels). Later copies of a text are dropped. Returns the examples, the
    heads, and how many base rows a correction changed.
    """
    by_text: dict[str, Example] = {}
    for example in examples:
        by_text.setdefault(text_hash(example.text), example)
    labels_seen = {head.name: list(head.labels) for head in heads}
    changed = 0
    for number, correction in enumerate(corrections):
        key = text_hash(correction.text)
        base = by_text.get(key)
        labels = dict(base.labels) if base is not None else {
            head.name: head.behaviour.label_value([]) for head in heads}
        for head in heads:
            if head.name not in correction.labels:
                continue
            value = correction.labels[head.name]
            labels[head.name] = head.behaviour.label_value(label_list(value))
            for label in ([value] if isinstance(value, str) else value or []):
                if label not in labels_seen[head.name]:
                    labels_seen[head.name].append(label)
        if base is not None and labels != base.labels:
            changed += 1
        by_text[key] = Example(text=correction.text if base is None else base.text, labels=labels,
                               row=base.row if base is not None else -(number + 1))
    grown = [Head(head.name, head.kind, labels_seen[head.name]) for head in heads]
    return list(by_text.values()), grown, changed


def label_list(value: str | list[str] | None) -> list[str]:
    """A stored correction's value (a label, a list of labels, or null) as a list of labels."""
    return [value] if isinstance(value, str) else list(value or [])


def split_corrections(corrections: Sequence[Correction], holdout_fraction: float
                      ) -> tuple[list[Correction], list[Correction]]:
    """Corrections to train on and corrections held out to compare models on.

    The split is by each text's hash, so a text stays on its side as corrections accumulate and a
    later retrain never trains on what an earlier comparison was scored on.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"--holdout-fraction must be at least 0 and below 1, got {holdout_fraction}")
    train, holdout = [], []
    for correction in corrections:
        bucket = int(text_hash(correction.text)[:8], 16) / 16 ** 8
        (holdout if bucket < holdout_fraction else train).append(correction)
    return train, holdout
