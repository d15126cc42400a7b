"""The teach purpose of the review queue: one review per region of the texts' space, its least sure answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earshot.loop.store import FeedbackStore, QueuedItem
from earshot.loop.teach import kmeans, teach_order


def groups(sizes: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 32))
    rows = np.concatenate([centre + 0.05 * rng.normal(size=(size, 32)) for centre, size in zip(centres, sizes)])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_kmeans_keeps_separate_groups_apart() -> None:
    vectors = groups([30, 20, 10])
    assigned = kmeans(vectors, 3)
    assert [len(set(assigned[a:b])) for a, b in ((0, 30), (30, 50), (50, 60))] == [1, 1, 1]
    assert len(set(assigned)) == 3


def test_teach_order_takes_each_groups_least_sure_item_biggest_group_first() -> None:
    vectors = groups([30, 20, 10])
    uncertainty = np.linspace(0.1, 0.2, 60)
    uncertainty[[5, 41, 52]] = [0.6, 0.9, 0.95]  # one unsure answer in each group
    assert teach_order(vectors, uncertainty, 3) == [5, 41, 52]
    # the fix order would spend all three reviews on the two smaller groups' corners
    assert list(np.argsort(-uncertainty)[:3]) == [52, 41, 5]
    assert teach_order(vectors[:2], uncertainty[:2], 5) == [1, 0] and teach_order(vectors, uncertainty, 0) == []


def test_the_store_serves_the_teaching_order(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "feedback.db")
    vectors = groups([6, 6])
    store.add_items([QueuedItem(f"text {i}", "v", {}, ["margin:sentiment"], priority=0.1 + 0.01 * i,
                                vector=vectors[i]) for i in range(12)] +
                    [QueuedItem("no vector", "v", {}, ["sample"], priority=0.05)])
    taught = store.teaching_queue(2)
    assert [item.text for item in taught] == ["text 11", "text 5"]  # same size: the less sure group first
    assert [item.text for item in store.teaching_queue(20)][-1] == "no vector"
