"""Earshot's HTTP API: a BentoML service with adaptive batching around ``EarshotModel.predict``.

``build_service(settings)`` makes the service class from settings passed in. ``Earshot``, the name
``bentoml serve earshot.service.service:Earshot`` and ``earshot serve`` load, is built from the
environment (``service/settings.py``) the first time it is asked for, not when this module is imported.
"""

# No `from __future__ import annotations`: the classify annotations use `settings`, a closure variable
# that BentoML and pydantic can only see if the annotations are evaluated where the class is defined.
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import bentoml
import torch
from bentoml.validators import ContentType
from pydantic import Field
from starlette.responses import JSONResponse

from earshot.loop.capture import CaptureWriter
from earshot.loop.corrections import check_labels
from earshot.loop.registry import Registry
from earshot.loop.store import Correction, FeedbackStore
from earshot.model import EarshotModel, Prediction

from . import redaction
from .middleware import GuardMiddleware
from .review import review_app
from .schemas import (Classification, CorrectionItem, CorrectionsStored, FeedbackItem, HeadAnswer, HeadInfo,
                      ModelInfo)
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
        **({} if settings.tracing else {"tracing": {"excluded_urls": [".*"]}}),
    )
    @bentoml.asgi_app(model_info_app, path="/model")
    @bentoml.asgi_app(review_app, path="/review")
    class Earshot:
        def __init__(self) -> None:
            if not settings.log_texts:
                redaction.install()
            if settings.threads:
                torch.set_num_threads(settings.threads)
            self.registry = Registry(settings.registry) if settings.registry else None
            self.model = self._load(self.registry.current_path() if self.registry else settings.model)
            self.store = (FeedbackStore.open(settings.feedback_db, similar_above=settings.review_similar)
                          if settings.feedback_db else None)
            self.capture = CaptureWriter(self.store, settings.capture) if self.store else None
            self._stop = threading.Event()
            if self.registry is not None:
                threading.Thread(target=self._follow_registry, name="earshot-registry", daemon=True).start()
            if self.store is not None and settings.retention_days:
                threading.Thread(target=self._purge_expired, name="earshot-retention", daemon=True).start()

        def _load(self, folder: str | Path | None) -> EarshotModel:
            model = EarshotModel.from_pretrained(folder, device=settings.device, backend=settings.backend)
            logger.info("earshot model %s loaded (%s on %s): heads %s", model.version, model.backend,
                        model.device, [head.name for head in model.config.heads])
            return model

        def _follow_registry(self) -> None:
            """Swap to the registry's current version when it moves: load first, then replace the
            reference, so requests in flight finish on the old model and none is dropped."""
            while not self._stop.wait(settings.reload_seconds):
                version = self.registry.current()
                if version is None or version == self.model.version:
                    continue
                try:
                    self.model = self._load(self.registry.path(version))
                except Exception:  # a broken version must not take the service down: keep serving the old one
                    logger.exception("could not load version %s from %s; still serving %s", version,
                                     self.registry.root, self.model.version)
                    self._stop.wait(30)

        def _purge_expired(self) -> None:
            while True:
                deleted = self.store.purge(older_than_days=settings.retention_days)
                if any(deleted.values()):
                    logger.info("retention %d days: deleted %s", settings.retention_days, deleted)
                if self._stop.wait(3600):
                    return

        @bentoml.on_shutdown
        def _close(self) -> None:
            self._stop.set()
            if self.capture is not None:
                self.capture.close()

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
            model = self.model  # one model for the whole batch, even if a promotion swaps it meanwhile
            texts = [item.text for item in items]
            predictions = model.predict(texts)
            if self.capture is not None:
                self.capture.offer(texts, predictions, model.version or "", [item.id for item in items],
                                   {head.name: head.thresholds for head in model.config.heads},
                                   [item.metadata for item in items])
            return [_classification(item, prediction, model.version or "")
                    for item, prediction in zip(items, predictions)]

        @bentoml.api(route="/corrections")
        def corrections(self, items: Annotated[list[CorrectionItem], Field(min_length=1, max_length=settings.max_items)],
                        reviewer: str | None = None, allow_new_labels: bool = False) -> CorrectionsStored:
            """Store the right labels for texts (named by the id they were classified with, or the text).

            Labels are checked against the served model's heads: an unknown label is a 400 that names
            it, unless ``allow_new_labels`` is true. The answer is sent once the store has committed them.
            """
            if self.store is None:
                raise bentoml.exceptions.NotFound(
                    "no feedback store: start the service with --feedback-db PATH_OR_URL (EARSHOT_FEEDBACK_DB)")
            heads = self.model.config.heads
            records = []
            for number, item in enumerate(items):
                where = f"item {number}" + (f" (id {item.id!r})" if item.id is not None else "")
                try:
                    labels = check_labels(item.labels, heads, allow_new_labels=allow_new_labels, where=where)
                except ValueError as error:
                    raise bentoml.exceptions.InvalidArgument(str(error)) from None
                text = item.text if item.text is not None else self.store.text_for_id(item.id)
                if text is None:
                    raise bentoml.exceptions.InvalidArgument(
                        f"{where}: no text was classified with this id while the store was on; send the text too")
                records.append(Correction(labels=labels, text=text, caller_id=item.id, reviewer=reviewer))
            ids = self.store.add_corrections(records)
            return CorrectionsStored(stored=len(ids), ids=ids)

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
