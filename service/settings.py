"""Service settings: passed to `build_service`, or read from the environment when BentoML first asks for the service.

| variable                    | default                | meaning                                              |
|-----------------------------|------------------------|------------------------------------------------------|
| EARSHOT_MODEL               | the shipped model      | model folder to serve                                |
| EARSHOT_DEVICE              | auto (cuda, mps, cpu)  | force a device: cpu, cuda, cuda:1, mps               |
| EARSHOT_BACKEND             | auto                   | auto: bf16 on a CPU with AMX, per-token int8 ONNX on other CPUs, torch on GPU; torch, bf16, onnx, onnx-int8 |
| EARSHOT_COMPILE             | 0                      | 1: the torch or bf16 backend through torch.compile, compiled at start |
| EARSHOT_MAX_BATCH_SIZE      | 64                     | most texts in one forward pass (adaptive batching)   |
| EARSHOT_MAX_LATENCY_MS      | 1000                   | most time a text may wait in the batching queue       |
| EARSHOT_MAX_ITEMS           | 256                    | most texts in one request                            |
| EARSHOT_MAX_BODY_BYTES      | 4000000                | largest request body                                 |
| EARSHOT_WORKERS             | 1                      | worker processes, each with its own model copy       |
| EARSHOT_API_WORKERS         | 0: one service         | N: split the service, N API workers (HTTP, tokenizing, answers) in front of the model worker(s) |
| EARSHOT_THREADS             | all cores / workers    | torch threads per worker                             |
| EARSHOT_GPU                 | 0                      | 1: ask the scheduler for one GPU (`resources`)       |
| EARSHOT_API_KEY             | (none: open)           | when set, requests need `Authorization: Bearer KEY`  |
| EARSHOT_LOG_TEXTS           | 0                      | 1: log request bodies (they hold personal data)      |
| EARSHOT_TRACING             | 0                      | 1: OpenTelemetry spans for each request (BentoML's tracing settings) |
| EARSHOT_REGISTRY            | (none)                 | serve the registry's current version; swap when promoted |
| EARSHOT_RELOAD_SECONDS      | 2                      | how often the registry's `current` pointer is checked |
| EARSHOT_FEEDBACK_DB         | (none: nothing stored) | SQLite file or SQLAlchemy URL of the feedback store  |
| EARSHOT_RETENTION_DAYS      | (none: kept)           | delete stored feedback older than this (checked hourly) |
| EARSHOT_ROUTES              | (none)                 | routing rules and spike alerts (YAML); needs EARSHOT_FEEDBACK_DB, which holds the outbox |
| EARSHOT_REVIEW_PURPOSE      | teach on a registry, else fix | the review queue's default order: fix (likely wrong answers first) or teach (what teaches the retrain most) |
| EARSHOT_REVIEW_REDACT       | (none: as written)     | comma-separated kinds the review page hides: email, phone, card, iban, url, person |
| EARSHOT_CAPTURE_MARGIN      | 0.2                    | queue answers whose best label leads by less         |
| EARSHOT_CAPTURE_CONFIDENCE  | 0.5                    | queue single-head answers less sure than this        |
| EARSHOT_CAPTURE_TOP         | 0.05                   | queue answers among this most uncertain share of the last 2,000 |
| EARSHOT_CAPTURE_SAMPLE      | 0.02                   | share of all answers queued at random (accuracy estimate) |
| EARSHOT_CAPTURE_IDS         | 1                      | keep each answer sent with an id, so /corrections can name it by id |
| EARSHOT_REVIEW_SIMILAR      | 1 (off)                | fix queue order: a text this close (cosine, e.g. 0.85) to one listed before it or reviewed lately goes behind the rest |
| EARSHOT_CAPTURE_DISAGREE    | sentiment=positive>pain_points,sentiment=negative>praise_points | heads that contradict each other |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from earshot.loop.capture import CapturePolicy, Disagreement
from earshot.loop.store import SIMILAR_ABOVE
from earshot.model.runners import AUTO, backend_names


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int, minimum: float = 1,
            maximum: float = float("inf")) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    if value > maximum:
        raise ValueError(f"{name}={value} must be at most {maximum}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(env, name, default))


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    """A number from 0 to 1."""
    return _number(env, name, default, float, 0.0, 1.0)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")
    return value


def _kinds(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated redaction kinds, checked (a ValueError names an unknown one)."""
    raw = [kind.strip() for kind in env.get(name, "").split(",") if kind.strip()]
    if not raw:
        return ()
    from earshot.redaction import check_kinds

    return check_kinds(raw, name)


DEFAULT_DISAGREEMENTS = "sentiment=positive>pain_points,sentiment=negative>praise_points"


@dataclass(frozen=True)
class Settings:
    model: str | None
    device: str | None
    backend: str
    max_batch_size: int
    max_latency_ms: int
    max_items: int
    max_body_bytes: int
    workers: int
    threads: int | None
    gpu: bool
    api_key: str | None
    log_texts: bool
    # OpenTelemetry's middleware cost much of the server's CPU per single-text request even with no span
    # sampled (benchmarks/request_cpu.py, docs/experiments.md); it is skipped unless asked for.
    tracing: bool = False
    registry: str | None = None
    reload_seconds: int = 2
    feedback_db: str | None = None
    retention_days: int | None = None
    routes: str | None = None
    review_redact: tuple[str, ...] = ()
    # None: ``queue_purpose`` decides (teach on a registry, fix otherwise)
    review_purpose: str | None = None
    capture: CapturePolicy = field(default_factory=CapturePolicy)
    review_similar: float = SIMILAR_ABOVE
    # A split service (service/model_worker.py): API workers in front of `workers` model workers; 0: one service.
    api_workers: int = 0
    compile: bool = False

    @property
    def queue_purpose(self) -> str:
        """The review queue's order when a request names none: ``review_purpose`` when set, else ``teach``
        for a service on a registry (its team retrains on the answers and promotes the next version) and
        ``fix`` for one serving a fixed model (answers to correct, no retrain to teach).

        Example:
            >>> Settings.from_env({"EARSHOT_REGISTRY": "models"}).queue_purpose
            'teach'
            >>> Settings.from_env({"EARSHOT_REGISTRY": "models", "EARSHOT_REVIEW_PURPOSE": "fix"}).queue_purpose
            'fix'
        """
        return self.review_purpose or ("teach" if self.registry else "fix")

    def service_options(self) -> dict[str, Any]:
        """The BentoML service options that the API and the model worker share.

        Example:
            >>> Settings.from_env({}).service_options()["logging"]["access"]["enabled"]
            False
        """
        return {
            "traffic": {"timeout": 60},
            # Feedback text, and the token ids that spell it, is personal data: no request logs unless asked for.
            "logging": {"access": {"enabled": self.log_texts, "request_content_length": True,
                                   "request_content_type": True}},
            **({} if self.tracing else {"tracing": {"excluded_urls": [".*"]}}),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``env`` (default: ``os.environ``), with a clear error for a bad value.

        Example:
            >>> Settings.from_env({"EARSHOT_MAX_ITEMS": "10"}).max_items
            10
        """
        env = os.environ if env is None else env
        threads = env.get("EARSHOT_THREADS", "")
        backend = env.get("EARSHOT_BACKEND") or AUTO
        if backend not in backend_names():
            raise ValueError(f"EARSHOT_BACKEND={backend!r} is not a backend; use one of {list(backend_names())}")
        return cls(
            model=env.get("EARSHOT_MODEL") or None,
            device=env.get("EARSHOT_DEVICE") or None,
            backend=backend,
            max_batch_size=_int(env, "EARSHOT_MAX_BATCH_SIZE", 64),
            max_latency_ms=_int(env, "EARSHOT_MAX_LATENCY_MS", 1000),
            max_items=_int(env, "EARSHOT_MAX_ITEMS", 256),
            max_body_bytes=_int(env, "EARSHOT_MAX_BODY_BYTES", 4_000_000),
            workers=_int(env, "EARSHOT_WORKERS", 1),
            api_workers=int(_number(env, "EARSHOT_API_WORKERS", 0, minimum=0)),
            threads=_int(env, "EARSHOT_THREADS", 1) if threads else None,
            gpu=env.get("EARSHOT_GPU", "0") == "1",
            api_key=env.get("EARSHOT_API_KEY") or None,
            log_texts=env.get("EARSHOT_LOG_TEXTS", "0") == "1",
            tracing=env.get("EARSHOT_TRACING", "0") == "1",
            compile=env.get("EARSHOT_COMPILE", "0") == "1",
            registry=env.get("EARSHOT_REGISTRY") or None,
            reload_seconds=_int(env, "EARSHOT_RELOAD_SECONDS", 2),
            feedback_db=env.get("EARSHOT_FEEDBACK_DB") or None,
            retention_days=_int(env, "EARSHOT_RETENTION_DAYS", 0) if env.get("EARSHOT_RETENTION_DAYS") else None,
            routes=env.get("EARSHOT_ROUTES") or None,
            review_redact=_kinds(env, "EARSHOT_REVIEW_REDACT"),
            review_purpose=(_choice(env, "EARSHOT_REVIEW_PURPOSE", ("fix", "teach"), "fix")
                            if env.get("EARSHOT_REVIEW_PURPOSE") else None),
            review_similar=_number(env, "EARSHOT_REVIEW_SIMILAR", SIMILAR_ABOVE, float, 0.01, 1.0),
            capture=CapturePolicy(
                margin_below=_share(env, "EARSHOT_CAPTURE_MARGIN", 0.2),
                confidence_below=_share(env, "EARSHOT_CAPTURE_CONFIDENCE", 0.5),
                top_share=_share(env, "EARSHOT_CAPTURE_TOP", 0.05),
                sample_rate=_share(env, "EARSHOT_CAPTURE_SAMPLE", 0.02),
                keep_answered_ids=env.get("EARSHOT_CAPTURE_IDS", "1") != "0",
                disagreements=tuple(Disagreement.parse(rule) for rule in env.get(
                    "EARSHOT_CAPTURE_DISAGREE", DEFAULT_DISAGREEMENTS).split(",") if rule.strip())),
        )
