"""A taxonomy file: each head's labels by name, with a one-line description and optional examples.

Descriptions and examples become training examples of their label, so a label that nobody has
labelled yet still gets a head row from its description (what the model knows of it on day one),
and the review loop can collect real examples for it.

    heads:
      intent:
        kind: single              # or multi
        labels:
          - name: card_arrival
            description: The customer is waiting for a card that has not arrived.
            examples:
              - I am still waiting on my card?
        examples:                 # optional, e.g. pasted from data: each names its label
          - {text: "Where is my new card?", label: card_arrival}
        # catch_all: LABEL        # optional (single heads): the label for "none of the others", which
                                  # wins when no other description is near; `none`: no such label.
                                  # Unset: labels named other, misc, none, oos ... are taken as one.

Example:
    >>> taxonomy = read_taxonomy("examples/banking77-taxonomy.yaml")
    >>> taxonomy.heads[0].name, len(taxonomy.heads[0].labels)
    ('intent', 77)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from earshot.model import SINGLE, Head
from earshot.model.heads import check_name_and_kind, head_kind

from .data import DataError, Example

_LINE = "__line__"


@dataclass(frozen=True)
class TaxonomyLabel:
    name: str
    description: str
    examples: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class TaxonomyHead:
    name: str
    kind: str
    labels: tuple[TaxonomyLabel, ...]
    catch_all: tuple[str, ...] | None = None  # None: the labels named so (other, misc ...)

    def head(self) -> Head:
        return Head(self.name, self.kind, [label.name for label in self.labels], catch_all=self.catch_all)


@dataclass(frozen=True)
class Taxonomy:
    source: str
    heads: tuple[TaxonomyHead, ...]

    def head(self, name: str) -> TaxonomyHead | None:
        return next((head for head in self.heads if head.name == name), None)

    def examples(self) -> list[Example]:
        """Each description and example text as a training example of its label (row 0: not from data).

        Other heads' labels are unknown on these texts.
        """
        examples = []
        for head in self.heads:
            for label in head.labels:
                value = head.head().behaviour.label_value([label.name])
                for text in (label.description, *label.examples):
                    if text:
                        examples.append(Example(text=text, labels={head.name: value}, row=0))
        return examples


class _LineLoader(yaml.SafeLoader):
    """Safe YAML whose mappings remember the line they start on, for error messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping


def read_taxonomy(path: str | Path) -> Taxonomy:
    """Read and check a taxonomy file; every error names the file, the line and the label."""
    source = str(path)
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LineLoader)
    except OSError as error:
        raise DataError(f"{source}: cannot read the taxonomy ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{source}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    specs = document.get("heads") if isinstance(document, dict) else None
    names = [name for name in specs if name != _LINE] if isinstance(specs, dict) else []
    if not names:
        raise DataError(f"{source}: expected a mapping 'heads:' of head name -> {{kind, labels}}; see "
                        "examples/banking77-taxonomy.yaml")
    return Taxonomy(source=source, heads=tuple(_read_head(source, str(name), specs[name], specs[_LINE])
                                               for name in names))


def _read_head(source: str, name: str, spec: Any, line: int) -> TaxonomyHead:
    if not isinstance(spec, dict):
        raise DataError(f"{source}, line {line}: head {name!r} must be a mapping with 'kind' and 'labels'")
    line = spec[_LINE]
    kind = spec.get("kind", SINGLE)
    try:
        check_name_and_kind(name, kind)
    except ValueError as error:
        raise DataError(f"{source}, line {line}: {error}") from None
    entries = spec.get("labels")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{source}, line {line}: head {name!r} has no 'labels' list")
    labels: dict[str, TaxonomyLabel] = {}
    extra: dict[str, list[str]] = {}
    for entry in entries:
        label = _read_label(source, name, entry, line)
        if label.name in labels:
            raise DataError(f"{source}, line {label.line}: label {label.name!r} of head {name!r} appears twice "
                            f"(first at line {labels[label.name].line})")
        labels[label.name] = label
        extra[label.name] = []
    for item in spec.get("examples") or []:
        item_line = item.get(_LINE, line) if isinstance(item, dict) else line
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
            raise DataError(f"{source}, line {item_line}: each item of {name!r} 'examples' needs 'text' and 'label'")
        label_name = str(item.get("label", "")).strip()
        if label_name not in labels:
            raise DataError(f"{source}, line {item_line}: example label {label_name!r} is not a label of head "
                            f"{name!r} in this taxonomy")
        extra[label_name].append(item["text"].strip())
    return TaxonomyHead(name, kind, tuple(TaxonomyLabel(label.name, label.description,
                                                        (*label.examples, *extra[label.name]), label.line)
                                          for label in labels.values()),
                        _read_catch_all(source, name, kind, spec, labels, line))


def _read_catch_all(source: str, head: str, kind: str, spec: dict, labels: dict[str, TaxonomyLabel],
                    line: int) -> tuple[str, ...] | None:
    """A head's ``catch_all:``: a label or a list of labels that stand for "none of the others", or
    ``none`` / ``false`` / ``[]`` for no catch-all; absent: the labels named so (other, misc ...)."""
    if "catch_all" not in spec:
        return None
    value = spec["catch_all"]
    if value is False or (isinstance(value, list) and not value) or (
            isinstance(value, str) and value.strip() not in labels and value.strip().lower() == "none"):
        return ()
    names = value if isinstance(value, list) else [value]
    if value is None or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise DataError(f"{source}, line {line}: head {head!r}: 'catch_all' must be a label, a list of labels or "
                        f"none, found {value!r}")
    names = [str(n).strip() for n in names]  # as label names are read
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise DataError(f"{source}, line {line}: head {head!r}: catch_all names {unknown}, not labels of the head "
                        f"({sorted(labels)})")
    if not head_kind(kind).takes_catch_all:
        raise DataError(f"{source}, line {line}: head {head!r} is {kind}: a text with none of its labels gets an "
                        "empty set, so it takes no catch_all")
    if set(names) == set(labels):
        raise DataError(f"{source}, line {line}: head {head!r}: catch_all names every label; a catch-all stands "
                        "for none of the others")
    return tuple(names)


def _read_label(source: str, head: str, entry: Any, line: int) -> TaxonomyLabel:
    if not isinstance(entry, dict):
        raise DataError(f"{source}, line {line}: each label of head {head!r} needs 'name' and 'description', "
                        f"found {entry!r}")
    line = entry[_LINE]
    name = str(entry.get("name") or "").strip()
    if not name:
        raise DataError(f"{source}, line {line}: a label of head {head!r} has an empty name")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise DataError(f"{source}, line {line}: label {name!r} has no one-line 'description'")
    examples = entry.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, str) and e.strip() for e in examples):
        raise DataError(f"{source}, line {line}: label {name!r}: 'examples' must be a list of texts")
    return TaxonomyLabel(name, description.strip(), tuple(e.strip() for e in examples), line)
