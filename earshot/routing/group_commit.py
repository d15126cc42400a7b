"""Group commit off the request path: rows handed over without waiting, written in order by one
thread, every group in one transaction; a caller learns when all rows handed over up to a point are
on disk.

Each ``/classify`` request must have its deliveries on disk before it answers. On the default service
one batch of requests is in flight at a time, and while a batch function waited for its commit the
model waited too. Now the batch function hands its rows over and returns; the answers are held at the
door (``service.middleware.DurableAnswers``) until everything handed over before them is written, so
nothing acknowledged can be lost, and the model runs the next batch meanwhile. A write that fails is
tried again, with a growing pause, until it succeeds: rows are never dropped, and the answers that
wait for them wait (their door gives up with a 503 after its timeout). Too many rows waiting (a store
down for long) makes ``hand_over`` refuse, so that memory stays bounded.

Example:
    >>> log = CommitLog(lambda rows: None)
    >>> ticket = log.hand_over(["a", "b"])
    >>> log.wait_written(ticket, timeout=5)
    True
    >>> log.close()
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Generic, Sequence, TypeVar

Row = TypeVar("Row")
logger = logging.getLogger("earshot.routing")


class Backlogged(RuntimeError):
    """More rows wait to be written than the log holds: the store is down or too slow."""


class CommitLog(Generic[Row]):
    """Calls ``write(rows)`` from one thread with every row handed over since its last call."""

    def __init__(self, write: Callable[[list[Row]], Any], max_waiting: int = 100_000,
                 first_pause: float = 0.05, longest_pause: float = 5.0) -> None:
        self._write = write
        self.max_waiting = max_waiting
        self.first_pause, self.longest_pause = first_pause, longest_pause
        self._condition = threading.Condition()
        self._waiting: list[Row] = []
        self._handed = 0  # tickets: a count of hand_overs
        self._written = 0
        self._closed = False
        self._futures: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._thread = threading.Thread(target=self._run, name="earshot-commit-log", daemon=True)
        self._thread.start()

    @property
    def last_ticket(self) -> int:
        """The ticket of the latest hand_over: once it is written, so is every row handed over before."""
        with self._condition:
            return self._handed

    def hand_over(self, rows: Sequence[Row]) -> int:
        """Queue ``rows`` for the next write; returns their ticket at once."""
        with self._condition:
            if self._closed:
                raise RuntimeError("the commit log is closed")
            if len(self._waiting) + len(rows) > self.max_waiting:
                raise Backlogged(f"{len(self._waiting)} rows wait to be written to the feedback store; "
                                 "it is down or too slow")
            self._waiting.extend(rows)
            self._handed += 1
            self._condition.notify_all()
            return self._handed

    def wait_written(self, ticket: int, timeout: float | None = None) -> bool:
        """Block until ``ticket``'s rows are written; False if ``timeout`` seconds passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._written >= ticket, timeout)

    async def written(self, ticket: int) -> None:
        """Return once ``ticket``'s rows are written (wrap in ``asyncio.wait_for`` for a timeout)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._condition:
            if self._written >= ticket:
                return
            self._futures.append((ticket, loop, future))
        await future

    def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting (trying for up to ``timeout`` seconds), then stop the writer."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return
                rows, self._waiting, upto = self._waiting, [], self._handed
            if not self._write_until_done(rows):
                return  # closed while the store failed: the waiting answers are never told written
            with self._condition:
                self._written = upto
                self._condition.notify_all()
                due = [entry for entry in self._futures if entry[0] <= upto]
                self._futures = [entry for entry in self._futures if entry[0] > upto]
            for _, loop, future in due:
                if future.done():
                    continue  # its wait was cancelled (the door's timeout)
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # its event loop closed meanwhile: nobody waits any more
                    continue

    def _write_until_done(self, rows: list[Row]) -> bool:
        pause = self.first_pause
        while True:
            try:
                self._write(rows)
                return True
            except Exception:  # noqa: BLE001 - rows are kept and written again; logged with traceback
                logger.exception("writing %d rows to the feedback store failed; trying again in %.1f s",
                                 len(rows), pause)
            with self._condition:
                if self._closed:
                    logger.error("closing with %d rows not written to the feedback store", len(rows))
                    return False
                self._condition.wait(pause)
            pause = min(self.longest_pause, pause * 2)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
