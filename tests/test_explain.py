"""Occlusion evidence: the words an answer depends on, as character ranges into the text as sent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from earshot.model import Head
from earshot.model.explain import Explainer, without, word_spans
from earshot.model.modeling import HeadPrediction, LabelScore, Prediction


@dataclass
class KeywordConfig:
    heads: list

    def head(self, name: str) -> Head:
        return next(h for h in self.heads if h.name == name)


class KeywordModel:
    """A toy model: `lost_item` fires on the word "bag", `late` on "delayed"; nothing else matters."""

    def __init__(self) -> None:
        self.config = KeywordConfig([Head("pain_points", "multi", ["lost_item", "late"])])

    def predict_proba(self, texts):
        words = [set(text.lower().replace("!", " ").split()) for text in texts]
        return {"pain_points": np.array([[0.95 if "bag" in w else 0.05, 0.9 if "delayed" in w else 0.1]
                                         for w in words])}

    def predict(self, texts):
        scores = self.predict_proba(texts)["pain_points"]
        return [Prediction({"pain_points": HeadPrediction("multi", [LabelScore(label, float(p)) for label, p in
                                                                     zip(["lost_item", "late"], row) if p >= 0.5],
                                                          dict(zip(["lost_item", "late"], map(float, row))))},
                           False) for row in scores]


def test_the_evidence_of_a_keyword_label_is_that_keyword() -> None:
    text = "Flight delayed and then my bag never showed up!"
    found = Explainer(KeywordModel()).explain([text, "all fine"])
    lost, late = found[0]["pain_points"]["lost_item"], found[0]["pain_points"]["late"]
    assert [(e.text, text[e.start:e.end]) for e in lost] == [("bag", "bag")]
    assert lost[0].weight == pytest.approx(0.9)
    assert [e.text for e in late] == ["delayed"]
    assert found[1] == {"pain_points": {}}  # no label answered, nothing to explain


def test_word_spans_and_deletion_keep_offsets_into_the_text_as_sent() -> None:
    text = '  "Lost" my bag… again!! @Skyvia #fail'
    spans = word_spans(text)
    assert [text[a:b] for a, b in spans] == ["Lost", "my", "bag", "again", "@Skyvia", "#fail"]
    assert without(text, [spans[2], spans[0]]) == '  "" my … again!! @Skyvia #fail'
    assert word_spans("  ...  ") == []


def test_top_must_be_positive() -> None:
    with pytest.raises(ValueError, match="top must be at least 1"):
        Explainer(KeywordModel(), top=0)
