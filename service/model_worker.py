"""The model worker of a split service: the network alone, behind BentoML's adaptive batching.

With ``EARSHOT_API_WORKERS=N`` the service runs as two BentoML services (``bentoml.depends``): N API
workers take the HTTP requests, check them, tokenize the texts, decide labels from the scores and
build the answers; this worker receives token ids, batches them across requests and API workers,
and runs the forward pass. On a GPU the per-request CPU work, not the GPU, bounds a single service
(docs/experiments.md); split, that work spreads over N processes and stays off the GPU worker's path.

Each row carries the model version its tokens were made for. A row made for another version than
the one this worker serves (a promotion reached the two services at different moments) is answered
with NaN, and the API worker asks ``describe`` which version runs, follows it and tokenizes again.

Example:
    >>> worker = build_model_worker(Settings.from_env({}))()
    >>> front = ModelFront.from_pretrained()
    >>> answer = worker.forward(token_rows(front.version, front.encode(["late"]).input_ids, front.config.max_length))
    >>> sorted(split_outputs(answer, front.config.heads))
    ['embedding', 'pain_points', 'sentiment']
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import bentoml
import numpy as np
import torch
from earshot.loop.registry import Registry
from earshot.model import EarshotModel, Head
from earshot.model.modeling import EMBEDDING

from . import redaction
from .following import Follower
from .settings import Settings

logger = logging.getLogger("earshot.service")

# One int64 array per request carries its texts, a row each: [version tag, length, ids..., padding];
# one float32 array per request carries the answer, a row each: every head's logits, then the
# embedding, or NaN for a row tokenized for another version. Pickle 5 sends arrays without copying
# and BentoML's batching concatenates them; a list of per-row objects cost more CPU per request than
# the whole single service (benchmarks/request_cpu.py; docs/experiments.md).
HEADER = 2


def version_tag(version: str | None) -> int:
    """The first 15 hex digits of a version id, as an int64 (0 for an unsaved model)."""
    return int(version[:15], 16) if version else 0


def token_rows(version: str | None, input_ids: Sequence[Sequence[int]], max_length: int) -> np.ndarray:
    """``input_ids`` (each at most ``max_length`` ids) as the worker's input for ``version``.

    Example:
        >>> token_rows("f2dd235176b73301", [[101, 2, 102]], 4).tolist()
        [[1093389637734478640, 3, 101, 2, 102, 0]]
    """
    rows = np.zeros((len(input_ids), HEADER + max_length), dtype=np.int64)
    rows[:, 0] = version_tag(version)
    for row, ids in zip(rows, input_ids):
        row[1] = len(ids)
        row[HEADER:HEADER + len(ids)] = ids
    return rows


def split_outputs(answer: np.ndarray, heads: Sequence[Head]) -> dict[str, np.ndarray]:
    """The worker's answer rows as ``{head: logits, ..., "embedding": vectors}``."""
    outputs, start = {}, 0
    for head in heads:
        outputs[head.name] = answer[:, start:start + len(head.labels)]
        start += len(head.labels)
    outputs[EMBEDDING] = answer[:, start:]
    return outputs


class Coalescer:
    """Joins the token rows of an API worker's concurrent requests into fewer calls to the model worker.

    Each call costs the model worker an HTTP request (more of its CPU than the whole single service
    spends on a one-text request: benchmarks/request_cpu.py), so
    one call per request would move the per-request bound to the model worker instead of removing
    it. A request is sent at once when fewer than ``max_calls`` calls are in flight; otherwise it
    waits for one to return, with every other request that arrived meanwhile, up to ``max_rows`` rows
    a call. No request waits for a timer.

    Example:
        >>> coalesce = Coalescer(self.network.to_async.forward, max_rows=64)
        >>> answer = await coalesce(token_rows(version, input_ids, max_length))
    """

    def __init__(self, call: Callable[[np.ndarray], Awaitable[np.ndarray]], max_rows: int, max_calls: int = 2) -> None:
        self._call = call
        self.max_rows = max_rows
        self.max_calls = max_calls
        self._waiting: list[tuple[np.ndarray, asyncio.Future]] = []
        self._in_flight: set[asyncio.Task] = set()

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The model worker's answer rows for ``rows``."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and len(self._in_flight) < self.max_calls:
            group, count = [], 0
            while self._waiting and (not group or count + len(self._waiting[0][0]) <= self.max_rows):
                group.append(self._waiting.pop(0))
                count += len(group[-1][0])
            task = asyncio.create_task(self._send(group))
            self._in_flight.add(task)

    async def _send(self, group: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        try:
            answer = await self._call(np.concatenate([rows for rows, _ in group]))
            start = 0
            for rows, future in group:
                if not future.done():  # a request whose client went away has been cancelled
                    future.set_result(answer[start:start + len(rows)])
                start += len(rows)
        except Exception as error:  # every request of the call gets the model worker's error
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
        finally:
            for _, future in group:
                if not future.done():
                    future.cancel()
            self._in_flight.discard(asyncio.current_task())
            self._dispatch()


def load_model(settings: Settings, folder: Path | None) -> EarshotModel:
    """The model in ``folder`` (None: the shipped one) on the settings' device and backend, logged."""
    model = EarshotModel.from_pretrained(folder, device=settings.device, backend=settings.backend,
                                         compiled=settings.compile)
    logger.info("earshot model %s loaded (%s on %s): heads %s", model.version, model.backend, model.device,
                [head.name for head in model.config.heads])
    return model


def build_model_worker(settings: Settings) -> Any:
    """The model worker's BentoML service class for ``settings``: ``EARSHOT_WORKERS`` copies of the
    model (one GPU with ``EARSHOT_GPU=1``), adaptive batching over token rows."""

    @bentoml.service(
        name="earshot-model",
        workers=settings.workers,
        resources={"gpu": 1} if settings.gpu else {},
        # BentoML's client of a dependency closes its HTTP connection pool every `max_requests` requests
        # or `max_age` seconds (default 100, 300 s), failing every request still in flight on it:
        # 303 and 389 of 3,200 requests at 32 concurrent clients (BentoML issue 5540). The worker is
        # reached over a local socket, so the pool never needs replacing.
        runner_connection={"max_requests": 2**31 - 1, "max_age": 10.0**9},
        **settings.service_options(),
    )
    class EarshotModelWorker:
        def __init__(self) -> None:
            if not settings.log_texts:
                redaction.install()
            if settings.threads:
                torch.set_num_threads(settings.threads)
            self.follower = Follower(partial(load_model, settings), settings.model,
                                     Registry(settings.registry) if settings.registry else None,
                                     settings.reload_seconds)

        @bentoml.on_shutdown
        def _close(self) -> None:
            self.follower.close()

        def __is_ready__(self) -> bool:
            return getattr(self, "follower", None) is not None

        # The same batching limits as the single service: max_batch_size counts texts.
        @bentoml.api(batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
        def forward(self, rows: np.ndarray) -> np.ndarray:
            """The answer rows for ``token_rows`` (see above), from one model, in order."""
            model = self.follower.current  # one model for the whole batch, even if a promotion swaps it meanwhile
            fresh = np.flatnonzero(rows[:, 0] == version_tag(model.version))
            outputs = model.run_tokens([row[HEADER:HEADER + row[1]].tolist() for row in rows[fresh]])
            blocks = [outputs[head.name] for head in model.config.heads] + [outputs[EMBEDDING]]
            answer = np.full((len(rows), sum(block.shape[1] for block in blocks)), np.nan, dtype=np.float32)
            answer[fresh] = np.concatenate(blocks, axis=1)
            return answer

        @bentoml.api
        def describe(self) -> dict[str, str]:
            """The served model's version, device and backend (for GET /model on the API)."""
            model = self.follower.current
            return {"version": model.version or "", "device": str(model.device), "backend": model.backend}

    return EarshotModelWorker
