"""Earshot's HTTP API: BentoML service with adaptive batching around ``EarshotModel.predict``.

Run with ``earshot serve`` or ``bentoml serve service.service:Earshot``; settings come from the
environment (see ``service/settings.py``).
"""

from __future__ import annotations

import logging
from typing import Annotated

import bentoml
import torch
from bentoml.validators import ContentType
from pydantic import Field
from starlette.responses import JSONResponse

from model import EarshotModel, Prediction
from service import redaction
from service.middleware import GuardMiddleware
from service.schemas import Classification, FeedbackItem, ModelInfo, PainPointScore
from service.settings import Settings

settings = Settings.from_env()
logger = logging.getLogger("earshot.service")


async def model_info_app(scope: dict, receive, send) -> None:
    """GET /model: the served model's version, labels, thresholds and training metrics."""
    if scope["type"] != "http":
        return
    if scope["method"] not in ("GET", "HEAD"):
        response = JSONResponse({"error": "use GET"}, status_code=405, headers={"allow": "GET"})
    else:
        response = JSONResponse(bentoml.get_current_service().info().model_dump())
    await response(scope, receive, send)


@bentoml.service(
    name="earshot",
    workers=settings.workers,
    resources={"gpu": 1} if settings.gpu else {},
    traffic={"timeout": 60},
    # Feedback text is personal data: request logging stays off unless asked for.
    logging={"access": {"enabled": settings.log_texts, "request_content_length": True,
                        "request_content_type": True}},
)
@bentoml.asgi_app(model_info_app, path="/model")
class Earshot:
    def __init__(self) -> None:
        if not settings.log_texts:
            redaction.install()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.model = EarshotModel.from_pretrained(settings.model, device=settings.device, backend=settings.backend)
        logger.info("earshot model loaded on %s: %d sentiment, %d pain-point labels", self.model.device,
                    len(self.model.sentiment_labels), len(self.model.pain_point_labels))

    def __is_ready__(self) -> bool:
        return getattr(self, "model", None) is not None

    # max_batch_size: 64 texts fill two cores (larger batches gain no throughput on CPU, measured
    # in benchmarks/load.py) and keep one forward pass short. max_latency_ms is a ceiling, not a
    # wait: the dispatcher waits only as long as batching pays off, and cancels (503) work that
    # would exceed it, so it sits well above the p99 target.
    # ContentType: without it BentoML rebuilds the answer's JSON schema for every response to find
    # its media type (a quarter of the HTTP layer's CPU under load, measured with py-spy).
    @bentoml.api(route="/classify", batchable=True, max_batch_size=settings.max_batch_size,
                 max_latency_ms=settings.max_latency_ms)
    def classify(self, items: Annotated[list[FeedbackItem], Field(min_length=1, max_length=settings.max_items)]
                 ) -> Annotated[list[Classification], ContentType("application/json")]:
        """Sentiment and pain points for each item, in request order."""
        predictions = self.model.predict([item.text for item in items])
        return [_classification(item, prediction) for item, prediction in zip(items, predictions)]

    def info(self) -> ModelInfo:
        config = self.model.config
        return ModelInfo(version=config.version, base_model=config.base_model,
                         sentiment_labels=config.sentiment_labels, pain_point_labels=config.pain_point_labels,
                         thresholds=config.thresholds, max_length=config.max_length, device=str(self.model.device),
                         backend=self.model.backend,
                         training={k: v for k, v in config.provenance.items() if k not in ("history", "config")},
                         metrics=config.metrics)


def _classification(item: FeedbackItem, prediction: Prediction) -> Classification:
    sentiment = None
    if prediction.sentiment is not None:
        sentiment = {"label": prediction.sentiment, "score": prediction.sentiment_score,
                     "scores": prediction.sentiment_scores}
    return Classification(id=item.id, sentiment=sentiment,
                          pain_points=[PainPointScore(label=p.label, score=p.score) for p in prediction.pain_points],
                          pain_point_scores=prediction.pain_point_scores, truncated=prediction.truncated)


Earshot.add_asgi_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
