"""ASGI middleware: optional API key and a request-size limit, answered before any parsing; answers
held until their deliveries are committed."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
MOUNTED = frozenset({"/model", "/review"})
# Browsers cannot send a bearer token when a person opens a page, so pages under these paths also
# take HTTP Basic credentials (any user name, the API key as password) and ask for them; /corrections
# too, so that the page's own posts get the realm the browser already holds credentials for.
BROWSER_PATHS = ("/review", "/corrections")


async def _json(send: Send, status: int, body: dict[str, Any], headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


class GuardMiddleware:
    """Rejects oversized bodies with 413 and, when ``api_key`` is set, unauthenticated calls with 401.

    Health probes stay open so that orchestrators need no secret. The key is compared in constant
    time, so response timing does not reveal how much of a guess was right.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.basic_password = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in MOUNTED:
            # BentoML mounts extra apps under a sub-path; answer /model itself rather than a 307 to /model/.
            path = scope["path"] + "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and scope.get("path") not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not (hmac.compare_digest(given, self.expected) or self._basic_matches(given)):
                browser = str(scope.get("path", "")).startswith(BROWSER_PATHS)
                challenge = b'Basic realm="earshot", charset="UTF-8"' if browser else b"Bearer"
                await _json(send, 401, {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                            [(b"www-authenticate", challenge)])
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _json(send, 413, {"error": f"request body of {int(declared)} bytes is over the limit of "
                                             f"{self.max_body_bytes} bytes; send fewer or shorter texts"})
            return
        if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            receive = await self._buffered(receive, send)
            if receive is None:
                return
        await self.app(scope, receive, send)

    def _basic_matches(self, given: bytes) -> bool:
        """HTTP Basic credentials (what a browser sends after the password prompt) with the key as password."""
        scheme, _, encoded = given.partition(b" ")
        if scheme.lower() != b"basic" or self.basic_password is None:
            return False
        try:
            _user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(password, self.basic_password)

    async def _buffered(self, receive: Receive, send: Send) -> Receive | None:
        """Read a body sent without Content-Length (chunked) up to the limit, then replay it.

        Returns None after answering 413 when the body is over the limit.
        """
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await _json(send, 413, {"error": f"request body is over the limit of {self.max_body_bytes} bytes"})
                return None
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        return replay


class DeliveryDoor:
    """Where ``DurableAnswers`` finds the routes' commit log: set by the service once its routes are
    read (None: no routes, nothing to wait for)."""

    def __init__(self) -> None:
        self.log: Any = None  # earshot.routing.group_commit.CommitLog


class DurableAnswers:
    """Holds each ``/classify`` answer until the deliveries handed over before it are committed.

    The batch function hands its deliveries to the commit log and returns, so that the model goes on
    to the next batch; the answer's first bytes leave only once everything handed over until then is
    written, which includes the answer's own deliveries: an acknowledged answer's delivery survives a
    crash. If the store takes longer than ``timeout`` seconds, the answer is replaced by a 503 (a
    client that retries with the same item ids adds no second delivery).
    """

    def __init__(self, app: Callable[..., Awaitable[None]], door: DeliveryDoor, timeout: float = 30.0) -> None:
        self.app, self.door, self.timeout = app, door, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self.door.log
        if log is None or scope["type"] != "http" or scope.get("path") != "/classify":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def held(message: dict[str, Any]) -> None:
            nonlocal replaced
            if replaced:
                return  # the body of the answer a 503 replaced
            if message["type"] == "http.response.start" and message["status"] < 400:
                try:
                    await asyncio.wait_for(log.written(log.last_ticket), self.timeout)
                except asyncio.TimeoutError:
                    replaced = True
                    await _json(send, 503, {"error": "the feedback store did not record this answer's deliveries "
                                                     f"within {self.timeout:g} s; try again"})
                    return
            await send(message)

        await self.app(scope, receive, held)
