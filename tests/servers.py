"""Real `earshot serve` processes for tests: started in a session of their own, ready when /readyz is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without EARSHOT_* settings (the tiny-model fixture sets some)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End a server started in its own session, and everything it started.

    BentoML starts each worker in a session of its own, so the workers are signalled one by one too:
    SIGTERM lets the arbiter stop them gracefully, SIGKILL kills each at once, as a crash would.
    """
    import psutil

    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    targets = family if sig == signal.SIGKILL else family[:1]
    for member in targets:
        try:
            member.send_signal(sig)
        except psutil.NoSuchProcess:
            pass  # it had already exited; its exit was reported where it happened
    process.wait(timeout=30)
    psutil.wait_procs(family, timeout=30)


def start_server(args: list[str], env: dict[str, str], port: int) -> tuple[subprocess.Popen, IO[str]]:
    """`earshot serve ARGS --port PORT`; fails the test with the server's log if it exits or is not ready."""
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"earshot-serve-{port}.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "earshot.cli", "serve", *args, "--port", str(port)],
                               env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"earshot serve exited with {process.returncode}:\n{log.read()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, log
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(process)
    pytest.fail("earshot serve did not become ready in 180 s")
