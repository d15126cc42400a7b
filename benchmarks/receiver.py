"""A real HTTP receiver for webhook tests and benchmarks: records every POST, and fails (500) until told otherwise."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """``with Receiver(fail_for=20) as receiver:`` answers 500 for its first 20 s, then 200.

    ``received``: every POST as (headers, parsed body), in arrival order, failed ones included in
    ``attempts`` only.
    """

    def __init__(self, fail_for: float = 0.0, status: int = 200) -> None:
        self.fail_until = time.monotonic() + fail_for
        self.status = status
        self.received: list[tuple[dict[str, str], dict]] = []
        self.arrived: list[float] = []  # time.time() of each received POST
        self.attempts = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers: no connection and thread per POST

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                body = json.dumps({"received": len(receiver.received), "attempts": receiver.attempts}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = time.monotonic() < receiver.fail_until or receiver.status >= 300
                    if not failing:
                        receiver.received.append((dict(self.headers.items()), json.loads(body)))
                        receiver.arrived.append(time.time())
                self.send_response(500 if time.monotonic() < receiver.fail_until else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.arrived.clear()

    def ids(self) -> list[str]:
        with self._lock:
            return [headers["Idempotency-Key"] for headers, _ in self.received]

    def bodies(self) -> list[dict]:
        with self._lock:
            return [body for _, body in self.received]


class ReceiverProcess:
    """A :class:`Receiver` in a process of its own, as a real receiver is: its work takes neither the
    load generator's interpreter lock nor the server's. ``count()`` asks it how many POSTs it kept.

    ``idle``: a real receiver runs on another host and takes none of the server's CPU; on one Linux
    machine, a receiver under the SCHED_IDLE policy comes closest: it runs only when no other process
    wants the CPU.

    Example:
        >>> with ReceiverProcess() as receiver:                    # doctest: +SKIP
        ...     post_things(receiver.url); receiver.count()
        12
    """

    def __init__(self, idle: bool = False) -> None:
        self.idle = idle

    def __enter__(self) -> "ReceiverProcess":
        import subprocess
        import sys

        self.process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True,
                                        preexec_fn=_idle_policy if self.idle else None)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError(f"the receiver process did not start: {self.url!r}")
        return self

    def count(self) -> int:
        import urllib.request

        with urllib.request.urlopen(self.url, timeout=10) as answer:
            return int(json.loads(answer.read())["received"])

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _idle_policy() -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


if __name__ == "__main__":
    with Receiver() as running:
        print(running.url, flush=True)
        threading.Event().wait()
