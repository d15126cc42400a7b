"""Which answers need a person, and a writer that queues them without slowing the request.

``CapturePolicy.reasons`` looks at one prediction: a single head whose best label barely beats the
next (low margin) or is unsure (low confidence), a multi head with a label close to its threshold,
heads that contradict each other (a rule such as ``sentiment=positive>pain_points``: positive
sentiment yet a pain point), an answer among the most uncertain share of recent traffic (a rule that
follows the model: a sharp model rarely falls under a fixed margin, a new taxonomy often does), or the
random sample that lets the queue estimate accuracy on all traffic.

``CaptureWriter`` takes the items from the request path into an in-memory queue and writes them to
the store from its own thread, in batches. A full queue drops items (counted and logged) instead of
blocking ``/classify``: a missed review item costs little, a slow answer costs every caller.

Example:
    >>> policy = CapturePolicy(disagreements=(Disagreement.parse("sentiment=positive>pain_points"),))
"""

from __future__ import annotations

import logging
import queue
import bisect
import collections
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from earshot.model import Prediction

from .store import ANSWERED, QUEUED, FeedbackStore, QueuedItem

logger = logging.getLogger("earshot.loop")
Thresholds = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Disagreement:
    """``HEAD=LABEL>OTHER``: ``HEAD`` answers ``LABEL`` while the multi head ``OTHER`` answers any label."""

    head: str
    label: str
    other: str

    @classmethod
    def parse(cls, spec: str) -> "Disagreement":
        head, _, rest = spec.partition("=")
        label, _, other = rest.partition(">")
        if not (head and label and other):
            raise ValueError(f"disagreement rule {spec!r}: expected HEAD=LABEL>OTHER_HEAD, "
                             "e.g. sentiment=positive>pain_points")
        return cls(head.strip(), label.strip(), other.strip())

    def __str__(self) -> str:
        return f"{self.head}={self.label}>{self.other}"

    def holds(self, prediction: Prediction) -> bool:
        if self.head not in prediction.heads or self.other not in prediction.heads:
            return False
        return prediction[self.head].label == self.label and bool(prediction[self.other].labels)


@dataclass(frozen=True)
class CapturePolicy:
    """When an answer goes to the review queue.

    ``margin_below``: a single head's best probability minus the second best under this, or a multi
    head's label within half of it of its threshold. ``confidence_below``: a single head's best
    probability under this. ``top_share``: queue an answer whose uncertainty is among the highest
    ``top_share`` of the last ``window`` answers (once ``warmup`` have been seen), so the queue keeps
    offering the answers most worth a person's time whatever the model's calibration: set it to the
    share of traffic the team can review. ``sample_rate``: the share of all answers queued at random.
    """

    margin_below: float = 0.2
    confidence_below: float = 0.5
    top_share: float = 0.05
    window: int = 2000
    warmup: int = 100
    sample_rate: float = 0.02
    disagreements: tuple[Disagreement, ...] = ()
    # Keep the text of every answer sent with an id, so that /corrections can name it by id alone.
    keep_answered_ids: bool = True
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)
    _recent: "_RecentUncertainty" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("margin_below", "confidence_below", "top_share", "sample_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"capture {name} must be between 0 and 1, got {value}")
        if self.window < 1 or not 0 <= self.warmup <= self.window:
            raise ValueError(f"capture window must be at least 1 and warmup from 0 to the window, got "
                             f"window={self.window}, warmup={self.warmup}")
        object.__setattr__(self, "_random", random.Random(self.seed))
        object.__setattr__(self, "_recent", _RecentUncertainty(self.window))

    def uncertainty(self, prediction: Prediction, thresholds: Thresholds) -> float:
        """0 (sure) to 1 (a coin toss), the least sure head's: what orders the review queue.

        ``thresholds``: each multi head's label thresholds (the model's), by head name.
        """
        worst = max((head.behaviour.uncertainty(head, thresholds.get(name, {}))
                     for name, head in prediction.heads.items()), default=0.0)
        return min(1.0, max(0.0, worst))

    def reasons(self, prediction: Prediction, thresholds: Thresholds, uncertainty: float | None = None) -> list[str]:
        """Why ``prediction`` needs a person (empty: it does not): ``margin:HEAD``,
        ``confidence:HEAD``, ``disagree:RULE``, ``top`` (among the most uncertain ``top_share``) or
        ``sample``. Each call counts the answer into the recent traffic that ``top`` ranks against."""
        found = [f"{reason}:{name}" for name, head in prediction.heads.items()
                 for reason in head.behaviour.unsure(head, thresholds.get(name, {}), self.margin_below,
                                                     self.confidence_below)]
        found += [f"disagree:{rule}" for rule in self.disagreements if rule.holds(prediction)]
        if uncertainty is None:
            uncertainty = self.uncertainty(prediction, thresholds)
        if self.top_share and self._recent.add_and_rank(uncertainty, self.warmup) < self.top_share:
            found.append("top")
        if self.sample_rate and self._random.random() < self.sample_rate:
            found.append("sample")
        return found


class _RecentUncertainty:
    """The uncertainties of the last ``size`` answers, kept sorted, to rank a new one against them."""

    def __init__(self, size: int) -> None:
        self._order: collections.deque[float] = collections.deque(maxlen=size)
        self._sorted: list[float] = []
        self._lock = threading.Lock()  # BentoML may call the policy from several threads at once

    def add_and_rank(self, value: float, warmup: int) -> float:
        """The share of recent answers more uncertain than ``value`` (then ``value`` joins them); 1.0
        until ``warmup`` answers have been seen, so the first few never all count as the top."""
        with self._lock:
            seen = len(self._sorted)
            above = seen - bisect.bisect_right(self._sorted, value)
            if seen == self._order.maxlen:
                del self._sorted[bisect.bisect_left(self._sorted, self._order[0])]
            self._order.append(value)
            bisect.insort(self._sorted, value)
        return above / seen if seen >= max(warmup, 1) else 1.0


class CaptureWriter:
    """Queues answers for review from the request path and writes them from a thread of its own."""

    def __init__(self, store: FeedbackStore, policy: CapturePolicy, capacity: int = 10_000,
                 batch: int = 256) -> None:
        self.store = store
        self.policy = policy
        self.batch = batch
        self.dropped = 0
        self.written = 0
        self._pending: queue.Queue[QueuedItem | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="earshot-capture", daemon=True)
        self._thread.start()

    def offer(self, texts: Sequence[str], predictions: Sequence[Prediction], model_version: str,
              caller_ids: Sequence[str | None], thresholds: Thresholds,
              metadata: Sequence[dict[str, Any] | None] | None = None) -> int:
        """Queue the answers that need a person (and keep those sent with an id, when the policy says
        so); never blocks. Returns how many were taken."""
        taken = 0
        metadata = metadata if metadata is not None else [None] * len(texts)
        for text, prediction, caller_id, meta in zip(texts, predictions, caller_ids, metadata):
            uncertainty = self.policy.uncertainty(prediction, thresholds)
            reasons = self.policy.reasons(prediction, thresholds, uncertainty)
            if not reasons and not (caller_id is not None and self.policy.keep_answered_ids):
                continue
            # An answer kept only for its id needs its text, not its scores: most rows are these, and
            # writing every score of every answer held the GIL against the request path.
            item = QueuedItem(text=text, model_version=model_version,
                              answer=prediction.to_dict()["heads"] if reasons else {}, reasons=reasons,
                              priority=uncertainty, sampled="sample" in reasons, caller_id=caller_id, meta=meta,
                              state=QUEUED if reasons else ANSWERED, vector=prediction.vector if reasons else None)
            try:
                self._pending.put_nowait(item)
                taken += 1
            except queue.Full:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.warning("review capture is behind the store: %d answers not queued so far", self.dropped)
        return taken

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything offered so far is in the store."""
        done = threading.Event()
        self._pending.put(_Marker(done))  # type: ignore[arg-type]
        done.wait(timeout)

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch:
                try:
                    nxt = self._pending.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(batch)
                    return
                batch.append(nxt)
            self._write(batch)

    def _write(self, batch: list) -> None:
        items = [entry for entry in batch if isinstance(entry, QueuedItem)]
        try:
            self.written += self.store.add_items(items)
        except Exception:  # a database outage must not kill the writer; the items are counted as dropped
            self.dropped += len(items)
            logger.exception("review capture: %d items not written to %r", len(items), self.store)
        for entry in batch:
            if isinstance(entry, _Marker):
                entry.done.set()


@dataclass(frozen=True)
class _Marker:
    done: threading.Event
