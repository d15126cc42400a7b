"""Earshot's HTTP API: a BentoML service with adaptive batching around ``EarshotModel.predict``.

``build_service(settings)`` makes the service class from settings passed in. ``Earshot``, the name
``bentoml serve earshot.service.service:Earshot`` and ``earshot serve`` load, is built from the
environment (``service/settings.py``) the first time it is asked for, not when this module is imported.
"""

# No `from __future__ import annotations`: the classify annotations use `settings`, a closure variable
# that BentoML and pydantic can only see if the annotations are evaluated where the class is defined.
import logging
from functools import lru_cache
from typing import Annotated, Any

import bentoml
import torch
from bentoml.validators import ContentType
from pydantic import Field
from starlette.responses import JSONResponse

from earshot.model import EarshotModel, Prediction

from . import redaction
from .middleware import GuardMiddleware
from .schemas import Classification, FeedbackItem, HeadAnswer, HeadInfo, ModelInfo
from .settings import Settings

logger = logging.getLogger("earshot.service")


async def model_info_app(scope: dict, receive, send) -> None:
    """GET /model: the served model's version, heads, thresholds and training metrics."""
    if scope["type"] != "http":
        return
    if scope["method"] not in ("GET", "HEAD"):
        response = JSONResponse({"error": "use GET"}, status_code=405, headers={"allow": "GET"})
    else:
        response = JSONResponse(bentoml.get_current_service().info().model_dump())
    await response(scope, receive, send)


def build_service(settings: Settings) -> Any:
    """The BentoML service class for ``settings``.

    Example:
        >>> Service = build_service(Settings.from_env({"EARSHOT_MAX_ITEMS": "8"}))
    """

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
            self.model = EarshotModel.from_pretrained(settings.model, device=settings.device,
                                                      backend=settings.backend)
            logger.info("earshot model %s loaded (%s on %s): heads %s", self.model.version, self.model.backend,
                        self.model.device, [head.name for head in self.model.config.heads])

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
            """Every head's answer for each item, in request order, with the answering model's version."""
            predictions = self.model.predict([item.text for item in items])
            return [_classification(item, prediction, self.model.version or "")
                    for item, prediction in zip(items, predictions)]

        def info(self) -> ModelInfo:
            config = self.model.config
            return ModelInfo(version=self.model.version or "", label=config.label, base_model=config.base_model,
                             heads=[HeadInfo(**head.to_dict()) for head in config.heads],
                             max_length=config.max_length, device=str(self.model.device), backend=self.model.backend,
                             training={k: v for k, v in config.provenance.items() if k not in ("history", "config")},
                             metrics=config.metrics)

    Earshot.add_asgi_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    return Earshot


def _classification(item: FeedbackItem, prediction: Prediction, version: str) -> Classification:
    return Classification(id=item.id, model_version=version, truncated=prediction.truncated,
                          heads={name: HeadAnswer(**answer.to_dict()) for name, answer in prediction.heads.items()})


@lru_cache(maxsize=1)
def _from_environment() -> Any:
    return build_service(Settings.from_env())


def __getattr__(name: str) -> Any:
    # The module-level service that `bentoml serve earshot.service.service:Earshot` asks for, built
    # from the environment on first use: importing this module reads no setting.
    if name == "Earshot":
        return _from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
