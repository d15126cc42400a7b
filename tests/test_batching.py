"""Cutting length-sorted texts into forward passes: valid, optimal, and invisible in the results."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from earshot.model import batching
from earshot.model.batching import length_chunks


def _cost(lengths: list[int], passes: list[tuple[int, int]], pass_cost: int) -> int:
    return sum(pass_cost + (stop - start) * lengths[start] for start, stop in passes)


def _all_cuts(n: int):
    for mask in itertools.product([False, True], repeat=n - 1):
        edges = [0] + [i + 1 for i, cut in enumerate(mask) if cut] + [n]
        yield list(zip(edges, edges[1:]))


def test_passes_cover_every_text_once_in_order_and_respect_the_size_limit():
    lengths = sorted((random.Random(1).randint(5, 80) for _ in range(150)), reverse=True)
    passes = length_chunks(lengths, max_size=32, pass_cost=64)
    assert [i for start, stop in passes for i in range(start, stop)] == list(range(150))
    assert all(0 < stop - start <= 32 for start, stop in passes)


def test_cuts_are_the_cheapest_possible():
    rng = random.Random(7)
    for _ in range(30):
        lengths = sorted((rng.randint(3, 90) for _ in range(rng.randint(1, 9))), reverse=True)
        passes = length_chunks(lengths, max_size=len(lengths), pass_cost=20)
        cheapest = min(_cost(lengths, cuts, 20) for cuts in _all_cuts(len(lengths)))
        assert _cost(lengths, passes, 20) == cheapest


def test_long_and_short_texts_go_to_separate_passes_only_when_padding_costs_more():
    assert length_chunks([60, 58, 57, 9, 8, 8], max_size=6, pass_cost=64) == [(0, 3), (3, 6)]
    assert length_chunks([12, 11, 10, 9, 8, 8], max_size=6, pass_cost=64) == [(0, 6)]
    assert length_chunks([60, 58, 57, 9, 8, 8], max_size=6, pass_cost=None) == [(0, 6)]
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        length_chunks([3], max_size=0, pass_cost=None)


def test_cut_passes_give_the_same_scores_as_one_text_at_a_time(tiny_model, monkeypatch):
    monkeypatch.setitem(batching.PASS_COST_TOKENS, "cpu", 4)  # cheap passes: the tiny texts get cut
    monkeypatch.setattr(tiny_model, "position_offset", None)  # an encoder that is not packed (model/packing.py)
    texts = ["late", "my flight was delayed three hours and nobody at the gate told us anything at all",
             "rude staff", "thanks", "I was charged twice for one ticket and the refund never came",
             "lost my bag", "the seat was broken", "great crew"]
    lengths = sorted((len(ids) for ids in tiny_model.encode(texts).input_ids), reverse=True)
    assert len(length_chunks(lengths, 64, 4)) > 1
    together = tiny_model.predict_proba(texts, batch_size=64)
    alone = [tiny_model.predict_proba([text], batch_size=1) for text in texts]
    np.testing.assert_allclose(together["sentiment"], np.concatenate([a["sentiment"] for a in alone]), atol=1e-5)
    np.testing.assert_allclose(together["pain_points"], np.concatenate([a["pain_points"] for a in alone]), atol=1e-5)
