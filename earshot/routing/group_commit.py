"""Group commit: writes asked for by many request threads, committed together, by one of them.

Each ``/classify`` request must have its deliveries on disk before it answers. A commit per request
is an fsync per request, and each holds the store's write lock that the review capture and the
sender also need. Here a request that finds no write under way writes its rows itself, with the rows
of every request that joined meanwhile, in one transaction; a request that finds a write under way
waits, and the next write (done by one of the waiting requests) takes its rows. A request answers
only after the commit that holds its rows, so nothing acknowledged can be lost; under load, one
commit serves many requests.

The caller writes, not a writer thread: on the default service one batch of requests is in flight
at a time and the model waits for its commit, and handing the rows to another thread and back added
two waits for the interpreter lock to that time under load (docs/routing.md).

Example:
    >>> group = GroupCommit(lambda rows: len(rows))
    >>> group.submit(["a", "b"])
    2
    >>> group.close()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

Row = TypeVar("Row")


@dataclass
class _Entry(Generic[Row]):
    rows: list[Row]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit(Generic[Row]):
    """Calls ``write(rows)`` with the rows of every caller waiting, one call at a time; ``submit``
    returns what the call that held its rows returned (for the whole group), or raises what it raised."""

    def __init__(self, write: Callable[[list[Row]], Any]) -> None:
        self._write = write
        self._condition = threading.Condition()
        self._pending: list[_Entry[Row]] = []
        self._writing = False
        self._closed = False

    def submit(self, rows: Sequence[Row]) -> Any:
        """Write ``rows`` with whatever else is waiting; returns once they are committed."""
        entry: _Entry[Row] = _Entry(list(rows))
        with self._condition:
            if self._closed:
                raise RuntimeError("the group commit is closed")
            self._pending.append(entry)
            while self._writing and not entry.done:
                self._condition.wait()
            if not entry.done:
                self._writing = True
                group, self._pending = self._pending, []
        if not entry.done:
            try:
                self._commit(group)
            finally:
                with self._condition:
                    self._writing = False
                    self._condition.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.result

    def close(self) -> None:
        """Let the write under way finish; later submits raise."""
        with self._condition:
            self._closed = True
            while self._writing:
                self._condition.wait()

    def _commit(self, group: list[_Entry[Row]]) -> None:
        try:
            result, error = self._write([row for entry in group for row in entry.rows]), None
        except BaseException as failure:  # noqa: BLE001 - each waiting request gets the error as its own
            result, error = None, failure
        for entry in group:
            entry.result, entry.error, entry.done = result, error, True
