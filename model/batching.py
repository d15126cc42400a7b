"""Cutting length-sorted texts into padded forward passes that waste little on padding.

Used for encoders that ``model.packing`` does not pack (BERT and MPNet are packed instead).

A forward pass pads every text to the longest one in it, so a batch of random tweets spends a
third or more of its work on padding. Smaller passes of similar lengths waste less but each pass
has a fixed cost, worth some tokens of work on the CPU (measured on random airline tweets:
docs/experiments.md, "Figures behind the code"), which ``PASS_COST_TOKENS`` holds.
"""

from __future__ import annotations

from typing import Sequence

# The fixed cost of one forward pass, in tokens of work, per device type. A GPU's pass costs
# far more than its tokens: there each window of texts stays one pass.
PASS_COST_TOKENS = {"cpu": 64}


def length_chunks(lengths: Sequence[int], max_size: int, pass_cost: int | None) -> list[tuple[int, int]]:
    """Cut ``lengths`` (sorted longest first) into ``(start, stop)`` passes of at most ``max_size``.

    Consecutive windows of ``max_size`` texts are each cut where padding costs more than a pass:
    the cut minimises ``sum(pass_cost + texts * longest)`` over the window's passes (dynamic
    programming, O(max_size**2) a window). ``pass_cost=None`` keeps each window one pass.

    Example:
        >>> length_chunks([50, 48, 12, 10], max_size=4, pass_cost=16)
        [(0, 2), (2, 4)]
        >>> length_chunks([50, 48, 12, 10], max_size=4, pass_cost=None)
        [(0, 4)]
    """
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")
    chunks: list[tuple[int, int]] = []
    for window in range(0, len(lengths), max_size):
        stop = min(window + max_size, len(lengths))
        if pass_cost is None:
            chunks.append((window, stop))
        else:
            chunks.extend(_best_cuts(lengths, window, stop, pass_cost))
    return chunks


def _best_cuts(lengths: Sequence[int], start: int, stop: int, pass_cost: int) -> list[tuple[int, int]]:
    size = stop - start
    best = [0.0] + [float("inf")] * size  # best[j]: cheapest cost of the window's first j texts
    cut = [0] * (size + 1)
    for j in range(1, size + 1):
        for i in range(j):  # one pass over texts i..j-1, padded to the longest, text i
            cost = best[i] + pass_cost + (j - i) * lengths[start + i]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    passes = []
    j = size
    while j > 0:
        passes.append((start + cut[j], start + j))
        j = cut[j]
    return passes[::-1]
