"""The review queue's second purpose: pick the answers whose corrections teach the next retrain most.

"Fix answers" ranks by the chance an answer is wrong, which finds wrong answers but, at small budgets
and on noisy or imbalanced data, spends the reviews on a few ambiguous corners (active-learning
research: uncertainty sampling loses to random there unless mixed with representativeness).
``teach_order`` spreads the reviews over what customers say: k-means with one cluster per review
wanted, over the waiting items' text vectors, and from each cluster its most typical item (the one
nearest the cluster's centre), big clusters first. The waiting items are the answers the capture
found unsure, so each pick is still an answer the model doubted, but a typical one: a text like many
others teaches the model about all of them, and a person labels it more reliably than a cluster's
outlier. On five shared sets (``benchmarks/teach_proxy.py``, clean labels) it gains about as much
over random answers as each cluster's least sure item, uncertainty or BADGE, a little more on average
(docs/experiments.md, "Teaching the model"); the reliability of its labels is what the proxy cannot show.

Example:
    >>> teach_order(np.eye(4, dtype=np.float32), np.array([0.1, 0.9, 0.5, 0.2]), 2)  # doctest: +SKIP
    [1, 2]
"""

from __future__ import annotations

import numpy as np

KMEANS_ROUNDS = 12


def kmeans(vectors: np.ndarray, clusters: int, seed: int = 0, rounds: int = KMEANS_ROUNDS) -> np.ndarray:
    """Each row's cluster: k-means++ seeding, then ``rounds`` of Lloyd's updates (cosine on unit vectors).

    Example:
        >>> kmeans(np.array([[1.0, 0], [0.9, 0.1], [0, 1.0]]), 2).tolist()  # doctest: +SKIP
        [0, 0, 1]
    """
    count = len(vectors)
    clusters = max(1, min(clusters, count))
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(count)]]
    nearest = 1.0 - vectors @ centres[0]
    for _ in range(1, clusters):  # k-means++: the next centre far from those chosen, by chance
        weights = np.maximum(nearest, 0) ** 2
        total = weights.sum()
        pick = rng.choice(count, p=weights / total) if total > 0 else rng.integers(count)
        centres.append(vectors[pick])
        nearest = np.minimum(nearest, 1.0 - vectors @ vectors[pick])
    centre = np.stack(centres)
    assigned = np.zeros(count, dtype=int)
    for _ in range(rounds):
        assigned = (vectors @ centre.T).argmax(axis=1)
        for k in range(clusters):
            members = vectors[assigned == k]
            if len(members):
                mean = members.mean(axis=0)
                centre[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return assigned


def teach_order(vectors: np.ndarray, uncertainty: np.ndarray, limit: int, seed: int = 0) -> list[int]:
    """Positions of the ``limit`` items to review for teaching: the most typical item (nearest the
    centre) of each of ``limit`` k-means clusters, the biggest clusters first, and of clusters the same
    size the less sure first.

    ``vectors``: unit-length text vectors (rows); ``uncertainty``: higher = less sure.
    """
    count = len(vectors)
    if count == 0 or limit <= 0:
        return []
    if count <= limit:
        return [int(i) for i in np.argsort(-uncertainty, kind="stable")]
    vectors = np.asarray(vectors, dtype=np.float32)
    assigned = kmeans(vectors, limit, seed)
    picks = []
    for cluster in np.unique(assigned):
        members = np.flatnonzero(assigned == cluster)
        typical = int(members[(vectors[members] @ vectors[members].mean(axis=0)).argmax()])
        picks.append((len(members), float(uncertainty[members].max()), typical))
    picks.sort(key=lambda pick: (-pick[0], -pick[1]))
    order = [position for _, _, position in picks[:limit]]
    if len(order) < limit:  # clusters that ended empty: the most uncertain of the rest fill in
        chosen = set(order)
        order += [int(i) for i in np.argsort(-uncertainty, kind="stable") if int(i) not in chosen][: limit - len(order)]
    return order
