"""Evidence for an answer: the words whose deletion lowers a label's score the most (occlusion).

For each word of a text, the text is scored again without that word; a word's weight for a label is
the label's score on the whole text minus its score without the word. The evidence of a label is its
(at most ``top``) words of highest positive weight, as character ranges into the text as sent. The
method asks the model itself (no attention weights, no gradients of a surrogate), so the spans are
what the model's answer depends on: deleting them together lowers the score (``benchmarks/evidence.py``
measures by how much, against deleting as many random words).

Cost: a text of n words is scored n + 1 times, all in batches of the model's usual forward passes;
``docs/experiments.md`` has the measured cost of an explained request against a plain one.

Example:
    >>> explainer = Explainer(model)                                              # doctest: +SKIP
    >>> explainer.explain(["my bag never arrived"])[0]["pain_points"]["Lost or damaged item"][0].text  # doctest: +SKIP
    'bag'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from .modeling import EarshotModel, Prediction

# a word: a run of non-space characters, without the punctuation around it (but keeping @ and #,
# which carry meaning in tweets); offsets are into the text as sent
_TOKEN = re.compile(r"\S+")
_EDGE = "\"'“”‘’()[]{}<>.,;:!?…*"
TOP = 3


@dataclass(frozen=True)
class Evidence:
    """One span of the text and how much the label's score fell when it was deleted."""

    start: int
    end: int
    text: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "weight": round(self.weight, 4)}


def word_spans(text: str) -> list[tuple[int, int]]:
    """The words of ``text`` as (start, end) character ranges, punctuation around them left out.

    Example:
        >>> word_spans("Lost my bag!! (again)")
        [(0, 4), (5, 7), (8, 11), (15, 20)]
    """
    spans = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        while start < end and text[start] in _EDGE:
            start += 1
        while end > start and text[end - 1] in _EDGE:
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with ``spans`` deleted (each with the space after it, so no double spaces are left).

    Example:
        >>> without("my bag never arrived", [(3, 6)])
        'my never arrived'
    """
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        last = end
        while last < len(text) and text[last] == " ":
            last += 1
            break
    out.append(text[last:])
    return "".join(out)


class Explainer:
    """Occlusion evidence for the labels a model answers.

    ``top``: at most this many spans per label, best first; only spans whose deletion lowers the
    label's score count."""

    def __init__(self, model: "EarshotModel", top: int = TOP) -> None:
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        self.model, self.top = model, top

    def explain(self, texts: Sequence[str], predictions: Sequence["Prediction"] | None = None
                ) -> list[dict[str, dict[str, list[Evidence]]]]:
        """For each text, ``{head: {label: [Evidence, ...]}}`` for every label its answer gives
        (``predictions``: the answers already made for these texts, else they are made here)."""
        if predictions is None:
            predictions = self.model.predict(texts)
        spans = [word_spans(text) for text in texts]
        variants = [without(text, [span]) for text, text_spans in zip(texts, spans) for span in text_spans]
        scores = self.model.predict_proba([*texts, *variants]) if variants else None
        out, row = [], len(texts)
        for number, (text, text_spans, prediction) in enumerate(zip(texts, spans, predictions)):
            rows = slice(row, row + len(text_spans))
            row += len(text_spans)
            out.append({name: {entry.label: self._evidence(text, text_spans, scores, name, entry.label, number, rows)
                               for entry in answer.labels}
                        for name, answer in prediction.heads.items()})
        return out

    def _evidence(self, text: str, spans: list[tuple[int, int]], scores: Any, head: str, label: str,
                  number: int, rows: slice) -> list[Evidence]:
        if not spans or scores is None:
            return []
        column = self.model.config.head(head).labels.index(label)
        drops = scores[head][number, column] - scores[head][rows, column]
        best = [int(i) for i in np.argsort(-drops, kind="stable")[: self.top] if drops[i] > 0]
        return [Evidence(spans[i][0], spans[i][1], text[spans[i][0]:spans[i][1]], float(drops[i])) for i in best]


def evidence_dicts(found: Mapping[str, Mapping[str, Sequence[Evidence]]]) -> dict[str, dict[str, list[dict]]]:
    """One text's evidence as plain JSON-able dictionaries (the ``NAME_evidence`` columns, the API)."""
    return {head: {label: [item.to_dict() for item in items] for label, items in labels.items()}
            for head, labels in found.items()}
