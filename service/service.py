"""Earshot's HTTP API: a BentoML service with adaptive batching around ``EarshotModel.predict``.

``build_service(settings)`` makes the service class from settings passed in. With
``settings.api_workers`` it is split in two (``bentoml.depends``): API workers that tokenize and
answer, in front of a model worker that batches token rows and runs the network
(``service/model_worker.py``). ``Earshot``, the name
``bentoml serve earshot.service.service:Earshot`` and ``earshot serve`` load, is built from the
environment (``service/settings.py``) the first time it is asked for, not when this module is imported.
"""

# No `from __future__ import annotations`: the classify annotations use `settings`, a closure variable
# that BentoML and pydantic can only see if the annotations are evaluated where the class is defined.
import logging
import threading
import time
import uuid
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import bentoml
import numpy as np
import torch
from bentoml.validators import ContentType
from pydantic import Field
from starlette.responses import JSONResponse

from earshot.loop.capture import CaptureWriter
from earshot.loop.corrections import check_labels
from earshot.loop.registry import Registry
from earshot.loop.store import Correction, FeedbackStore, text_hash
from earshot.model import EarshotModel, ModelFront, Prediction
from earshot.model.explain import Explainer, evidence_dicts
from earshot.redaction import redactor
from earshot.routing.dispatch import Dispatch
from earshot.routing.group_commit import Backlogged
from earshot.routing.router import RoutedItem, purge_routed

from . import redaction
from .following import Follower
from .middleware import DeliveryDoor, DurableAnswers, GuardMiddleware
from .model_worker import Coalescer, build_model_worker, load_model, split_outputs, token_rows
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
        response = JSONResponse((await bentoml.get_current_service().model_info()).model_dump())
    await response(scope, receive, send)


def build_service(settings: Settings) -> Any:
    """The BentoML service class for ``settings``.

    Example:
        >>> Service = build_service(Settings.from_env({"EARSHOT_MAX_ITEMS": "8"}))
    """

    split = settings.api_workers > 0
    door = DeliveryDoor()  # the routes' commit log, for the middleware that holds answers until it is written

    @bentoml.service(
        name="earshot",
        workers=settings.api_workers if split else settings.workers,
        resources={"gpu": 1} if settings.gpu and not split else {},
        **settings.service_options(),
    )
    @bentoml.asgi_app(model_info_app, path="/model")
    @bentoml.asgi_app(review_app, path="/review")
    class Earshot:
        if split:
            network = bentoml.depends(build_model_worker(settings))

        def __init__(self) -> None:
            if not settings.log_texts:
                redaction.install()
            if settings.threads and not split:
                torch.set_num_threads(settings.threads)
            self.registry = Registry(settings.registry) if settings.registry else None
            # Split, this process never runs the network: the tokenizer and heads are all it loads.
            self.follower = Follower(self._load_front if split else partial(load_model, settings), settings.model,
                                     self.registry, settings.reload_seconds)
            self.store = (FeedbackStore.open(settings.feedback_db, similar_above=settings.review_similar)
                          if settings.feedback_db else None)
            self.capture = CaptureWriter(self.store, settings.capture) if self.store else None
            self.review_redact = redactor(settings.review_redact, "EARSHOT_REVIEW_REDACT")
            self.review_purpose = settings.queue_purpose
            self.dispatch = self._start_dispatch() if settings.routes else None
            door.log = self.dispatch.log if self.dispatch is not None else None
            self._stop = threading.Event()
            if self.store is not None and settings.retention_days:
                threading.Thread(target=self._purge_expired, name="earshot-retention", daemon=True).start()

        @property
        def model(self) -> EarshotModel | ModelFront:
            """The served model (split: its front, the tokenizer and heads), current with the registry."""
            return self.follower.current

        @staticmethod
        def _load_front(folder: Path | None) -> ModelFront:
            front = ModelFront.from_pretrained(folder)
            logger.info("earshot API worker: model %s (the model worker runs it): heads %s", front.version,
                        [head.name for head in front.config.heads])
            return front

        def _start_dispatch(self) -> Dispatch:
            if self.store is None:
                raise ValueError(f"routes {settings.routes}: deliveries are kept in the feedback store's outbox "
                                 "until sent; start the service with --feedback-db PATH_OR_URL too")
            return Dispatch.start(settings.routes, self.model.config.heads, self.store.engine,
                                  on_counts=_deliveries_gauge)

        def _purge_expired(self) -> None:
            while True:
                deleted = {**self.store.purge(older_than_days=settings.retention_days),
                           **purge_routed(self.store.engine, settings.retention_days)}
                if any(deleted.values()):
                    logger.info("retention %d days: deleted %s", settings.retention_days, deleted)
                if self._stop.wait(3600):
                    return

        @bentoml.on_shutdown
        def _close(self) -> None:
            self._stop.set()
            self.follower.close()
            if self.capture is not None:
                self.capture.close()
            if self.dispatch is not None:
                self.dispatch.close()

        def __is_ready__(self) -> bool:
            return getattr(self, "follower", None) is not None

        def _answer(self, items: list[FeedbackItem], model: EarshotModel | ModelFront,
                    predictions: list[Prediction]) -> list[Classification]:
            texts = [item.text for item in items]
            if self.capture is not None:
                self.capture.offer(texts, predictions, model.version or "", [item.id for item in items],
                                   {head.name: head.thresholds for head in model.config.heads},
                                   [item.metadata for item in items])
            evidence = _evidence(items, model, predictions)
            answers = [_classification(item, prediction, model.version or "", evidence.get(number))
                       for number, (item, prediction) in enumerate(zip(items, predictions))]
            if self.dispatch is not None:
                # handed to the commit log; DurableAnswers sends no answer before it is committed
                try:
                    self.dispatch.hand_over([_routed(item, answer) for item, answer in zip(items, answers)])
                except Backlogged as error:
                    raise bentoml.exceptions.ServiceUnavailable(str(error)) from error
            return answers

        if split:
            @bentoml.api(route="/classify")
            async def classify(self, items: Annotated[list[FeedbackItem],
                                                      Field(min_length=1, max_length=settings.max_items)]
                               ) -> Annotated[list[Classification], ContentType("application/json")]:
                """Every head's answer for each item, in request order, with the answering model's version."""
                front, outputs, truncated = await self._remote_outputs([item.text for item in items])
                predictions = front.decide(front.to_probabilities(outputs, truncated))
                return self._answer(items, front, predictions)

            @cached_property
            def _coalesce(self) -> Coalescer:
                return Coalescer(self.network.to_async.forward, max_rows=settings.max_batch_size)

            async def _remote_outputs(self, texts: list[str]) -> tuple[ModelFront, dict[str, np.ndarray], np.ndarray]:
                """Tokenize here, run the network on the model worker; when the worker serves another
                version (a promotion reached it first), follow it and tokenize again."""
                for _ in range(3):
                    front = self.model
                    encoded = front.encode(texts)
                    answer = await self._coalesce(token_rows(front.version, encoded.input_ids, front.config.max_length))
                    if not np.isnan(answer).any():
                        return front, split_outputs(answer, front.config.heads), encoded.truncated
                    served = (await self.network.to_async.describe())["version"]
                    if served != front.version:
                        await anyio.to_thread.run_sync(self.follower.switch_to, served)
                raise bentoml.exceptions.ServiceUnavailable(
                    f"the model worker answered NaN three times (model {front.version}): either its version kept "
                    "changing, or the model gives NaN scores")
        else:
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
                return self._answer(items, model, model.predict([item.text for item in items]))

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
                if item.item is not None:
                    text = self.store.text_for_item(item.item)
                    if text is None:
                        raise bentoml.exceptions.InvalidArgument(f"{where}: no review item {item.item}")
                else:
                    text = item.text if item.text is not None else self.store.text_for_id(item.id)
                if text is None:
                    raise bentoml.exceptions.InvalidArgument(
                        f"{where}: no text was classified with this id while the store was on; send the text too")
                records.append(Correction(labels=labels, text=text, caller_id=item.id, reviewer=reviewer))
            ids = self.store.add_corrections(records)
            return CorrectionsStored(stored=len(ids), ids=ids)

        def info(self, network: dict[str, str] | None = None) -> ModelInfo:
            """The served model's description; ``network``: the model worker's device and backend (split)."""
            model = self.model
            config = model.config
            network = network or {"device": str(model.device), "backend": model.backend}
            return ModelInfo(version=model.version or "", label=config.label, base_model=config.base_model,
                             heads=[HeadInfo.of(head) for head in config.heads],
                             max_length=config.max_length, device=network["device"], backend=network["backend"],
                             training={k: v for k, v in config.provenance.items() if k not in ("history", "config")},
                             metrics=config.metrics)

        async def model_info(self) -> ModelInfo:
            """``info()``, with the model worker asked where the network runs when the service is split."""
            return self.info(await self.network.to_async.describe() if split else None)

    Earshot.add_asgi_middleware(DurableAnswers, door=door)
    Earshot.add_asgi_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    return Earshot


def _evidence(items: list[FeedbackItem], model: EarshotModel | ModelFront,
              predictions: list[Prediction]) -> dict[int, dict]:
    """Occlusion evidence for the items that ask for it, by position."""
    asked = [number for number, item in enumerate(items) if item.explain]
    if not asked:
        return {}
    if not isinstance(model, EarshotModel):
        raise bentoml.exceptions.InvalidArgument(
            "explain needs the network in the API's process: serve without --api-workers to explain answers")
    found = Explainer(model).explain([items[n].text for n in asked], [predictions[n] for n in asked])
    return dict(zip(asked, (evidence_dicts(one) for one in found)))


def _classification(item: FeedbackItem, prediction: Prediction, version: str,
                    evidence: dict | None = None) -> Classification:
    heads = {name: answer.to_dict() for name, answer in prediction.heads.items()}
    if evidence is not None:
        for name, answer in heads.items():
            for entry in answer["labels"]:
                entry["evidence"] = evidence[name][entry["label"]]
    return Classification(id=item.id, model_version=version, truncated=prediction.truncated,
                          heads={name: HeadAnswer(**answer) for name, answer in heads.items()})


def _routed(item: FeedbackItem, answer: Classification) -> RoutedItem:
    """An answer as the router sees it. The delivery key of an item sent with an id is stable, so a
    client that retries a request adds no second delivery; without an id every answer is its own."""
    key = f"id\0{item.id}\0{text_hash(item.text)}" if item.id is not None else f"uuid\0{uuid.uuid4().hex}"
    return RoutedItem(key=key, text=item.text, model_version=answer.model_version,
                      heads=answer.model_dump(mode="json")["heads"], caller_id=item.id, metadata=item.metadata,
                      created_at=item.created_at.timestamp() if item.created_at is not None else time.time())


@lru_cache(maxsize=1)
def _deliveries_gauge_metric() -> Any:
    # made on first use, in the worker process: BentoML sets Prometheus' multiprocess mode up lazily
    return bentoml.metrics.Gauge(name="earshot_deliveries", documentation="outbox deliveries by state (pending "
                                 "includes retrying ones; dead ones wait for `earshot alerts retry`)",
                                 labelnames=["state"], multiprocess_mode="livemax")


def _deliveries_gauge(counts: dict[str, int]) -> None:
    gauge = _deliveries_gauge_metric()
    for state, count in counts.items():
        gauge.labels(state=state).set(count)


@lru_cache(maxsize=1)
def _from_environment() -> Any:
    return build_service(Settings.from_env())


def __getattr__(name: str) -> Any:
    # The module-level service that `bentoml serve earshot.service.service:Earshot` asks for, built
    # from the environment on first use: importing this module reads no setting.
    if name == "Earshot":
        return _from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
