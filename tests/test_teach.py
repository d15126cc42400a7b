"""The teach purpose of the review queue: one review per region of the texts' space, its most typical answer."""

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


def typical(vectors: np.ndarray, start: int, stop: int) -> int:
    """The row of ``vectors[start:stop]`` nearest that group's mean."""
    group = vectors[start:stop]
    return start + int((group @ group.mean(axis=0)).argmax())


def test_teach_order_takes_each_groups_most_typical_item_biggest_group_first() -> None:
    vectors = groups([30, 20, 10])
    uncertainty = np.linspace(0.1, 0.2, 60)
    uncertainty[[5, 41, 52]] = [0.6, 0.9, 0.95]  # one unsure answer in each group
    expected = [typical(vectors, 0, 30), typical(vectors, 30, 50), typical(vectors, 50, 60)]
    assert teach_order(vectors, uncertainty, 3) == expected
    # the fix order would spend all three reviews on the unsure corners of the groups
    assert list(np.argsort(-uncertainty)[:3]) == [52, 41, 5]
    assert teach_order(vectors[:2], uncertainty[:2], 5) == [1, 0] and teach_order(vectors, uncertainty, 0) == []


def test_teach_order_passes_over_a_groups_outlier() -> None:
    vectors = groups([20, 20])
    outlier = vectors[3] + 0.5 * np.random.default_rng(1).normal(size=32)
    vectors[3] = outlier / np.linalg.norm(outlier)  # still in the first group, far from its centre
    uncertainty = np.full(40, 0.1)
    uncertainty[3] = 0.9
    order = teach_order(vectors, uncertainty, 2)
    assert 3 not in order and order[0] == typical(vectors, 0, 20)  # same size: the less sure group first


def test_the_store_serves_the_teaching_order(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "feedback.db")
    vectors = groups([6, 6])
    store.add_items([QueuedItem(f"text {i}", "v", {}, ["margin:sentiment"], priority=0.1 + 0.01 * i,
                                vector=vectors[i]) for i in range(12)] +
                    [QueuedItem("no vector", "v", {}, ["sample"], priority=0.05)])
    taught = store.teaching_queue(2)
    stored = vectors.astype(np.float16).astype(np.float32)  # the store keeps float16 vectors
    # same size: the less sure group (priorities rise with i) first
    assert [item.text for item in taught] == [f"text {typical(stored, 6, 12)}", f"text {typical(stored, 0, 6)}"]
    assert [item.text for item in store.teaching_queue(20)][-1] == "no vector"
