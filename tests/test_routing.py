"""Routing rules, the outbox, the sender, spike alerts and the batch path (`earshot route`, `earshot alerts`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from earshot.cli import main
from earshot.model import Head
from earshot.routing.outbox import DEAD, PENDING, SENT, Delivery, Outbox, delivery_id
from earshot.routing.router import RoutedItem, Router
from earshot.routing.rules import DeliveryPolicy, RulesError, Target, parse_rules, read_rules
from earshot.routing.sender import Sender, request_parts
from earshot.routing.spikes import SpikeWatch, poisson_upper_tail
from benchmarks.receiver import Receiver

HEADS = [Head("sentiment", "single", ["negative", "neutral", "positive"]),
         Head("pain_points", "multi", ["Delays", "Billing and charges", "Refunds and returns"])]
RULES = """\
routes:
  - name: refunds-to-billing
    when:
      sentiment: [negative]
      pain_points: [Refunds and returns, Billing and charges]
      min_score: 0.7
      fields: {channel: [email, chat]}
    send:
      webhook: {url}
      secret_env: TEST_HOOK_SECRET
  - name: every-delay
    when:
      pain_points: Delays
    send:
      slack: {url}
delivery:
  max_attempts: 3
  backoff_seconds: 0.05
  max_backoff_seconds: 0.2
  timeout_seconds: 5
"""


def answer(sentiment: str, pains: dict[str, float], sentiment_score: float = 0.9) -> dict:
    return {"sentiment": {"kind": "single", "labels": [{"label": sentiment, "score": sentiment_score}],
                          "scores": {sentiment: sentiment_score}},
            "pain_points": {"kind": "multi", "labels": [{"label": k, "score": v} for k, v in pains.items()],
                            "scores": pains}}


def book(url: str = "http://127.0.0.1:9/hook"):
    return parse_rules(RULES.replace("{url}", url), HEADS, "routes.yaml")


# ------------------------------------------------------------------------------------------ rules
def test_a_route_needs_every_condition_and_any_listed_label() -> None:
    rules = book()
    names = lambda heads, meta: [route.name for route in rules.matching(heads, meta)]  # noqa: E731
    assert names(answer("negative", {"Billing and charges": 0.8}), {"channel": "email"}) == ["refunds-to-billing"]
    assert names(answer("negative", {"Refunds and returns": 0.75, "Delays": 0.9}), {"channel": "chat"}) == [
        "refunds-to-billing", "every-delay"]
    assert names(answer("negative", {"Billing and charges": 0.6}), {"channel": "email"}) == []  # under min_score
    assert names(answer("neutral", {"Billing and charges": 0.9}), {"channel": "email"}) == []  # sentiment fails
    assert names(answer("negative", {"Billing and charges": 0.9}), {"channel": "phone"}) == []  # field fails
    assert names(answer("negative", {"Billing and charges": 0.9}), None) == []  # no metadata: field fails
    assert names(answer("positive", {"Delays": 0.51}), None) == ["every-delay"]


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("routes:\n  - name: a\n    when: {sentiment: negative}}\n    send: {webhook: http://x}\n", 3, "not valid YAML"),
    ("routes:\n  - name: a\n    when: {sentimen: [negative]}\n    send: {webhook: http://x}\n", 3,
     "unknown head 'sentimen'"),
    ("routes:\n  - name: a\n    when:\n      sentiment: [negative, angry]\n    send: {webhook: http://x}\n", 4,
     "sentiment has no label 'angry'"),
    ("routes:\n  - name: a\n    when: {sentiment: negative}\n    send:\n      webhook: ftp://x/y\n", 5,
     "must be an http:// or https:// URL"),
    ("routes:\n  - name: a\n    when: {sentiment: negative}\n    send: {webhook: http://x}\n    colour: red\n", 5,
     "unknown key 'colour'"),
    ("routes:\n  - name: a\n    when: {sentiment: negative}\n", 2, "a route needs send:"),
    ("routes:\n  - name: a\n    when: {sentiment: negative}\n    send: {webhook: http://x}\n"
     "  - name: a\n    when: {sentiment: positive}\n    send: {webhook: http://x}\n", 5, "used twice"),
    ("routes:\n  - name: a\n    when: {sentiment: negative, min_score: 1.5}\n    send: {webhook: http://x}\n", 3,
     "min_score of route 'a' must be from 0.0 to 1.0"),
    ("spikes:\n  - name: s\n    head: pain_points\n    window: soon\n    send: {webhook: http://x}\n", 4,
     "must be a duration"),
    ("spikes:\n  - name: s\n    head: pain_points\n    window: 2d\n    baseline: 1d\n    send: {webhook: http://x}\n",
     2, "baseline of spike 's' must be longer than its window"),
    ("routes: []\nspikes:\n  - name: s\n    head: moods\n    send: {webhook: http://x}\n", 4, "unknown head 'moods'"),
    ("delivery: {max_attempts: 3}\n", 1, "needs a `routes:` or `spikes:` list"),
])
def test_a_bad_routes_file_names_file_line_and_problem(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as error:
        read_rules(path, HEADS)
    assert str(error.value).startswith(f"{path}:{line}: ") and problem in str(error.value), str(error.value)


def test_serve_stops_at_a_bad_routes_file_before_starting(tmp_path: Path, saved_tiny: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - name: a\n    when: {pain_points: [late, early]}\n    send: {webhook: http://x}\n")
    code = main(["serve", "--model", str(saved_tiny), "--routes", str(path), "--feedback-db", str(tmp_path / "f.db")])
    assert code == 2 and f"{path}:3: pain_points has no label 'early'" in caplog.text
    assert main(["serve", "--model", str(saved_tiny), "--routes", str(path)]) == 2
    assert "--routes needs --feedback-db" in caplog.text


# ------------------------------------------------------------------------------------------ outbox
def delivery(number: int, url: str = "http://127.0.0.1:9/hook", created_at: float = 1000.0) -> Delivery:
    identifier = delivery_id("r", f"item {number}")
    return Delivery(identifier, "r", "route", Target("webhook", url), {"delivery_id": identifier, "n": number},
                    created_at=created_at)


def exercise_outbox(outbox: Outbox) -> None:
    policy = DeliveryPolicy(max_attempts=2, backoff_seconds=10, max_backoff_seconds=10)
    assert outbox.add([delivery(1), delivery(2)]) == 2
    assert outbox.add([delivery(2), delivery(3)]) == 1  # an id already there is left as it is
    first = outbox.claim(2, lease_seconds=30, now=1000.0)
    assert [d.payload["n"] for d in first] == [1, 2]
    second = outbox.claim(5, lease_seconds=30, now=1001.0)
    assert [d.payload["n"] for d in second] == [3]  # leased ones are not handed out twice
    again = outbox.claim(5, 30, now=1031.0)
    assert [d.payload["n"] for d in again] == [1, 2]  # the lease ran out: handed out again
    outbox.mark_sent(again[0])
    assert outbox.mark_failed(again[1], "HTTP 500", policy, now=1031.0) == PENDING
    # the first sender's late outcome changes nothing: 1 stays sent, 2 keeps one failed try
    assert outbox.mark_failed(first[0], "timeout", policy, now=1032.0) == SENT
    assert outbox.mark_failed(first[1], "timeout", policy, now=1032.0) == PENDING
    assert [d.payload["n"] for d in outbox.claim(5, 30, now=1035.0)] == [3]  # 2 backs off until 1041
    retried = outbox.claim(5, 30, now=1042.0)
    assert [(d.payload["n"], d.attempts) for d in retried] == [(2, 1)]
    assert outbox.mark_failed(retried[0], "HTTP 500", policy) == DEAD
    assert outbox.counts() == {"pending": 1, "failed": 0, "sent": 1, "dead": 1}
    dead = outbox.deliveries(DEAD)
    assert len(dead) == 1 and dead[0].last_error == "HTTP 500" and "payload" not in dead[0].summary()
    assert outbox.retry() == 1 and outbox.counts()["failed"] == 0 and outbox.counts()["pending"] == 2
    assert outbox.purge([SENT]) == 1 and outbox.counts()["sent"] == 0


def test_the_outbox_leases_retries_and_kills_deliveries_on_sqlite(tmp_path: Path) -> None:
    exercise_outbox(Outbox.open(tmp_path / "feedback.db"))


def test_the_outbox_keeps_the_same_contract_on_postgresql(postgres_url: str) -> None:
    outbox = Outbox.open(postgres_url)
    outbox.purge(["pending", "sent", "dead"])
    exercise_outbox(outbox)


def test_two_senders_on_postgresql_never_claim_the_same_delivery(postgres_url: str) -> None:
    outbox = Outbox.open(postgres_url)
    outbox.purge(["pending", "sent", "dead"])
    outbox.add([delivery(n) for n in range(400)])
    claimed: list[list[str]] = [[], []]

    def claim_all(slot: int) -> None:
        other = Outbox.open(postgres_url)
        while batch := other.claim(7, lease_seconds=600, now=2000.0):
            claimed[slot].extend(d.delivery_id for d in batch)

    threads = [threading.Thread(target=claim_all, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 400 and claimed[0] and claimed[1]


# ------------------------------------------------------------------------------------------ sending
def test_the_sender_signs_retries_and_delivers_each_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    with Receiver(fail_for=0.3) as receiver:
        rules = book(receiver.url)
        outbox = Outbox.open(tmp_path / "feedback.db")
        router = Router(rules, outbox)
        items = [RoutedItem(key=f"id{n}", text=f"Charged twice, order {n}", model_version="v", caller_id=f"t{n}",
                            heads=answer("negative", {"Billing and charges": 0.9, **({"Delays": 0.8} if n % 2 else {})}),
                            metadata={"channel": "email"}) for n in range(6)]
        assert router.record(items) == 9  # six to billing, three delays
        assert router.record(items) == 0  # the same items again: the same ids, nothing new
        counts = Sender(outbox, rules.delivery).drain(wait_seconds=20)
    assert counts == {"pending": 0, "failed": 0, "sent": 9, "dead": 0}
    assert receiver.attempts > 9  # the first tries met the 500s
    assert len(set(receiver.ids())) == 9
    by_route: dict[str, list] = {}
    for headers, body in receiver.received:
        by_route.setdefault(headers["X-Earshot-Rule"], []).append((headers, body))
    headers, body = by_route["refunds-to-billing"][0]
    assert body["route"] == "refunds-to-billing" and body["delivery_id"] == headers["Idempotency-Key"]
    assert body["item"]["text"].startswith("Charged twice") and body["item"]["metadata"] == {"channel": "email"}
    assert body["item"]["heads"]["pain_points"]["labels"][0]["label"] == "Billing and charges"
    signed = headers["X-Earshot-Timestamp"].encode() + b"." + json.dumps(
        body, ensure_ascii=False, separators=(",", ":")).encode()
    assert headers["X-Earshot-Signature"] == "sha256=" + hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    slack = by_route["every-delay"][0][1]
    assert set(slack) == {"text"} and "Delays" in slack["text"] and "Charged twice" in slack["text"]


def test_a_receiver_that_never_takes_it_leaves_a_dead_delivery_to_retry(tmp_path: Path) -> None:
    with Receiver(status=503) as receiver:
        rules = book(receiver.url)
        outbox = Outbox.open(tmp_path / "feedback.db")
        Router(rules, outbox).record([RoutedItem("k", "late again", "v", answer("neutral", {"Delays": 0.9}))])
        counts = Sender(outbox, rules.delivery).drain(wait_seconds=10)
        assert counts["dead"] == 1 and receiver.attempts == rules.delivery.max_attempts
        assert main(["alerts", "retry", "--feedback-db", str(tmp_path / "feedback.db")]) == 0
        assert outbox.counts()["pending"] == 1
        assert main(["alerts", "purge", "--feedback-db", str(tmp_path / "feedback.db"), "--state", "pending"]) == 0
        assert outbox.counts() == {"pending": 0, "failed": 0, "sent": 0, "dead": 0}


def test_request_parts_carry_the_stable_id() -> None:
    item = delivery(7)
    body, headers = request_parts(item, now=1234)
    assert headers["Idempotency-Key"] == headers["X-Earshot-Delivery"] == item.delivery_id
    assert json.loads(body) == item.payload and "X-Earshot-Signature" not in headers
    assert delivery_id("r", "item 7") == item.delivery_id != delivery_id("other", "item 7")


# ------------------------------------------------------------------------------------------ spikes
SPIKES = """\
spikes:
  - name: surge
    head: pain_points
    window: 1h
    baseline: 7d
    min_count: 10
    send: {webhook: http://127.0.0.1:9/hook}
"""


def stream(watch: SpikeWatch, now: float, per_hour: dict[str, float], last_hour: dict[str, int]) -> None:
    """A week of steady hourly volume per label, then the last hour's counts."""
    rows = []
    for hour in range(1, 7 * 24 + 1):
        for label, rate in per_hour.items():
            start = now - (hour + 1) * 3600
            rows += [{"created_at": start + (i + 0.5) * 3600 / rate, "head": "pain_points", "label": label,
                      "text": f"{label} {hour}", "item_id": None} for i in range(int(rate))]
    for label, count in last_hour.items():
        rows += [{"created_at": now - 3600 + (i + 0.5) * 3600 / count, "head": "pain_points", "label": label,
                  "text": f"{label} now {i}", "item_id": None} for i in range(count)]
    with watch.engine.begin() as connection:
        watch.log(rows, connection)


def test_a_label_that_triples_in_the_last_hour_raises_one_alert(tmp_path: Path) -> None:
    rules = parse_rules(SPIKES, HEADS)
    outbox = Outbox.open(tmp_path / "feedback.db")
    router = Router(rules, outbox)
    now = 1_800_000_000.0
    stream(router.spikes, now, {"Delays": 20, "Billing and charges": 12}, {"Delays": 21, "Billing and charges": 36})
    spikes = router.spikes.check(now)
    assert [(s.label, s.count) for s in spikes] == [("Billing and charges", 36)]
    assert spikes[0].ratio == pytest.approx(3.0) and spikes[0].p_value < 1e-6 and len(spikes[0].examples) == 3
    assert router.check_spikes(now) == 1 and router.check_spikes(now + 60) == 0  # one alert per window
    payload = outbox.deliveries()[0].payload
    assert payload["label"] == "Billing and charges" and payload["window"]["count"] == 36
    assert payload["baseline"]["count"] == 7 * 24 * 12 and payload["examples"][0].startswith("Billing and charges now")


def test_a_steady_stream_raises_no_alert(tmp_path: Path) -> None:
    router = Router(parse_rules(SPIKES, HEADS), Outbox.open(tmp_path / "feedback.db"))
    now = 1_800_000_000.0
    stream(router.spikes, now, {"Delays": 20, "Billing and charges": 12}, {"Delays": 24, "Billing and charges": 15})
    assert router.spikes.check(now) == []


def test_poisson_upper_tail_matches_the_closed_form() -> None:
    assert poisson_upper_tail(0, 3.0) == 1.0
    assert poisson_upper_tail(1, 2.0) == pytest.approx(1 - 2.718281828 ** -2)
    assert poisson_upper_tail(3, 1.0) == pytest.approx(1 - 2.5 * 2.718281828 ** -1)
    assert 0 < poisson_upper_tail(60, 20.0) < 1e-9


# ------------------------------------------------------------------------------------------ batch path
def test_earshot_route_sends_a_scored_file_once_even_when_run_twice(tmp_path: Path, saved_tiny: Path) -> None:
    scored = tmp_path / "scored.csv"
    pd.DataFrame({
        "ticket": ["a1", "a2", "a3", "a4"],
        "text": ["late again", "charged twice", "fine", "broken"],
        "channel": ["email", "email", "chat", "email"],
        "sentiment": ["negative", "negative", "positive", ""],
        "sentiment_score": ["0.9", "0.8", "0.95", ""],
        "pain_points": ["late", "billing;late", "", ""],
        "pain_points_scores": [json.dumps({"late": 0.9, "billing": 0.1}), json.dumps({"late": 0.7, "billing": 0.8}),
                               json.dumps({"late": 0.1}), ""],
        "model_version": ["v1"] * 4, "error": ["", "", "", "text is empty"]}).to_csv(scored, index=False)
    db = tmp_path / "feedback.db"
    with Receiver() as receiver:
        routes = tmp_path / "routes.yaml"
        routes.write_text(f"routes:\n  - name: late\n    when: {{pain_points: [late], fields: {{channel: email}}}}\n"
                          f"    send: {{webhook: {receiver.url}}}\n")
        command = ["route", str(scored), "--routes", str(routes), "--feedback-db", str(db), "--model", str(saved_tiny),
                   "--id-column", "ticket", "--metadata-columns", "channel", "--wait", "20"]
        assert main(command) == 0
        assert main(command) == 0  # a rerun: the same ids, nothing sent twice
    bodies = receiver.bodies()
    assert sorted(body["item"]["id"] for body in bodies) == ["a1", "a2"]
    first = next(body for body in bodies if body["item"]["id"] == "a1")["item"]
    assert first["heads"]["pain_points"]["labels"] == [{"label": "late", "score": 0.9}]
    assert first["heads"]["sentiment"]["labels"] == [{"label": "negative", "score": 0.9}]
    assert first["metadata"] == {"channel": "email"} and first["model_version"] == "v1"
    assert Outbox.open(db).counts() == {"pending": 0, "failed": 0, "sent": 2, "dead": 0}


def test_earshot_route_names_missing_columns(tmp_path: Path, saved_tiny: Path, caplog: pytest.LogCaptureFixture) -> None:
    scored = tmp_path / "scored.csv"
    pd.DataFrame({"text": ["x"], "sentiment": ["negative"], "sentiment_score": ["0.9"]}).to_csv(scored, index=False)
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: late\n    when: {pain_points: [late]}\n    send: {webhook: http://x}\n")
    assert main(["route", str(scored), "--routes", str(routes), "--feedback-db", str(tmp_path / "f.db"),
                 "--model", str(saved_tiny)]) == 2
    assert "no column ['pain_points']" in caplog.text


def test_feedback_purge_deletes_what_routing_keeps(tmp_path: Path) -> None:
    db = tmp_path / "feedback.db"
    router = Router(parse_rules(RULES.replace("{url}", "http://127.0.0.1:9/hook") + SPIKES, HEADS), Outbox.open(db))
    router.record([RoutedItem("k", "late again, call me on 555-0100", "v", answer("neutral", {"Delays": 0.9}))])

    def logged() -> int:
        with router.outbox.engine.connect() as connection:
            return connection.execute(sa.text("SELECT COUNT(*) FROM earshot_label_events")).scalar()

    assert router.outbox.counts()["pending"] == 1 and logged() == 1
    assert main(["feedback", "purge", "--feedback-db", str(db), "--all"]) == 0
    assert router.outbox.counts()["pending"] == 0 and logged() == 0


def test_a_route_that_redacts_sends_and_stores_no_redacted_value(tmp_path: Path) -> None:
    rules = parse_rules("routes:\n  - name: r\n    when: {pain_points: [Delays]}\n    send: {webhook: http://x/y}\n"
                        "    redact: [email, phone, card]\n", HEADS)
    router = Router(rules, Outbox.open(tmp_path / "feedback.db"))
    text = "Late again! Write to jo.smith@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111"
    router.record([RoutedItem("k", text, "v", answer("negative", {"Delays": 0.9}),
                              metadata={"contact": "jo.smith@example.com", "tier": 2})])
    stored = json.dumps(router.outbox.deliveries()[0].payload)
    for value in ("jo.smith@example.com", "7946 0958", "4111 1111 1111 1111"):
        assert value not in stored
    item = router.outbox.deliveries()[0].payload["item"]
    assert item["text"].startswith("Late again! Write to <EMAIL> or call <PHONE>, card <CARD>")
    assert item["metadata"] == {"contact": "<EMAIL>", "tier": 2}


def test_the_service_dispatch_raises_a_spike_alert_from_its_housekeeping(tmp_path: Path) -> None:
    from earshot.routing.dispatch import Dispatch

    now = time.time()
    dispatch = Dispatch(parse_rules(SPIKES, HEADS), Outbox.open(tmp_path / "feedback.db"))
    stream(dispatch.router.spikes, now, {"Delays": 5}, {})
    burst = [RoutedItem(f"k{n}", f"charged twice {n}", "v", answer("negative", {"Billing and charges": 0.9}),
                        created_at=now - n) for n in range(30)]
    assert dispatch.log.wait_written(dispatch.hand_over(burst), timeout=10)
    dispatch._housekeeping()
    alerts = dispatch.outbox.deliveries()
    assert [(d.kind, d.payload["label"], d.payload["window"]["count"]) for d in alerts] == [
        ("spike", "Billing and charges", 30)]
    dispatch.close()


def test_field_values_compare_as_yaml_means_them() -> None:
    rules = parse_rules("routes:\n  - name: r\n    when: {fields: {vip: [yes], tier: [1.0]}}\n"
                        "    send: {webhook: http://x/y}\n", HEADS)
    assert [r.name for r in rules.matching({}, {"vip": True, "tier": 1})] == ["r"]
    assert rules.matching({}, {"vip": False, "tier": 1}) == [] and rules.matching({}, {"vip": True, "tier": 2}) == []


def test_a_route_name_outside_ascii_is_sent_and_marked(tmp_path: Path) -> None:
    with Receiver() as receiver:
        rules = parse_rules(f"routes:\n  - name: remboursé\n    when: {{pain_points: [Delays]}}\n"
                            f"    send: {{webhook: {receiver.url}}}\n", HEADS)
        outbox = Outbox.open(tmp_path / "feedback.db")
        Router(rules, outbox).record([RoutedItem("k", "late", "v", answer("negative", {"Delays": 0.9}))])
        assert Sender(outbox, rules.delivery).drain(wait_seconds=10)["sent"] == 1
    assert receiver.received[0][0]["X-Earshot-Rule"] == "rembours%C3%A9"


def test_a_redacting_route_sends_no_evidence_of_the_unredacted_text(tmp_path: Path) -> None:
    rules = parse_rules("routes:\n  - name: r\n    when: {pain_points: [Delays]}\n    send: {webhook: http://x/y}\n"
                        "    redact: [email]\n", HEADS)
    router = Router(rules, Outbox.open(tmp_path / "feedback.db"))
    heads = answer("negative", {"Delays": 0.9})
    heads["pain_points"]["labels"][0]["evidence"] = [{"start": 8, "end": 20, "text": "jo@mail.com", "weight": 0.5}]
    router.record([RoutedItem("k", "late to jo@mail.com", "v", heads)])
    payload = json.dumps(router.outbox.deliveries()[0].payload)
    assert "jo@mail.com" not in payload and "evidence" not in payload


def test_a_burst_across_two_window_buckets_raises_one_alert(tmp_path: Path) -> None:
    router = Router(parse_rules(SPIKES, HEADS), Outbox.open(tmp_path / "feedback.db"))
    now = 1_800_000_000.0  # a multiple of the hour: checks a minute apart see windows starting in two buckets
    stream(router.spikes, now, {"Delays": 20, "Billing and charges": 12}, {"Billing and charges": 36})
    assert router.check_spikes(now - 60) + router.check_spikes(now + 60) == 1


def test_earshot_route_reads_missing_cells_of_a_jsonl_file_as_empty(tmp_path: Path, saved_tiny: Path) -> None:
    scored = tmp_path / "scored.jsonl"
    pd.DataFrame({"text": ["late again", "fine"], "sentiment": ["negative", None], "sentiment_score": [0.9, None],
                  "pain_points": ["late", None], "pain_points_scores": [json.dumps({"late": 0.9}), None],
                  "model_version": ["v1", None], "error": [None, "empty text"]}).to_json(scored, orient="records",
                                                                                       lines=True)
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: late\n    when: {pain_points: [late]}\n    send: {webhook: http://x/y}\n")
    db = tmp_path / "feedback.db"
    assert main(["route", str(scored), "--routes", str(routes), "--feedback-db", str(db), "--model", str(saved_tiny),
                 "--no-send"]) == 0
    [delivery] = Outbox.open(db).deliveries()
    assert delivery.payload["item"]["text"] == "late again" and delivery.payload["item"]["model_version"] == "v1"


def test_the_sender_waits_for_deliveries_to_gather_unless_its_claim_was_full(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sender = Sender(Outbox.open(tmp_path / "f.db"), DeliveryPolicy(), concurrency=2, rounds=2)
    claims = []

    def send_due(now: float | None = None) -> dict[str, int]:
        claims.append(time.monotonic())
        return {"sent": 4 if len(claims) <= 3 else 1, "retrying": 0, "dead": 0}  # 3 full claims, then partial ones

    monkeypatch.setattr(sender, "send_due", send_due)
    stop = threading.Event()
    worker = threading.Thread(target=sender.run, args=(stop,), kwargs={"idle_seconds": 0.2})
    worker.start()
    time.sleep(0.5)
    stop.set()
    worker.join()
    sender.close()
    # the full claims follow at once; after a partial one the sender waits, so one arrival is not one claim
    assert claims[2] - claims[0] < 0.1
    assert 4 <= len(claims) <= 8  # claiming at once after each would make thousands


def test_the_commit_log_writes_handed_rows_together_in_order_and_keeps_failed_ones() -> None:
    from earshot.routing.group_commit import Backlogged, CommitLog

    written: list[list[int]] = []
    failures = [OSError("disk full")] * 2

    def write(rows: list[int]) -> None:
        time.sleep(0.05)  # a commit's fsync: rows handed over meanwhile wait for the next one
        if 1000 in rows and failures:
            raise failures.pop()
        written.append(rows)

    log = CommitLog(write, max_waiting=50, first_pause=0.01)
    tickets = [log.hand_over([n, n + 100]) for n in range(20)]
    assert tickets == list(range(1, 21)) and log.last_ticket == 20
    assert log.wait_written(20, timeout=10)
    assert [row for rows in written for row in rows] == [x for n in range(20) for x in (n, n + 100)]
    assert len(written) < 20  # rows handed over during a write share the next one

    ticket = log.hand_over([1000])  # its write fails twice, then succeeds: nothing is dropped
    assert not log.wait_written(ticket, timeout=0.01)
    assert log.wait_written(ticket, timeout=10) and written[-1] == [1000] and not failures

    async def wait_async() -> None:
        await asyncio.wait_for(log.written(log.hand_over([7])), 10)

    asyncio.run(wait_async())
    assert written[-1] == [7]
    with pytest.raises(Backlogged, match="rows wait"):
        log.hand_over(list(range(51)))
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.hand_over([8])


def test_an_answer_waits_at_the_door_until_its_deliveries_are_written() -> None:
    from earshot.routing.group_commit import CommitLog
    from service.middleware import DeliveryDoor, DurableAnswers

    release = threading.Event()
    log = CommitLog(lambda rows: release.wait(10))
    door = DeliveryDoor()
    door.log = log
    sent: list[tuple[float, dict]] = []

    async def app(scope: dict, receive, send) -> None:  # noqa: ANN001 - the ASGI callables
        log.hand_over(["delivery"])  # as the batch function does, before its answer goes out
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    async def record(message: dict) -> None:
        sent.append((time.monotonic(), message))

    async def call(path: str, timeout: float) -> None:
        await DurableAnswers(app, door, timeout=timeout)({"type": "http", "path": path}, None, record)

    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    asyncio.run(call("/classify", 10))
    assert [m["type"] for _, m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0][0] - started >= 0.25  # held until the write returned

    release.clear()
    sent.clear()
    asyncio.run(call("/classify", 0.2))  # the store does not take it in time: a 503, not the answer
    assert [(m["type"], m.get("status")) for _, m in sent] == [("http.response.start", 503),
                                                              ("http.response.body", None)]
    assert b"feedback store" in sent[1][1]["body"]
    release.set()
    assert log.wait_written(log.hand_over(["later"]), timeout=10)  # a waiter that left stops nothing
    log.close()
