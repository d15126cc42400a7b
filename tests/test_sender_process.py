"""The service's sender process: sends what the outbox holds, niced; stops when told, when its parent
dies, and is started again when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.receiver import Receiver
from conftest import wait_for
from earshot.routing.outbox import Delivery, Outbox, delivery_id
from earshot.routing.rules import DeliveryPolicy, Target
from earshot.routing.sender_process import NICENESS, SenderProcess, store_location

ROOT = Path(__file__).resolve().parent.parent


def deliveries(url: str, count: int) -> list[Delivery]:
    made = []
    for number in range(count):
        identifier = delivery_id("r", f"item {number}")
        made.append(Delivery(identifier, "r", "route", Target("webhook", url), {"delivery_id": identifier, "n": number},
                             created_at=time.time()))
    return made


def test_the_sender_process_sends_the_outbox_at_a_lower_priority_and_stops_when_closed(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path / "feedback.db")
    with Receiver() as receiver:
        outbox.add(deliveries(receiver.url, 40))
        sender = SenderProcess(outbox.engine, DeliveryPolicy(timeout_seconds=2))
        try:
            child, wanted = psutil.Process(sender.process.pid), min(19, psutil.Process().nice() + NICENESS)
            wait_for(lambda: child.nice() == wanted, 10, "the sender's lower priority", every=0.1)
            wait_for(lambda: outbox.counts()["sent"] == 40, 30, "40 deliveries sent", every=0.1)
        finally:
            sender.close()
        assert not sender.alive() and sender.process.returncode == 0  # SIGTERM: a clean stop
        assert sorted(body["n"] for body in receiver.bodies()) == list(range(40))


def test_a_dead_sender_is_started_again(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path / "feedback.db")
    sender = SenderProcess(outbox.engine, DeliveryPolicy())
    try:
        assert not sender.restart_if_dead()
        first = sender.process.pid
        os.kill(first, signal.SIGKILL)
        sender.process.wait(timeout=10)
        assert sender.restart_if_dead()
        assert sender.alive() and sender.process.pid != first
    finally:
        sender.close()


def test_the_sender_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from earshot.routing.outbox import Outbox\n"
         "from earshot.routing.rules import DeliveryPolicy\n"
         "from earshot.routing.sender_process import SenderProcess\n"
         f"sender = SenderProcess(Outbox.open({str(tmp_path / 'feedback.db')!r}).engine, DeliveryPolicy())\n"
         "print(sender.process.pid, flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        parent.kill()  # as kill -9 of the service: no shutdown hook runs
        parent.wait(timeout=10)
        # exited: gone, or a zombie where the init that adopted it does not reap
        wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 15,
                 "the orphaned sender to exit", every=0.1)
    finally:
        parent.kill()


def test_a_sqlite_store_is_reopened_by_path_and_a_server_store_by_its_full_url(tmp_path: Path) -> None:
    import sqlalchemy as sa

    assert store_location(Outbox.open(tmp_path / "f.db").engine) == str((tmp_path / "f.db").resolve())
    engine = sa.create_engine("postgresql+psycopg://jo:s3cret@db.example:5432/earshot")
    assert store_location(engine) == "postgresql+psycopg://jo:s3cret@db.example:5432/earshot"
