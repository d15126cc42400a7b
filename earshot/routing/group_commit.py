"""Group commit: writes asked for by many request threads, committed together by one writer thread.

Each ``/classify`` request must have its deliveries on disk before it answers. A commit per request
is an fsync per request, and each holds the store's write lock that the review capture and the
sender also need. Here a request hands its rows to the writer and waits; the writer takes every row
waiting, writes them in one transaction, then wakes each request. A request still answers only after
the commit that holds its rows, so nothing acknowledged can be lost; under load, one commit serves
many requests.

Example:
    >>> group = GroupCommit(lambda rows: len(rows))
    >>> group.submit(["a", "b"])
    2
    >>> group.close()
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Generic, Sequence, TypeVar

Row = TypeVar("Row")
_STOP = object()


class GroupCommit(Generic[Row]):
    """Calls ``write(rows)`` from one thread with the rows of every caller waiting; ``submit`` returns
    what that call returned (for the whole group), or raises what it raised."""

    def __init__(self, write: Callable[[list[Row]], Any], name: str = "earshot-group-commit") -> None:
        self._write = write
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[Row]) -> Any:
        """Write ``rows`` with whatever else is waiting; returns once they are committed."""
        if not self._thread.is_alive():
            raise RuntimeError("the group commit is closed")
        future: Future[Any] = Future()
        self._queue.put((list(rows), future))
        return future.result()

    def close(self) -> None:
        """Commit what is waiting, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            waiting = [self._queue.get()]
            while True:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(entry is _STOP for entry in waiting)
            group = [entry for entry in waiting if entry is not _STOP]
            if group:
                self._commit(group)

    def _commit(self, group: list[tuple[list[Row], Future[Any]]]) -> None:
        try:
            result = self._write([row for rows, _ in group for row in rows])
        except BaseException as error:  # noqa: BLE001 - each waiting request gets the error as its own
            for _, future in group:
                future.set_exception(error)
            return
        for _, future in group:
            future.set_result(result)
