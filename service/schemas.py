"""Request and response schemas of the HTTP API; their examples show in the OpenAPI page.

Answers carry one entry per head of the served model, by head name, so the schema does not change
when a model has other heads (a praise-point head, a taxonomy of its own).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator


class FeedbackItem(BaseModel):
    """One text to classify, with an optional id that the answer echoes."""

    # OpenAPI 3.0 takes one `example` per schema (BentoML's schema type rejects `examples`).
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"id": "ticket-4711", "text": "My bag never arrived and nobody answers the phone."}})

    id: str | None = Field(default=None, max_length=200, description="caller's id, echoed in the answer")
    text: str = Field(description="the feedback text; cut to the model's token limit (see `truncated`)")
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        default=None, description="channel, customer tier, ticket id...: routing rules can match it, deliveries "
                                  "carry it, and it is kept with the item when it is queued for review")
    explain: bool = Field(default=False, description="add `evidence` to every answered label: the words the "
                                                      "answer depends on (the text is scored once per word)")
    created_at: datetime | None = Field(
        default=None, description="when the customer wrote it (ISO 8601; default: when it arrived): spike alerts "
                                  "count it in its hour")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty or only whitespace")
        return text


class Evidence(BaseModel):
    """A span of the text as sent (character offsets, end exclusive) and how much the label's score fell
    when the model read the text without it."""

    start: int
    end: int
    text: str
    weight: float


class LabelScore(BaseModel):
    label: str
    score: float
    evidence: list[Evidence] | None = Field(
        default=None, description="with \"explain\": true, at most three spans, best first (left out otherwise)")

    @model_serializer(mode="wrap")
    def _without_absent_evidence(self, handler):
        data = handler(self)
        if data.get("evidence") is None:
            data.pop("evidence", None)
        return data


class HeadAnswer(BaseModel):
    """One head's answer: ``single`` heads give their one best label, ``multi`` heads every label at
    or over its threshold, best first (possibly none); ``scores`` has every label."""

    kind: str = Field(description="single (one label per text), multi (any number) or a kind a plugin registers")
    labels: list[LabelScore]
    scores: dict[str, float]


class Classification(BaseModel):
    """What the model says about one item, in request order."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "id": "ticket-4711", "model_version": "a46163c80ee472ab",
        "heads": {"sentiment": {"kind": "single", "labels": [{"label": "negative", "score": 0.97}],
                                "scores": {"negative": 0.97, "neutral": 0.02, "positive": 0.01}},
                  "pain_points": {"kind": "multi", "labels": [{"label": "Lost or damaged item", "score": 0.93}],
                                  "scores": {"Lost or damaged item": 0.93, "Delays": 0.04}}},
        "truncated": False}})

    id: str | None
    model_version: str = Field(description="id of the model that answered (see GET /model)")
    heads: dict[str, HeadAnswer] = Field(description="one answer per head of the model, by head name")
    truncated: bool = Field(description="true when the text was cut to the model's token limit")


class HeadInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    thresholds: dict[str, float] = Field(default_factory=dict)
    catch_all: list[str] = Field(default_factory=list, description=(
        "labels that also take every text no other label's description is near (a taxonomy from names)"))

    @classmethod
    def of(cls, head: Any) -> "HeadInfo":
        """A model head (``earshot.model.Head``) as GET /model shows it."""
        return cls(name=head.name, kind=head.kind, labels=list(head.labels), thresholds=dict(head.thresholds),
                   catch_all=list(head.floors))


class ModelInfo(BaseModel):
    version: str
    label: str
    base_model: str
    heads: list[HeadInfo]
    max_length: int
    device: str
    backend: str
    training: dict
    metrics: dict


class CorrectionItem(BaseModel):
    """The right labels for one text, named by its ``id`` (as sent to /classify) or its ``text``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "id": "ticket-4711", "labels": {"sentiment": "negative", "pain_points": ["Delays"]}}})

    id: str | None = Field(default=None, max_length=200, description="the id the text was classified with")
    text: str | None = Field(default=None, description="the text itself (needed when the id was never classified "
                                                       "with a feedback store)")
    item: int | None = Field(default=None, description="the review queue's item number (GET /review/queue): names "
                                                       "its text without sending it, as the page does when it "
                                                       "shows texts redacted")
    labels: dict[str, str | list[str] | None] = Field(
        description="one key per head: a label (single head, null = unknown) or a list (multi head, [] = none)")

    @model_validator(mode="after")
    def _named(self) -> "CorrectionItem":
        if self.id is None and self.item is None and (self.text is None or not self.text.strip()):
            raise ValueError("give the item's id, its review item number or its text")
        return self


class CorrectionsStored(BaseModel):
    """The corrections are committed to the feedback store when this answer is sent."""

    stored: int
    ids: list[int] = Field(description="the store's ids of the corrections, in request order")
