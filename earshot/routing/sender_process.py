"""The service's delivery sender, in a process of its own at a lower CPU priority.

Sending is work the answers do not wait for: a delivery is safe in the outbox before ``/classify``
answers, and the sender only has to get it out soon after. Sent from threads of the service's
process, the POSTs took CPU and the interpreter lock from the requests, and most of what a rule cost
in throughput was sending (``benchmarks/load.py --routes``, docs/routing.md). In a process of its
own, niced, the sender runs on what the requests leave, and under a sustained overload the
deliveries wait in the outbox instead of slowing the answers.

The child reads its settings (the store, the delivery policy, the niceness) as one JSON line on its
stdin, so that a database URL with a password never shows in a process list. It stops on SIGTERM
after the claim under way, and by itself when its parent dies (a service killed with ``kill -9``):
claims it held then run out and are sent again, as after any crash.

Example:
    >>> sender = SenderProcess(outbox.engine, DeliveryPolicy())       # doctest: +SKIP
    >>> sender.alive()                                                # doctest: +SKIP
    True
    >>> sender.close()                                                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO, cast

import sqlalchemy as sa

from .rules import DeliveryPolicy

logger = logging.getLogger("earshot.routing")

# CPU weight 15 against the service's 1024 (Linux CFS): when the requests want every core, the sender
# still gets a small share, so deliveries are late but never stuck; otherwise it runs on idle time
NICENESS = 19


def store_location(engine: sa.Engine) -> str:
    """What ``open_engine`` takes to open ``engine``'s store again: an SQLite file's path (so that the
    store's pragmas apply), else the URL with its password."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database
    return engine.url.render_as_string(hide_password=False)


class SenderProcess:
    """Starts ``python -m earshot.routing.sender_process`` for the store of ``engine``."""

    def __init__(self, engine: sa.Engine, policy: DeliveryPolicy, niceness: int = NICENESS) -> None:
        self.spec = {"store": store_location(engine), "policy": dataclasses.asdict(policy), "niceness": niceness}
        self.policy = policy
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        # the parent's pid travels with the settings: a parent killed before the child starts up is
        # seen at once (the child's own first os.getppid() would already name the adopting init)
        self.spec["parent"] = os.getpid()
        process = subprocess.Popen([sys.executable, "-m", "earshot.routing.sender_process"],
                                   stdin=subprocess.PIPE, text=True)
        stdin = cast(IO[str], process.stdin)  # stdin=PIPE
        stdin.write(json.dumps(self.spec) + "\n")
        stdin.close()
        return process

    def alive(self) -> bool:
        return self.process.poll() is None

    def restart_if_dead(self) -> bool:
        """Start the sender again if it exited; True when it had to."""
        if self.alive():
            return False
        logger.warning("the delivery sender exited with code %s; starting it again", self.process.returncode)
        self.process = self._spawn()
        return True

    def close(self) -> None:
        """Stop the sender after the claim under way (it may take a POST's timeouts), then kill it."""
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=3 * self.policy.timeout_seconds + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    from .outbox import Outbox
    from .sender import Sender

    spec = json.loads(sys.stdin.readline())
    os.nice(int(spec["niceness"]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] [earshot-sender] %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_stop_when_orphaned, args=(int(spec["parent"]), stop), daemon=True).start()
    outbox = Outbox.open(spec["store"])
    sender = Sender(outbox, DeliveryPolicy(**spec["policy"]))
    try:
        sender.run(stop)
    finally:
        sender.close()
        outbox.close()


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    while os.getppid() == parent:
        if stop.wait(1.0):
            return
    stop.set()


if __name__ == "__main__":
    main()
