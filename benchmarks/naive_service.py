"""The baseline for benchmarks/load.py: a per-request `transformers` pipeline behind BentoML.

No adaptive batching, no length sorting: each request runs the pipeline on its own text. The model
is a BertForSequenceClassification with the default model's encoder weights, so the network is the
same size as earshot's.
"""

from __future__ import annotations

import os

import bentoml
from pydantic import BaseModel
from transformers import pipeline


class Item(BaseModel):
    id: str | None = None
    text: str


@bentoml.service(name="naive", traffic={"timeout": 120})
class Naive:
    def __init__(self) -> None:
        self.pipe = pipeline("text-classification", model=os.environ["NAIVE_MODEL_DIR"], device="cpu", top_k=None)

    @bentoml.api(route="/classify")
    def classify(self, items: list[Item]) -> list[dict]:
        return [{"id": item.id, "scores": self.pipe(item.text)} for item in items]
