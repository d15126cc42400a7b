"""Spike alerts: a label whose volume in the last window stands out against its trailing baseline.

Each answered label of a head that a spike rule watches is logged with its time (the item's
``created_at``, or the server's clock) and, for the alert's examples, its text. A check counts the
window ``(now - window, now]`` and the baseline ``(now - window - baseline, now - window]``; the
expected window count is the baseline's rate times the window. A label spikes when its count is at
least ``min_count``, at least ``min_ratio`` times the expected count, and the one-sided Poisson
p-value P(X >= count | expected) is under ``p_value``. With no baseline at all (a new label) the
expected count is taken as half an item per window, so a first burst still has to be large.

Alerts are deliveries like a route's: one per rule, label and window (its id is built from the
window's start), so checking often, or on several replicas, raises it once.

Example:
    >>> poisson_upper_tail(30, 10.0) < 1e-6
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from .outbox import Delivery, delivery_id
from .rules import RuleBook, SpikeRule

_metadata = sa.MetaData()
events_table = sa.Table(
    "earshot_label_events", _metadata,
    sa.Column("event", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("head", sa.String(200), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=True),  # for the alert's examples; purged with the baseline
    sa.Column("item_id", sa.String(200), nullable=True),
)
# an unseen label's expected count per window: a first burst needs min_count and a tiny p-value still
NO_BASELINE_EXPECTED = 0.5


def poisson_upper_tail(count: int, expected: float) -> float:
    """P(X >= count) for X ~ Poisson(expected), summed in log space (no SciPy needed).

    Example:
        >>> round(poisson_upper_tail(1, 1.0), 4)
        0.6321
    """
    if count <= 0:
        return 1.0
    if expected <= 0:
        return 0.0
    def log_pmf(k: int) -> float:
        return k * math.log(expected) - expected - math.lgamma(k + 1)

    if count <= expected:  # the tail is large: one minus the head is exact enough
        return max(0.0, 1.0 - sum(math.exp(log_pmf(k)) for k in range(count)))
    # the tail is small: sum it from `count` up (terms fall faster than geometrically past the mean)
    total, k = 0.0, count
    while True:
        term = math.exp(log_pmf(k))
        total += term
        if term <= total * 1e-16:
            return min(1.0, total)
        k += 1


@dataclass(frozen=True)
class Spike:
    """One label that stands out, with the counts that say so."""

    rule: SpikeRule
    label: str
    count: int
    baseline_count: int
    expected: float
    p_value: float
    window_start: float
    examples: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        return self.count / self.expected

    def delivery(self, redact: Any | None = None) -> Delivery:
        """The alert as a delivery; its id is stable for this rule, label and window."""
        key = f"spike\0{self.label}\0{int(self.window_start // self.rule.window_s)}"
        identifier = delivery_id(self.rule.name, key)
        examples = [redact(text) if redact is not None else text for text in self.examples]
        payload = {"delivery_id": identifier, "spike": self.rule.name, "head": self.rule.head, "label": self.label,
                   "window": {"start": _iso(self.window_start), "seconds": self.rule.window_s, "count": self.count},
                   "baseline": {"seconds": self.rule.baseline_s, "count": self.baseline_count},
                   "expected": round(self.expected, 3), "ratio": round(self.ratio, 3), "p_value": self.p_value,
                   "examples": examples, "created_at": _iso(time.time())}
        # created at the check's time (the window's end), which the next checks compare with
        return Delivery(identifier, self.rule.name, "spike", self.rule.target, payload, item_id=self.label,
                        created_at=self.window_start + self.rule.window_s)


class SpikeWatch:
    """Logs the labels that spike rules watch, and checks them."""

    def __init__(self, book: RuleBook, engine: sa.Engine) -> None:
        self.rules = book.spikes
        self.engine = engine
        _metadata.create_all(engine)

    def events(self, heads: dict[str, Any], created_at: float, text: str, item_id: str | None) -> list[dict[str, Any]]:
        """The rows to log for one answer: each answered label of a watched head."""
        rows = []
        for head in {rule.head for rule in self.rules}:
            answer = heads.get(head)
            for entry in (answer or {}).get("labels", []):
                rows.append({"created_at": created_at, "head": head, "label": entry["label"], "text": text,
                             "item_id": item_id})
        return rows

    def log(self, rows: Sequence[dict[str, Any]], connection: sa.Connection) -> None:
        if rows:
            connection.execute(events_table.insert(), list(rows))

    def check(self, now: float | None = None) -> list[Spike]:
        """Every label of every rule that spikes at ``now`` (default: the clock)."""
        now = time.time() if now is None else now
        return [spike for rule in self.rules for spike in self._check_rule(rule, now)]

    def _check_rule(self, rule: SpikeRule, now: float) -> Iterable[Spike]:
        start = now - rule.window_s
        with self.engine.connect() as connection:
            window = _counts(connection, rule, start, now)
            baseline = _counts(connection, rule, start - rule.baseline_s, start)
            for label, count in sorted(window.items()):
                if rule.labels is not None and label not in rule.labels:
                    continue
                before = baseline.get(label, 0)
                expected = before * rule.window_s / rule.baseline_s if before else NO_BASELINE_EXPECTED
                p_value = poisson_upper_tail(count, expected)
                if count >= rule.min_count and count >= rule.min_ratio * expected and p_value < rule.p_value:
                    examples = tuple(connection.scalars(
                        sa.select(events_table.c.text).where(*_in_window(rule, start, now), events_table.c.label == label,
                                                             events_table.c.text.is_not(None))
                        .order_by(events_table.c.created_at.desc()).limit(rule.examples)))
                    yield Spike(rule, label, count, before, expected, p_value, start, examples)

    def forget_before(self, now: float | None = None) -> int:
        """Delete logged labels older than every rule's window and baseline (they hold feedback text)."""
        now = time.time() if now is None else now
        horizon = max((rule.window_s + rule.baseline_s for rule in self.rules), default=0.0)
        with self.engine.begin() as connection:
            return connection.execute(events_table.delete().where(events_table.c.created_at < now - horizon)).rowcount


def _in_window(rule: SpikeRule, start: float, end: float) -> list[Any]:
    return [events_table.c.head == rule.head, events_table.c.created_at > start, events_table.c.created_at <= end]


def _counts(connection: sa.Connection, rule: SpikeRule, start: float, end: float) -> dict[str, int]:
    return dict(connection.execute(sa.select(events_table.c.label, sa.func.count())
                                   .where(*_in_window(rule, start, end)).group_by(events_table.c.label)).tuples().all())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
