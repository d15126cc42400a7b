"""Service settings: passed to `build_service`, or read from the environment when BentoML first asks for the service.

| variable                    | default                | meaning                                              |
|-----------------------------|------------------------|------------------------------------------------------|
| EARSHOT_MODEL               | the shipped model      | model folder to serve                                |
| EARSHOT_DEVICE              | auto (cuda, mps, cpu)  | force a device: cpu, cuda, cuda:1, mps               |
| EARSHOT_BACKEND             | auto                   | auto: per-token int8 ONNX on CPU, torch on GPU; torch, onnx, onnx-int8 |
| EARSHOT_MAX_BATCH_SIZE      | 64                     | most texts in one forward pass (adaptive batching)   |
| EARSHOT_MAX_LATENCY_MS      | 1000                   | most time a text may wait in the batching queue       |
| EARSHOT_MAX_ITEMS           | 256                    | most texts in one request                            |
| EARSHOT_MAX_BODY_BYTES      | 4000000                | largest request body                                 |
| EARSHOT_WORKERS             | 1                      | worker processes, each with its own model copy       |
| EARSHOT_THREADS             | all cores / workers    | torch threads per worker                             |
| EARSHOT_GPU                 | 0                      | 1: ask the scheduler for one GPU (`resources`)       |
| EARSHOT_API_KEY             | (none: open)           | when set, requests need `Authorization: Bearer KEY`  |
| EARSHOT_LOG_TEXTS           | 0                      | 1: log request bodies (they hold personal data)      |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``env`` (default: ``os.environ``), with a clear error for a bad value.

        Example:
            >>> Settings.from_env({"EARSHOT_MAX_ITEMS": "10"}).max_items
            10
        """
        env = os.environ if env is None else env
        threads = env.get("EARSHOT_THREADS", "")
        return cls(
            model=env.get("EARSHOT_MODEL") or None,
            device=env.get("EARSHOT_DEVICE") or None,
            backend=env.get("EARSHOT_BACKEND") or "auto",
            max_batch_size=_int(env, "EARSHOT_MAX_BATCH_SIZE", 64),
            max_latency_ms=_int(env, "EARSHOT_MAX_LATENCY_MS", 1000),
            max_items=_int(env, "EARSHOT_MAX_ITEMS", 256),
            max_body_bytes=_int(env, "EARSHOT_MAX_BODY_BYTES", 4_000_000),
            workers=_int(env, "EARSHOT_WORKERS", 1),
            threads=_int(env, "EARSHOT_THREADS", 1) if threads else None,
            gpu=env.get("EARSHOT_GPU", "0") == "1",
            api_key=env.get("EARSHOT_API_KEY") or None,
            log_texts=env.get("EARSHOT_LOG_TEXTS", "0") == "1",
        )
