"""From answers to deliveries: the one place where rules meet answers, for the service and the batch path.

``Router.record`` writes, in one transaction, a delivery for every route each answer meets and the
labels spike rules watch; it returns once the database has committed them, so the service answers a
request only after its deliveries are safe.

Example:
    >>> router = Router(read_rules("routes.yaml", model.config.heads), Outbox.open("feedback.db"))  # doctest: +SKIP
    >>> router.record([RoutedItem(key="ticket-1", text="Charged twice!", model_version="v", heads=answer)])  # doctest: +SKIP
    1
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa

from .outbox import STATES, Delivery, Outbox, delivery_id
from .rules import Route, RuleBook
from .spikes import SpikeWatch, events_table


@dataclass(frozen=True)
class RoutedItem:
    """One answered text. ``key`` makes its delivery ids: the same key and route give the same id."""

    key: str
    text: str
    model_version: str
    heads: Mapping[str, Any]  # {head: {"kind", "labels": [{"label", "score"}], "scores"}}, as /classify answers
    caller_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    created_at: float = field(default_factory=time.time)


class Router:
    """Matches answers against a rule book and records what they ask for in the outbox."""

    def __init__(self, book: RuleBook, outbox: Outbox) -> None:
        self.book, self.outbox = book, outbox
        self.spikes = SpikeWatch(book, outbox.engine) if book.spikes else None

    def deliveries(self, item: RoutedItem) -> list[Delivery]:
        """The deliveries ``item`` asks for, one per route it meets, redacted as each route says."""
        return [self._delivery(route, item) for route in self.book.matching(item.heads, item.metadata)]

    def record(self, items: Sequence[RoutedItem]) -> int:
        """Record the deliveries and watched labels of ``items``; committed when this returns.
        Returns how many deliveries were new."""
        deliveries = [delivery for item in items for delivery in self.deliveries(item)]
        events = ([row for item in items for row in self.spikes.events(item.heads, item.created_at, item.text,
                                                                        item.caller_id)]
                  if self.spikes is not None else [])
        if not deliveries and not events:
            return 0
        with self.outbox.engine.begin() as connection:
            added = self.outbox.add(deliveries, connection)
            if self.spikes is not None:
                self.spikes.log(events, connection)
        return added

    def check_spikes(self, now: float | None = None) -> int:
        """Record an alert for every label that spikes now; returns how many were new."""
        if self.spikes is None:
            return 0
        now = time.time() if now is None else now
        # a burst lasts: one alert per rule and label within a window, however often the check runs
        found = [spike for spike in self.spikes.check(now)
                 if not self.outbox.alerted_since(spike.rule.name, spike.label, now - spike.rule.window_s)]
        return self.outbox.add([spike.delivery(self._redactor(spike.rule.redact)) for spike in found])

    def _delivery(self, route: Route, item: RoutedItem) -> Delivery:
        identifier = delivery_id(route.name, item.key)
        redact = self._redactor(route.redact)
        text = redact(item.text) if redact else item.text
        metadata = dict(item.metadata) if item.metadata is not None else None
        if redact and metadata is not None:
            metadata = {key: redact(value) if isinstance(value, str) else value for key, value in metadata.items()}
        heads = _without_evidence(item.heads) if redact else dict(item.heads)
        payload = {"delivery_id": identifier, "route": route.name,
                   "item": {"id": item.caller_id, "text": text, "model_version": item.model_version,
                            "heads": heads, "metadata": metadata},
                   "created_at": datetime.fromtimestamp(item.created_at, tz=timezone.utc).isoformat(timespec="seconds")}
        return Delivery(identifier, route.name, "route", route.target, payload, item_id=item.caller_id,
                        created_at=time.time())

    def prepare(self) -> None:
        """Build what the rules need (redactors load their recognizers: seconds) before the first answer."""
        _ = self._redactors

    def _redactor(self, kinds: tuple[str, ...]) -> Callable[[str], str] | None:
        return self._redactors.get(kinds) if kinds else None

    @cached_property
    def _redactors(self) -> dict[tuple[str, ...], Callable[[str], str]]:
        """One redactor per distinct redact list, built once (the recognizers are costly to build)."""
        from earshot.redaction import Redactor

        kinds = {route.redact for route in self.book.routes} | {rule.redact for rule in self.book.spikes}
        return {combo: Redactor(combo).redact for combo in kinds if combo}


def purge_routed(engine: sa.Engine, older_than_days: float | None = None) -> dict[str, int]:
    """Delete the feedback text that routing keeps: deliveries in every state (pending ones too) and
    the labels logged for spike alerts, created more than ``older_than_days`` ago (None: all).

    Example:
        >>> purge_routed(FeedbackStore.open("feedback.db").engine)     # doctest: +SKIP
        {'deliveries': 3, 'label_events': 120}
    """
    deliveries = Outbox(engine).purge(STATES, older_than_days)
    events_table.create(engine, checkfirst=True)
    statement = events_table.delete()
    if older_than_days is not None:
        statement = statement.where(events_table.c.created_at < time.time() - older_than_days * 86400)
    with engine.begin() as connection:
        return {"deliveries": deliveries, "label_events": connection.execute(statement).rowcount}


def _without_evidence(heads: Mapping[str, Any]) -> dict[str, Any]:
    """The answer without evidence spans: their texts and offsets are the unredacted text's."""
    return {name: {**answer, "labels": [{k: v for k, v in entry.items() if k != "evidence"}
                                        for entry in answer.get("labels", [])]}
            for name, answer in heads.items()}
