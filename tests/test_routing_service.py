"""Routing through a real `earshot serve`: deliveries survive kill -9, and two replicas on one
PostgreSQL store send each delivery once."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import tiny_heads, wait_for
from earshot.loop.store import FeedbackStore
from earshot.routing.rules import read_rules
from benchmarks.receiver import Receiver
from servers import clean_env, free_port, start_server, stop
from test_loop_service import tiny_version

WORDS = ["my flight was late", "staff was rude at the gate", "lost my bag again", "billing charged me twice",
         "the crew was lovely", "ok flight"]


def routes_file(folder: Path, url: str, channels: str) -> Path:
    path = folder / "routes.yaml"
    path.write_text(f"""\
routes:
  - name: unhappy
    when:
      sentiment: [negative, neutral, positive]
      fields: {{channel: [{channels}]}}
    send: {{webhook: {url}}}
delivery: {{max_attempts: 100, backoff_seconds: 1, max_backoff_seconds: 3, timeout_seconds: 2}}
""")
    return path


def classify(base: str, numbers: range, channel_of, acknowledged: dict[str, dict]) -> None:
    """POST the numbered texts ten per request; keep every acknowledged answer by id."""
    def post(start: int) -> None:
        items = [{"id": f"t{n}", "text": f"{WORDS[n % len(WORDS)]} {n}", "metadata": {"channel": channel_of(n)}}
                 for n in range(start, min(start + 10, numbers.stop))]
        try:
            response = httpx.post(f"{base}/classify", json={"items": items}, timeout=60)
        except httpx.HTTPError:
            return  # the server died before answering: not acknowledged
        if response.status_code == 200:
            for item, answer in zip(items, response.json()):
                acknowledged[item["id"]] = {"heads": answer["heads"], "metadata": item["metadata"]}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(numbers.start, numbers.stop, 10)))


def delivered(receiver: Receiver) -> list[str]:
    """The item id of every delivery received (repeats included), checking each body's id."""
    items = []
    for headers, body in receiver.received:
        assert body["delivery_id"] == headers["Idempotency-Key"]
        items.append(body["item"]["id"])
    return items


@pytest.mark.integration
def test_every_matching_answer_reaches_the_receiver_across_a_kill_9(tiny_base: Path, tmp_path: Path) -> None:
    model = tiny_version(tiny_base, tmp_path / "model", 1)
    store = tmp_path / "feedback.db"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Receiver(fail_for=1e9) as receiver:
        routes = routes_file(tmp_path, receiver.url, "email")
        args = ["--model", str(model), "--feedback-db", str(store), "--routes", str(routes)]
        process, log = start_server(args, clean_env(), port)
        receiver.fail_until = time.monotonic() + 20  # 500s for the receiver's first 20 s from here
        acknowledged: dict[str, dict] = {}
        try:
            classify(base, range(300), lambda n: "email" if n % 3 else "chat", acknowledged)
            time.sleep(8)
            stop(process, signal.SIGKILL)
        finally:
            if process.poll() is None:
                stop(process)
            log.close()
        assert len(acknowledged) == 300
        assert receiver.received == [] and receiver.attempts > 0  # tried, refused, killed
        book = read_rules(routes, tiny_heads())
        expected = {key for key, seen in acknowledged.items() if book.matching(seen["heads"], seen["metadata"])}
        assert len(expected) == 200
        # restarted with the review page hiding emails, every answer queued for review
        process, log = start_server(args, clean_env(EARSHOT_REVIEW_REDACT="email,phone", EARSHOT_CAPTURE_SAMPLE="1"),
                                    port)
        try:
            wait_for(lambda: set(delivered(receiver)) >= expected, 120, "every matching answer's delivery")
            wait_for(lambda: 'earshot_deliveries{state="sent"} 200.0' in httpx.get(f"{base}/metrics").text, 30,
                     "/metrics to count 200 sent deliveries")
            check_review_redaction(base, store)
        finally:
            stop(process)
            log.close()
    assert set(delivered(receiver)) == expected  # and no other


def check_review_redaction(base: str, store: Path) -> None:
    """The review page shows a text with its email hidden; a correction naming the item stores the real text."""
    text = "my flight was late, write to kim.park@example.com"
    httpx.post(f"{base}/classify", json={"items": [{"id": "pd", "text": text, "metadata": {"channel": "chat"}}]},
               timeout=30).raise_for_status()
    shown: list[dict] = []

    def queued() -> bool:
        shown[:] = [i for i in httpx.get(f"{base}/review/queue?limit=1000", timeout=10).json()["items"]
                    if i["id"] == "pd"]
        return bool(shown)

    wait_for(queued, 30, "the text in the review queue")
    assert shown[0]["text"] == "my flight was late, write to <EMAIL>" and shown[0]["redacted"] is True
    response = httpx.post(f"{base}/corrections", timeout=30,
                          json={"items": [{"item": shown[0]["item"], "labels": {"sentiment": "negative"}}]})
    assert response.status_code == 200, response.text
    assert text in {c.text for c in FeedbackStore.open(store).corrections()}


@pytest.mark.integration
def test_two_replicas_on_postgresql_send_each_delivery_once_and_lose_none(tiny_base: Path, tmp_path: Path,
                                                                         postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:  # a store of its own on the shared server
        connection.execute(sa.text("DROP TABLE IF EXISTS earshot_deliveries"))
    model = tiny_version(tiny_base, tmp_path / "model", 1)
    ports = [free_port(), free_port()]
    with Receiver() as receiver:
        routes = routes_file(tmp_path, receiver.url, "email")
        args = ["--model", str(model), "--feedback-db", postgres_url, "--routes", str(routes)]
        servers: list = [None, None]

        def start(slot: int) -> None:
            servers[slot] = start_server(args, clean_env(), ports[slot])

        starting = [threading.Thread(target=start, args=(slot,)) for slot in (0, 1)]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        try:
            acknowledged: dict[str, dict] = {}
            halves = [threading.Thread(target=classify, args=(f"http://127.0.0.1:{ports[slot]}", numbers,
                                                               lambda n: "email", acknowledged))
                      for slot, numbers in ((0, range(0, 500)), (1, range(500, 1000)))]
            for thread in halves:
                thread.start()
            for thread in halves:
                thread.join()
            assert len(acknowledged) == 1000
            wait_for(lambda: len(receiver.received) >= 1000, 120, "1,000 deliveries")
            time.sleep(3)  # time for a second copy to arrive, if a replica were to send one
            assert sorted(delivered(receiver)) == sorted(acknowledged)  # each once: nothing failed

            # One replica killed mid-way through the next 1,000: every acknowledged answer still arrives.
            receiver.clear()
            more: dict[str, dict] = {}
            writer = threading.Thread(target=classify, args=(f"http://127.0.0.1:{ports[1]}", range(1000, 2000),
                                                             lambda n: "email", more))
            writer.start()
            wait_for(lambda: len(more) >= 300, 60, "300 answers from the second replica")
            stop(servers[1][0], signal.SIGKILL)
            writer.join()
            assert 300 <= len(more) < 1000
            wait_for(lambda: set(delivered(receiver)) >= set(more), 120, "every acknowledged answer's delivery")
        finally:
            for server in servers:
                if server is not None and server[0].poll() is None:
                    stop(server[0])
                if server is not None:
                    server[1].close()
    sent = re.findall(r"t(\d+)", " ".join(delivered(receiver)))
    assert all(1000 <= int(n) < 2000 for n in sent)
