"""What a service process runs for its routes file: record deliveries as answers go out, a sender
process that sends them (``sender_process``), and a thread that checks for spikes and reports the
outbox's counts.

Example:
    >>> dispatch = Dispatch.start("routes.yaml", model.config.heads, store.engine)   # doctest: +SKIP
    >>> dispatch.log.wait_written(dispatch.hand_over(items), timeout=30)          # doctest: +SKIP
    True
    >>> dispatch.close()                                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import sqlalchemy as sa

from earshot.model import Head

from .group_commit import CommitLog
from .outbox import Outbox
from .router import RoutedItem, Router
from .rules import RuleBook, read_rules
from .sender_process import SenderProcess

logger = logging.getLogger("earshot.routing")


class Dispatch:
    """A rule book's router, its sender process and its housekeeping thread, for one service process."""

    def __init__(self, book: RuleBook, outbox: Outbox, on_counts: Callable[[dict[str, int]], None] | None = None,
                 counts_every: float = 2.0) -> None:
        self.book, self.outbox = book, outbox
        self.router = Router(book, outbox)
        # requests' deliveries are written by one thread, all that waits in one commit, while the model
        # goes on (docs/routing.md: throughput with routes); answers wait for it at the door
        self.log = CommitLog(self.router.record)
        self.sender: SenderProcess | None = None
        self.on_counts, self.counts_every = on_counts, counts_every
        # check for spikes 60 times per shortest window, at most every 5 s
        self.spikes_every = max(5.0, min((rule.window_s for rule in book.spikes), default=3600.0) / 60)
        self._last = {"counts": 0.0, "spikes": 0.0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, routes: str | Path, heads: Sequence[Head], engine: sa.Engine,
              on_counts: Callable[[dict[str, int]], None] | None = None) -> "Dispatch":
        """Read ``routes`` against ``heads`` (a RulesError stops the caller), then start sending."""
        book = read_rules(routes, heads)
        dispatch = cls(book, Outbox(engine), on_counts)
        dispatch.router.prepare()  # build redactors now, not in the first request that needs one
        dispatch.sender = SenderProcess(engine, book.delivery)
        dispatch._thread = threading.Thread(target=dispatch._run, name="earshot-routing", daemon=True)
        dispatch._thread.start()
        logger.info("routes %s: %d routes, %d spike rules; deliveries are sent from the outbox", routes,
                    len(book.routes), len(book.spikes))
        return dispatch

    def hand_over(self, items: Sequence[RoutedItem]) -> int:
        """Queue what ``items`` ask for to be recorded, and return at once: the ticket that
        ``self.log`` reports written once they (and all handed over before) are committed."""
        if self.router.spikes is None and not any(self.book.matching(i.heads, i.metadata) for i in items):
            return self.log.last_ticket
        return self.log.hand_over(items)


    def _run(self) -> None:
        """Housekeeping until closed; a database error is logged and the loop goes on."""
        while not self._stop.wait(1.0):
            try:
                self._housekeeping()
            except Exception:  # noqa: BLE001 - the loop must outlive a database outage; logged with traceback
                logger.exception("routing housekeeping failed; trying again")

    def _housekeeping(self) -> None:
        if self.sender is not None:
            self.sender.restart_if_dead()
        now = time.monotonic()
        if self.router.spikes is not None and now - self._last["spikes"] >= self.spikes_every:
            self._last["spikes"] = now
            self.router.check_spikes()
            self.router.spikes.forget_before()
        if self.on_counts is not None and now - self._last["counts"] >= self.counts_every:
            self._last["counts"] = now
            self.on_counts(self.outbox.counts())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.sender is not None:
            self.sender.close()
        self.log.close()
