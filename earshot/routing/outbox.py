"""The outbox: every delivery a rule or a spike asks for, recorded in the feedback store's database
before the answer that caused it goes out, then sent by a worker until the receiver takes it.

Why a table and not a queue in memory: an answer that matched a rule must reach its receiver even when
the service is killed right after answering, and with several replicas on one PostgreSQL store exactly
one of them should send each delivery. A delivery is claimed for a lease (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite serialises writers), sent, then marked sent; a sender that dies mid-way leaves a
lease that runs out, and the delivery is sent again: at least once, with the same ``delivery_id``
(also the ``Idempotency-Key`` header) so that receivers can drop repeats.

Example:
    >>> outbox = Outbox.open("feedback.db")
    >>> outbox.add([delivery])                      # doctest: +SKIP
    1
    >>> outbox.counts()                             # doctest: +SKIP
    {'pending': 1, 'sent': 0, 'dead': 0}
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import sqlalchemy as sa

from earshot.files import sha256
from earshot.loop.store import open_engine

from .rules import DeliveryPolicy, Target

PENDING, SENT, DEAD = "pending", "sent", "dead"
STATES = (PENDING, SENT, DEAD)

_metadata = sa.MetaData()
deliveries_table = sa.Table(
    "earshot_deliveries", _metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(200), nullable=False, index=True),  # the route's or spike's name
    sa.Column("kind", sa.String(8), nullable=False),  # route | spike
    sa.Column("channel", sa.String(16), nullable=False),  # webhook | slack
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret_env", sa.String(200), nullable=True),  # the variable's name: secrets are never stored
    sa.Column("payload", sa.Text, nullable=False),  # JSON body, already redacted as the rule asks
    sa.Column("item_id", sa.String(200), nullable=True),  # the caller's id, for `earshot alerts list`
    sa.Column("state", sa.String(8), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),  # status code or exception: never the payload
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("sent_at", sa.Float, nullable=True),
)


def delivery_id(rule: str, key: str) -> str:
    """The stable id of ``rule``'s delivery for ``key`` (an item, a scored row, a spike's window): the
    same rule and key give the same id, so a retried request or a rerun adds nothing twice.

    Example:
        >>> delivery_id("refunds", "row:17") == delivery_id("refunds", "row:17")
        True
    """
    return sha256(f"{rule}\0{key}")[:32]


@dataclass(frozen=True)
class Delivery:
    """One message for one receiver, and where it stands."""

    delivery_id: str
    rule: str
    kind: str
    target: Target
    payload: dict[str, Any]
    item_id: str | None = None
    state: str = PENDING
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    last_error: str | None = None
    sent_at: float | None = None
    claim: str | None = None  # the lease this copy was handed out under (Outbox.claim)

    def summary(self) -> dict[str, Any]:
        """What ``earshot alerts list`` shows: everything but the payload (it holds feedback text)."""
        return {"delivery_id": self.delivery_id, "rule": self.rule, "kind": self.kind, "channel": self.target.channel,
                "url": self.target.url, "item_id": self.item_id, "state": self.state, "attempts": self.attempts,
                "created_at": self.created_at, "sent_at": self.sent_at, "last_error": self.last_error}


class Outbox:
    """The deliveries table of a feedback store (SQLite file or SQLAlchemy URL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine)

    @classmethod
    def open(cls, where: str | Path) -> "Outbox":
        return cls(open_engine(where))

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------ writing
    def add(self, deliveries: Sequence[Delivery], connection: sa.Connection | None = None) -> int:
        """Record ``deliveries`` (those whose id is already there are left as they are); committed when
        this returns, unless ``connection`` is given: then they commit with its transaction.
        Returns how many were new."""
        if not deliveries:
            return 0
        if connection is None:
            with self.engine.begin() as own:
                return self.add(deliveries, own)
        rows = {d.delivery_id: _row(d) for d in deliveries}
        known = set(connection.scalars(sa.select(deliveries_table.c.delivery_id).where(
            deliveries_table.c.delivery_id.in_(list(rows)))))
        fresh = [row for key, row in rows.items() if key not in known]
        if fresh:
            connection.execute(_insert_new(connection.dialect.name), fresh)
        return len(fresh)

    def claim(self, limit: int, lease_seconds: float, now: float | None = None) -> list[Delivery]:
        """Up to ``limit`` pending deliveries that are due, leased to this caller for ``lease_seconds``:
        no other sender takes them until the lease runs out."""
        now = time.time() if now is None else now
        token = uuid.uuid4().hex
        due = sa.and_(deliveries_table.c.state == PENDING, deliveries_table.c.next_attempt_at <= now,
                      sa.or_(deliveries_table.c.claimed_until.is_(None), deliveries_table.c.claimed_until < now))
        with self.engine.begin() as connection:
            ids = list(connection.scalars(
                sa.select(deliveries_table.c.delivery_id).where(due)
                .order_by(deliveries_table.c.next_attempt_at, deliveries_table.c.created_at)
                .limit(limit).with_for_update(skip_locked=True)))
            if not ids:
                return []
            connection.execute(deliveries_table.update().where(deliveries_table.c.delivery_id.in_(ids), due)
                               .values(claim=token, claimed_until=now + lease_seconds))
            # by primary key: a scan for the token would hold the store's write lock (SQLite) for as long
            # as the outbox is big, and the service's requests wait for that lock to commit
            rows = connection.execute(sa.select(deliveries_table).where(
                deliveries_table.c.delivery_id.in_(ids), deliveries_table.c.claim == token)).mappings().all()
        order = {identifier: number for number, identifier in enumerate(ids)}  # due first, as selected
        return [_delivery(row) for row in sorted(rows, key=lambda row: order[row["delivery_id"]])]

    def record(self, outcomes: Sequence[tuple[Delivery, str | None]], policy: DeliveryPolicy,
               now: float | None = None) -> list[str]:
        """Record what became of claimed deliveries, in one transaction (one commit per claimed batch,
        not per delivery: the service's requests write to the same database): ``None`` for a 2xx answer,
        else the error of a failed try, retried after the policy's backoff or dead after its last attempt.
        A copy whose lease ran out and was handed to another sender changes nothing (that sender's outcome
        counts). Returns each delivery's state afterwards."""
        now = time.time() if now is None else now
        states: dict[str, str] = {}
        with self.engine.begin() as connection:
            by_claim: dict[str | None, list[str]] = {}
            for delivery, error in outcomes:
                if error is None:
                    by_claim.setdefault(delivery.claim, []).append(delivery.delivery_id)
            for claim, ids in by_claim.items():  # the sent ones: one statement per claimed batch
                connection.execute(deliveries_table.update().where(
                    deliveries_table.c.delivery_id.in_(ids), deliveries_table.c.state == PENDING,
                    deliveries_table.c.claim == claim).values(
                    state=SENT, sent_at=now, attempts=deliveries_table.c.attempts + 1, claim=None,
                    claimed_until=None, last_error=None))
            for delivery, error in outcomes:
                if error is None:
                    continue
                attempts = delivery.attempts + 1
                state = DEAD if attempts >= policy.max_attempts else PENDING
                connection.execute(deliveries_table.update().where(
                    deliveries_table.c.delivery_id == delivery.delivery_id, deliveries_table.c.state == PENDING,
                    deliveries_table.c.claim == delivery.claim).values(
                    state=state, attempts=attempts, next_attempt_at=now + policy.backoff(attempts), claim=None,
                    claimed_until=None, last_error=error[:500]))
            ids = [delivery.delivery_id for delivery, _ in outcomes]
            if ids:
                states = dict(connection.execute(sa.select(deliveries_table.c.delivery_id, deliveries_table.c.state)
                                                 .where(deliveries_table.c.delivery_id.in_(ids))).tuples().all())
        return [states.get(delivery.delivery_id, PENDING) for delivery, _ in outcomes]

    def mark_sent(self, delivery: Delivery, now: float | None = None) -> str:
        """Record that the receiver took ``delivery`` (a 2xx answer); see :meth:`record`."""
        return self.record([(delivery, None)], DeliveryPolicy(), now)[0]

    def mark_failed(self, delivery: Delivery, error: str, policy: DeliveryPolicy, now: float | None = None) -> str:
        """Count a failed try of ``delivery``; see :meth:`record`."""
        return self.record([(delivery, error)], policy, now)[0]

    def _state(self, identifier: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(deliveries_table.c.state).where(
                deliveries_table.c.delivery_id == identifier))

    def retry(self, ids: Sequence[str] | None = None, now: float | None = None) -> int:
        """Dead deliveries (all, or those of ``ids``) back to pending, due now, attempts from zero."""
        statement = deliveries_table.update().where(deliveries_table.c.state == DEAD)
        if ids is not None:
            statement = statement.where(deliveries_table.c.delivery_id.in_(list(ids)))
        with self.engine.begin() as connection:
            return connection.execute(statement.values(
                state=PENDING, attempts=0, next_attempt_at=time.time() if now is None else now, claim=None,
                claimed_until=None)).rowcount

    def purge(self, states: Sequence[str] = (SENT, DEAD), older_than_days: float | None = None) -> int:
        """Delete deliveries in ``states`` (their payloads hold feedback text), optionally only old ones."""
        unknown = sorted(set(states) - set(STATES))
        if unknown:
            raise ValueError(f"unknown delivery states {unknown}; the states are {list(STATES)}")
        statement = deliveries_table.delete().where(deliveries_table.c.state.in_(list(states)))
        if older_than_days is not None:
            statement = statement.where(deliveries_table.c.created_at < time.time() - older_than_days * 86400)
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount

    # ------------------------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        """Deliveries per state: pending (not tried yet), failed (pending again after a failed try),
        sent, dead (out of tries).

        Example:
            >>> Outbox.open("feedback.db").counts()       # doctest: +SKIP
            {'pending': 0, 'failed': 0, 'sent': 12, 'dead': 1}
        """
        tried = deliveries_table.c.attempts > 0
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(deliveries_table.c.state, tried, sa.func.count())
                                       .group_by(deliveries_table.c.state, tried)).tuples().all()
        counts = {"pending": 0, "failed": 0, SENT: 0, DEAD: 0}
        for state, was_tried, count in found:
            counts["failed" if state == PENDING and was_tried else state] += int(count)
        return counts

    def deliveries(self, state: str | None = None, limit: int | None = None) -> list[Delivery]:
        """Deliveries, newest first, all or those in ``state``."""
        statement = sa.select(deliveries_table).order_by(deliveries_table.c.created_at.desc(),
                                                         deliveries_table.c.delivery_id)
        if state is not None:
            if state not in STATES:
                raise ValueError(f"unknown delivery state {state!r}; the states are {list(STATES)}")
            statement = statement.where(deliveries_table.c.state == state)
        if limit is not None:
            statement = statement.limit(limit)
        with self.engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(statement).mappings()]

    def alerted_since(self, rule: str, label: str, since: float) -> bool:
        """Whether ``rule`` raised an alert for ``label`` at or after ``since`` (spikes keep the label in
        ``item_id``)."""
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(deliveries_table).where(
                deliveries_table.c.rule == rule, deliveries_table.c.kind == "spike",
                deliveries_table.c.item_id == label, deliveries_table.c.created_at >= since)) > 0

    def next_due(self) -> float | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.min(deliveries_table.c.next_attempt_at))
                                     .where(deliveries_table.c.state == PENDING))


def _insert_new(dialect: str) -> Any:
    """An insert that leaves a row whose id another writer added meanwhile (two replicas, a rerun)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return deliveries_table.insert()
    return insert(deliveries_table).on_conflict_do_nothing(index_elements=["delivery_id"])


def _row(delivery: Delivery) -> dict[str, Any]:
    return {"delivery_id": delivery.delivery_id, "rule": delivery.rule, "kind": delivery.kind,
            "channel": delivery.target.channel, "url": delivery.target.url, "secret_env": delivery.target.secret_env,
            "payload": json.dumps(delivery.payload, ensure_ascii=False), "item_id": delivery.item_id,
            "state": delivery.state, "attempts": delivery.attempts, "next_attempt_at": delivery.created_at,
            "claim": None, "claimed_until": None, "last_error": delivery.last_error,
            "created_at": delivery.created_at, "sent_at": delivery.sent_at}


def _delivery(row: Any) -> Delivery:
    return Delivery(delivery_id=row["delivery_id"], rule=row["rule"], kind=row["kind"],
                    target=Target(row["channel"], row["url"], row["secret_env"]), payload=json.loads(row["payload"]),
                    item_id=row["item_id"], state=row["state"], attempts=row["attempts"],
                    created_at=row["created_at"], last_error=row["last_error"], sent_at=row["sent_at"],
                    claim=row["claim"])
