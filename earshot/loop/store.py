"""The feedback store: answers queued for review, the corrections people and systems send back, and
each queued item's review state.

One SQLAlchemy schema for every database: a path is an embedded SQLite file (WAL, one file, no
server), any SQLAlchemy URL (``postgresql+psycopg://...``) a database shared by several replicas.
A write returns only once the database has committed it, so an acknowledged correction survives a
crash of the service (SQLite runs with ``synchronous=FULL``).

Feedback text is personal data: rows are kept for ``retention_days`` (when set) and ``purge`` deletes
them.

Example:
    >>> store = FeedbackStore.open("feedback.db")
    >>> store.add_correction(Correction(labels={"sentiment": "negative"}, text="Lost my bag"))
    1
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event

from earshot.files import sha256

# queued: waits for a person; reviewed: a correction came for its text; answered: not queued, kept
# only so that a correction can name it by the caller's id.
QUEUED, REVIEWED, ANSWERED = "queued", "reviewed", "answered"
Labels = dict[str, "str | list[str] | None"]

_metadata = sa.MetaData()
items_table = sa.Table(
    "earshot_items", _metadata,
    sa.Column("item", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("caller_id", sa.String(200), nullable=True, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("text_hash", sa.String(64), nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),  # JSON: every head's scores and labels
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list: why it was queued
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("sampled", sa.Boolean, nullable=False),  # queued by the random sample (unbiased accuracy)
    sa.Column("meta", sa.Text, nullable=True),  # JSON: the caller's metadata
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    # The answering model's unit-length text vector (float16), to keep near-duplicates off one page.
    sa.Column("vector", sa.LargeBinary, nullable=True),
)
corrections_table = sa.Table(
    "earshot_corrections", _metadata,
    sa.Column("correction", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("caller_id", sa.String(200), nullable=True, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("text_hash", sa.String(64), nullable=False, index=True),
    sa.Column("labels", sa.Text, nullable=False),  # JSON: {head: label | [labels]}
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)


def text_hash(text: str) -> str:
    """The key that makes two copies of a text one item: whitespace runs and case do not count."""
    return sha256(" ".join(text.split()).casefold())


@dataclass(frozen=True)
class QueuedItem:
    """One answer waiting for a person, and why it waits."""

    text: str
    model_version: str
    answer: dict[str, Any]
    reasons: list[str]
    priority: float
    sampled: bool = False
    caller_id: str | None = None
    meta: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    item: int | None = None
    state: str = QUEUED
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "id": self.caller_id, "text": self.text, "model_version": self.model_version,
                "answer": self.answer, "reasons": self.reasons, "priority": self.priority, "sampled": self.sampled,
                "meta": self.meta, "created_at": self.created_at, "state": self.state}


@dataclass(frozen=True)
class Correction:
    """The right labels for one text, one entry per head: a label (single head) or a list (multi head)."""

    labels: Labels
    text: str
    caller_id: str | None = None
    reviewer: str | None = None
    source: str = "api"
    created_at: float = field(default_factory=time.time)


# The fix queue's near-duplicate cosine (EARSHOT_REVIEW_SIMILAR), off (1.0) by default: fix's job is
# the answers most likely wrong, and sending near-duplicates behind found fewer of them on HINT3 and no
# more on Banking77 (docs/experiments.md, "The fix purpose: wrong answers first"). Spreading the reviews
# over what customers say is the teach purpose's job. A team may still set it: an item only goes behind.
SIMILAR_ABOVE = 1.0


class FeedbackStore:
    """The review queue and the corrections, in SQLite or any SQLAlchemy database.

    ``similar_above``: in the queue's order, a waiting text whose vector has at least this cosine with
    one listed before it, or with a text reviewed lately, goes behind the others (1.0: order by
    uncertainty alone). See :meth:`queue`.
    """

    # Engines are made with hide_parameters: a database error's message would otherwise quote the
    # feedback text it failed to write, and end up in the logs.
    def __init__(self, engine: sa.Engine, similar_above: float = SIMILAR_ABOVE) -> None:
        if not 0.0 < similar_above <= 1.0:
            raise ValueError(f"similar_above must be over 0 and at most 1, got {similar_above!r}")
        self.engine = engine
        self.similar_above = similar_above
        _metadata.create_all(engine)
        _add_missing_columns(engine)

    @classmethod
    def open(cls, where: str | Path, similar_above: float = SIMILAR_ABOVE) -> "FeedbackStore":
        """A path (SQLite file, created when missing) or an SQLAlchemy URL such as ``postgresql+psycopg://...``."""
        return cls(open_engine(where), similar_above)

    def __repr__(self) -> str:
        return f"FeedbackStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------ writing
    def add_items(self, items: Sequence[QueuedItem]) -> int:
        """Store ``items``; a text already waiting is not queued twice, but an answer of it sent with an
        id is still kept as answered, so that a correction can name that id. Returns how many were added."""
        if not items:
            return 0
        rows, seen = [], set()
        for item in items:
            key = text_hash(item.text)
            row = _item_row(item, key)
            rows.append(row if item.state != QUEUED or key not in seen else _repeat(row))
            if item.state == QUEUED:
                seen.add(key)
        with self.engine.begin() as connection:
            waiting = set(connection.scalars(sa.select(items_table.c.text_hash).where(
                items_table.c.state == QUEUED, items_table.c.text_hash.in_([r["text_hash"] for r in rows if r]))))
            rows = [_repeat(row) if row and row["state"] == QUEUED and row["text_hash"] in waiting else row
                    for row in rows]
            rows = [row for row in rows if row]
            if rows:
                connection.execute(items_table.insert(), rows)
        return len(rows)

    def add_corrections(self, corrections: Sequence[Correction]) -> list[int]:
        """Store ``corrections`` in one transaction and mark the queued items of the same texts reviewed.

        Returns their ids; once this returns, the corrections are committed.
        """
        ids = []
        with self.engine.begin() as connection:
            for correction in corrections:
                key = text_hash(correction.text)
                result = connection.execute(corrections_table.insert().values(
                    caller_id=correction.caller_id, text=correction.text, text_hash=key,
                    labels=json.dumps(correction.labels, ensure_ascii=False), reviewer=correction.reviewer,
                    source=correction.source, created_at=correction.created_at))
                ids.append(result.inserted_primary_key[0])
                connection.execute(items_table.update().where(items_table.c.text_hash == key,
                                                              items_table.c.state == QUEUED).values(state=REVIEWED))
        return ids

    def add_correction(self, correction: Correction) -> int:
        return self.add_corrections([correction])[0]

    def purge(self, older_than_days: float | None = None) -> dict[str, int]:
        """Delete items and corrections created more than ``older_than_days`` ago (None: all of them)."""
        with self.engine.begin() as connection:
            deleted = {}
            for name, table in (("items", items_table), ("corrections", corrections_table)):
                statement = table.delete()
                if older_than_days is not None:
                    statement = statement.where(table.c.created_at < time.time() - older_than_days * 86400)
                deleted[name] = connection.execute(statement).rowcount
        return deleted

    # ------------------------------------------------------------------------------------ reading
    def text_for_id(self, caller_id: str) -> str | None:
        """The text of the newest stored answer with the caller's ``caller_id``, if any."""
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(items_table.c.text).where(items_table.c.caller_id == caller_id)
                                     .order_by(items_table.c.created_at.desc()).limit(1))

    def text_for_item(self, item: int) -> str | None:
        """The text of the stored item numbered ``item`` (as the review queue lists it), if any."""
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(items_table.c.text).where(items_table.c.item == item))

    def teaching_queue(self, limit: int = 50) -> list[QueuedItem]:
        """Items waiting for review whose corrections teach the next retrain most (``earshot.loop.teach``):
        one per k-means cluster of the waiting texts' vectors, the cluster's most typical (nearest its
        centre), biggest clusters first; items without a vector follow by priority."""
        from .teach import teach_order

        waiting = (sa.select(items_table).where(items_table.c.state == QUEUED)
                   .order_by(items_table.c.priority.desc(), items_table.c.created_at.desc()).limit(_SCAN_LIMIT))
        with self.engine.connect() as connection:
            items = [_item(row) for row in connection.execute(waiting).mappings()]
        with_vector = [item for item in items if item.vector is not None]
        dimensions = {len(item.vector) for item in with_vector}
        if len(dimensions) > 1:  # two models' vectors do not compare: the current model's length wins
            common = len(with_vector[0].vector)
            with_vector = [item for item in with_vector if len(item.vector) == common]
        chosen: list[QueuedItem] = []
        if with_vector:
            order = teach_order(np.stack([item.vector for item in with_vector]),
                                np.array([item.priority for item in with_vector]), limit)
            chosen = [with_vector[i] for i in order]
        taken = {item.item for item in chosen}
        return chosen + [item for item in items if item.item not in taken][: limit - len(chosen)]

    def queue(self, limit: int = 50) -> list[QueuedItem]:
        """Items waiting for review, most valuable first: highest priority (uncertainty), then newest,
        except that an item close to one listed before it or reviewed lately (cosine of the answering
        model's vectors at least ``similar_above``) goes behind the items that are not.

        Why: customers ask one question in many words, and the most uncertain answers cluster there;
        a reviewer's second label for the same question teaches the model little (the measurements are
        in docs/experiments.md).
        """
        order = (items_table.c.priority.desc(), items_table.c.created_at.desc(), items_table.c.item.desc())
        waiting = sa.select(items_table).where(items_table.c.state == QUEUED).order_by(*order)
        with self.engine.connect() as connection:
            if self.similar_above >= 1.0:
                return [_item(row) for row in connection.execute(waiting.limit(limit)).mappings()]
            listed = _Listed(self.similar_above)
            for version, vector in connection.execute(
                    sa.select(items_table.c.model_version, items_table.c.vector)
                    .where(items_table.c.state == REVIEWED, items_table.c.vector.is_not(None))
                    .order_by(items_table.c.created_at.desc()).limit(_REVIEWED_CONTEXT)):
                listed.add(version, _vector(vector))
            first: list[QueuedItem] = []
            behind: list[QueuedItem] = []
            # Pages of the queue in priority order, until enough items stand apart (or the scan ends).
            rows = connection.execution_options(yield_per=500).execute(waiting.limit(_SCAN_LIMIT)).mappings()
            for row in rows:
                item = _item(row)
                if item.vector is not None and listed.near(item.model_version, item.vector):
                    if len(behind) < limit:
                        behind.append(item)
                    continue
                first.append(item)
                if item.vector is not None:
                    listed.add(item.model_version, item.vector)
                if len(first) == limit:
                    break
        return first + behind[: limit - len(first)]

    def counts(self) -> dict[str, int]:
        """Items waiting, items reviewed, other answers kept for their ids, and corrections stored."""
        with self.engine.connect() as connection:
            states = dict(connection.execute(sa.select(items_table.c.state, sa.func.count()).group_by(
                items_table.c.state)).tuples().all())
            corrections = connection.scalar(sa.select(sa.func.count()).select_from(corrections_table))
        return {"waiting": states.get(QUEUED, 0), "reviewed": states.get(REVIEWED, 0),
                "answered": states.get(ANSWERED, 0), "corrections": corrections or 0}

    def corrections(self) -> Iterator[Correction]:
        """Every correction, oldest first."""
        with self.engine.connect() as connection:
            for row in connection.execute(sa.select(corrections_table).order_by(
                    corrections_table.c.created_at, corrections_table.c.correction)).mappings():
                yield Correction(labels=json.loads(row["labels"]), text=row["text"], caller_id=row["caller_id"],
                                 reviewer=row["reviewer"], source=row["source"], created_at=row["created_at"])

    def sampled_accuracy(self) -> dict[str, dict[str, float]]:
        """Per head, how often the model's answer matched the correction on randomly sampled items.

        Items queued for uncertainty are the hard ones; only the random sample estimates accuracy
        on all traffic. Single heads count exact matches, multi heads exact label sets.
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(items_table.c.answer, corrections_table.c.labels)
                .join(corrections_table, corrections_table.c.text_hash == items_table.c.text_hash)
                .where(items_table.c.sampled.is_(True), items_table.c.state == REVIEWED)).all()
        tally: dict[str, list[int]] = {}
        for answer, labels in rows:
            answer, labels = json.loads(answer), json.loads(labels)
            for head, gold in labels.items():
                if head not in answer or gold is None:
                    continue
                given = [entry["label"] for entry in answer[head]["labels"]]
                right = (sorted(given) == sorted(gold)) if isinstance(gold, list) else given[:1] == [gold]
                tally.setdefault(head, []).append(int(right))
        return {head: {"accuracy": sum(hits) / len(hits), "items": len(hits)} for head, hits in tally.items()}


def open_engine(where: str | Path) -> sa.Engine:
    """The engine of a store: a path is an SQLite file (created when missing), anything with ``://`` an
    SQLAlchemy URL such as ``postgresql+psycopg://...``.

    Example:
        >>> open_engine("feedback.db").dialect.name
        'sqlite'
    """
    text = str(where)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        # timeout: several service workers may write at once; SQLite serialises them.
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(text, pool_pre_ping=True, hide_parameters=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL: readers (the review page) never block the writer. synchronous=FULL: a commit is on disk
    # before the HTTP answer goes out, so kill -9 or a power cut cannot undo an acknowledged write.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


# How many reviewed items' vectors count as already seen, and how far down the queue one call reads.
_REVIEWED_CONTEXT = 2_000
_SCAN_LIMIT = 20_000


class _Listed:
    """Unit vectors already listed or reviewed, by model version (two models' vectors do not compare)."""

    def __init__(self, similar_above: float) -> None:
        self.similar_above = similar_above
        self._rows: dict[str, np.ndarray] = {}  # grown by doubling, so adding stays cheap
        self._count: dict[str, int] = {}

    def add(self, version: str, vector: np.ndarray) -> None:
        rows, count = self._rows.get(version), self._count.get(version, 0)
        if rows is None or rows.shape[1] != len(vector):
            rows, count = np.empty((64, len(vector)), dtype=np.float32), 0
        elif count == len(rows):
            rows = np.concatenate([rows, np.empty_like(rows)])
        rows[count] = vector
        self._rows[version], self._count[version] = rows, count + 1

    def near(self, version: str, vector: np.ndarray) -> bool:
        rows, count = self._rows.get(version), self._count.get(version, 0)
        if rows is None or count == 0 or rows.shape[1] != len(vector):
            return False
        return bool((rows[:count] @ vector).max() >= self.similar_above)


def _blob(vector: np.ndarray) -> bytes:
    """``vector`` scaled to length 1 (a zero vector stays zero), as float16 bytes; ``_vector`` reads it."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float16).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add the columns of this schema that a store made by an older earshot lacks (nullable only)."""
    have = {column["name"] for column in sa.inspect(engine).get_columns(items_table.name)}
    for column in items_table.columns:
        if column.name in have:
            continue
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f"ALTER TABLE {items_table.name} ADD COLUMN {column.name} {kind}"))
        except sa.exc.DBAPIError:
            # Another replica added it first; anything else leaves the column missing, and is raised.
            if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(items_table.name)}:
                raise


def _repeat(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A queued row whose text already waits: kept as an answered row when it carries a caller's id (the
    id must still name its text), else not stored."""
    if row is None or row["caller_id"] is None:
        return None
    return {**row, "state": ANSWERED, "answer": "{}", "reasons": "[]", "vector": None, "sampled": False}


def _item_row(item: QueuedItem, key: str) -> dict[str, Any]:
    return {"caller_id": item.caller_id, "text": item.text, "text_hash": key, "model_version": item.model_version,
            "answer": json.dumps(item.answer, ensure_ascii=False), "reasons": json.dumps(item.reasons),
            "priority": float(item.priority), "sampled": bool(item.sampled),
            "meta": json.dumps(item.meta, ensure_ascii=False) if item.meta is not None else None,
            "created_at": item.created_at, "state": item.state,
            "vector": None if item.vector is None else _blob(item.vector)}


def _item(row: Any) -> QueuedItem:
    return QueuedItem(text=row["text"], model_version=row["model_version"], answer=json.loads(row["answer"]),
                      reasons=json.loads(row["reasons"]), priority=row["priority"], sampled=bool(row["sampled"]),
                      caller_id=row["caller_id"], meta=json.loads(row["meta"]) if row["meta"] else None,
                      created_at=row["created_at"], item=row["item"], state=row["state"], vector=_vector(row["vector"]))


def unique_corrections(corrections: Iterable[Correction]) -> list[Correction]:
    """One correction per text, oldest first: for each head, the newest label sent for that text wins.

    Example:
        >>> [c.labels for c in unique_corrections([Correction({"a": "x"}, "Hi"), Correction({"a": "y"}, "hi ")])]
        [{'a': 'y'}]
    """
    merged: dict[str, Correction] = {}
    for correction in corrections:
        key = text_hash(correction.text)
        earlier = merged.get(key)
        labels = {**earlier.labels, **correction.labels} if earlier is not None else dict(correction.labels)
        merged[key] = Correction(labels=labels, text=correction.text, caller_id=correction.caller_id,
                                 reviewer=correction.reviewer, source=correction.source,
                                 created_at=correction.created_at)
    return list(merged.values())
