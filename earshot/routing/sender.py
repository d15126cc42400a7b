"""Sends the outbox's deliveries: claim the due ones, POST each, mark it sent or schedule a retry.

Each POST carries ``Idempotency-Key`` and ``X-Earshot-Delivery`` (the stable delivery id), and, when the
rule names a ``secret_env``, ``X-Earshot-Signature: sha256=HEX``: the HMAC-SHA256 with that secret of
``TIMESTAMP.BODY``, where TIMESTAMP is the ``X-Earshot-Timestamp`` header (a receiver checks both, and
refuses old timestamps to stop replays). Any 2xx answer is taken as received; anything else, or no
answer within the timeout, is retried with doubling backoff until the policy's last attempt.

Example:
    >>> sender = Sender(Outbox.open("feedback.db"), DeliveryPolicy())   # doctest: +SKIP
    >>> sender.send_due()                                               # doctest: +SKIP
    {'sent': 3, 'retrying': 0, 'dead': 0}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from .http_post import KeepAliveClient
from .outbox import DEAD, SENT, Delivery, Outbox
from .rules import DeliveryPolicy

logger = logging.getLogger("earshot.routing")


def request_parts(delivery: Delivery, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``delivery``'s POST.

    Example:
        >>> body, headers = request_parts(delivery)     # doctest: +SKIP
        >>> headers["Idempotency-Key"] == delivery.delivery_id
        True
    """
    payload: Any = delivery.payload
    if delivery.target.channel == "slack":
        payload = {"text": slack_text(delivery)}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time() if now is None else now))
    headers = {"Content-Type": "application/json", "Idempotency-Key": delivery.delivery_id,
               "X-Earshot-Delivery": delivery.delivery_id, "X-Earshot-Rule": quote(delivery.rule, safe=""),
               "X-Earshot-Timestamp": timestamp, "User-Agent": "earshot-webhooks"}
    secret = delivery.target.secret()
    if secret is not None:
        digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers["X-Earshot-Signature"] = f"sha256={digest}"
    return body, headers


def slack_text(delivery: Delivery) -> str:
    """A Slack message for a route's answer or a spike."""
    payload = delivery.payload
    if delivery.kind == "spike":
        return (f"*{delivery.rule}*: {payload['head']} `{payload['label']}` {payload['window']['count']} in the last "
                f"{payload['window']['seconds'] / 3600:g} h against {payload['expected']:.1f} expected "
                f"({payload['ratio']:.1f}×, p={payload['p_value']:.2g})"
                + "".join(f"\n> {text}" for text in payload.get("examples", [])))
    item = payload["item"]
    labels = "; ".join(f"{head}: {', '.join(e['label'] for e in answer['labels']) or '-'}"
                       for head, answer in item["heads"].items())
    named = f" ({item['id']})" if item.get("id") else ""
    return f"*{delivery.rule}*{named} · {labels}\n> {item['text']}"


class Sender:
    """Sends due deliveries, ``concurrency`` at a time, each under a lease long enough for its timeout."""

    def __init__(self, outbox: Outbox, policy: DeliveryPolicy, concurrency: int = 8, rounds: int = 4,
                 client: KeepAliveClient | None = None) -> None:
        self.outbox, self.policy, self.concurrency = outbox, policy, concurrency
        self.client = client or KeepAliveClient(timeout=policy.timeout_seconds)
        # One claim takes `rounds` x `concurrency` deliveries (two database writes per claim, not per
        # delivery); its lease outlasts sending them all at the timeout, and is what a delivery waits
        # after its sender is killed mid-claim.
        # The timeout bounds connecting, writing and reading each: one POST may take three of them.
        self.batch = concurrency * rounds
        self.lease_seconds = rounds * 3 * policy.timeout_seconds + 5
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="earshot-send")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    def send_due(self, now: float | None = None) -> dict[str, int]:
        """Claim up to ``batch`` due deliveries and send them, ``concurrency`` at a time. Returns what
        became of them."""
        claimed = self.outbox.claim(self.batch, self.lease_seconds, now)
        outcome = {"sent": 0, "retrying": 0, "dead": 0}
        if not claimed:
            return outcome
        errors = list(self._pool.map(self._post, claimed))
        # one commit for the batch: a commit per delivery slowed the service under load
        # (benchmarks/load.py --routes, docs/routing.md); the lease covers the whole batch
        for delivery, error, state in zip(claimed, errors, self.outbox.record(list(zip(claimed, errors)), self.policy)):
            outcome["sent" if error is None or state == SENT else "dead" if state == DEAD else "retrying"] += 1
            if error is not None:
                log = logger.warning if state == DEAD else logger.info
                log("delivery %s of %s to %s failed (try %d): %s%s", delivery.delivery_id, delivery.rule,
                    delivery.target.url, delivery.attempts + 1, error, "; dead" if state == DEAD else "")
        return outcome

    def _post(self, delivery: Delivery) -> str | None:
        body, headers = request_parts(delivery)
        try:
            status = self.client.post(delivery.target.url, body, headers)
        except Exception as error:  # noqa: BLE001 - any failure of one POST is that delivery's failed try
            return f"{type(error).__name__}: {error}"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

    def run(self, stop: threading.Event, idle_seconds: float = 0.5) -> None:
        """Send until ``stop`` is set; after a claim that was not full, wait ``idle_seconds``. Under load
        the deliveries then gather into full claims: each claim is two writes to the store, whose write
        lock the service's requests also need, so claiming each delivery as it came slowed the requests
        (docs/routing.md). A database or network error is logged and the loop goes on."""
        while not stop.is_set():
            try:
                outcome = self.send_due()
            except Exception:  # noqa: BLE001 - the loop must outlive a database outage; logged with traceback
                logger.exception("the delivery worker failed a round; trying again")
                outcome = {}
            if sum(outcome.values()) < self.batch:
                stop.wait(idle_seconds)

    def drain(self, wait_seconds: float, idle_seconds: float = 0.5) -> dict[str, int]:
        """Send until nothing is pending or ``wait_seconds`` have passed; returns the outbox's counts."""
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if any(self.send_due().values()):
                continue
            counts = self.outbox.counts()
            if counts["pending"] + counts["failed"] == 0:
                break
            time.sleep(min(idle_seconds, max(0.0, deadline - time.monotonic())))
        return self.outbox.counts()
