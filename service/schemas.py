"""Request and response schemas of the HTTP API; their examples show in the OpenAPI page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FeedbackItem(BaseModel):
    """One text to classify, with an optional id that the answer echoes."""

    # OpenAPI 3.0 takes one `example` per schema (BentoML's schema type rejects `examples`).
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"id": "ticket-4711", "text": "My bag never arrived and nobody answers the phone."}})

    id: str | None = Field(default=None, max_length=200, description="caller's id, echoed in the answer")
    text: str = Field(description="the feedback text; cut to the model's token limit (see `truncated`)")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty or only whitespace")
        return text


class PainPointScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    """What the model says about one item, in request order."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "id": "ticket-4711", "sentiment": {"label": "negative", "score": 0.97,
                                           "scores": {"negative": 0.97, "neutral": 0.02, "positive": 0.01}},
        "pain_points": [{"label": "Lost Luggage", "score": 0.93}],
        "pain_point_scores": {"Lost Luggage": 0.93, "Late Flight": 0.04}, "truncated": False}})

    id: str | None
    sentiment: dict | None = Field(description="label, score and all class scores; null for a model without sentiment")
    pain_points: list[PainPointScore] = Field(description="labels at or above their threshold, best first")
    pain_point_scores: dict[str, float]
    truncated: bool = Field(description="true when the text was cut to the model's token limit")


class ModelInfo(BaseModel):
    version: str
    base_model: str
    sentiment_labels: list[str]
    pain_point_labels: list[str]
    thresholds: dict[str, float]
    max_length: int
    device: str
    backend: str
    training: dict
    metrics: dict
