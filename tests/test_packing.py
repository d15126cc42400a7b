"""Packing texts into shared rows: valid rows, and the same answers as padded passes."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from earshot.model import EarshotModel
from earshot.model.config import EarshotConfig
from earshot.model.packing import pack, pack_rows, position_offset

TEXTS = ["late", "my flight was delayed three hours and nobody at the gate told us anything at all",
         "rude staff", "thanks", "I was charged twice for one ticket and the refund never came",
         "lost my bag", "the seat was broken", "great crew", "late late late late late late"]


def test_rows_hold_every_text_once_within_their_capacity() -> None:
    rng = random.Random(3)
    for _ in range(50):
        lengths = [rng.randint(1, 70) for _ in range(rng.randint(1, 40))]
        rows = pack_rows(lengths, row_tokens=64)
        assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
        capacity = max(64, max(lengths))  # a text longer than a row gets a row of its own length
        assert all(sum(lengths[i] for i in row) <= capacity for row in rows)
    assert pack_rows([], row_tokens=64) == []


def test_texts_attend_only_to_themselves_and_pool_their_own_tokens() -> None:
    batch = pack([[5, 6, 7], [8, 9], [10]], pad_id=0, position_offset=2, pooling="mean", row_tokens=8)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert batch.position_ids.tolist() == [[2, 3, 4, 2, 3, 2]]
    segment = np.array([0, 0, 0, 1, 1, 2])
    assert ((batch.attention_mask[0, 0] == 0) == (segment[:, None] == segment[None, :])).all()
    np.testing.assert_allclose(batch.pooling, [[1 / 3] * 3 + [0] * 3, [0] * 3 + [0.5] * 2 + [0], [0] * 5 + [1]])
    cls = pack([[5, 6, 7], [8, 9]], pad_id=0, position_offset=0, pooling="cls", row_tokens=8)
    assert cls.pooling.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]]


def _padded_one_by_one(model: EarshotModel, texts: list[str] = TEXTS) -> np.ndarray:
    """Reference: each text alone through the ordinary padded forward."""
    rows = []
    with torch.inference_mode():
        for ids in model.encode(texts).input_ids:
            input_ids, mask = model.collate([ids])
            rows.append(torch.softmax(model.eval()(input_ids, mask)["sentiment"], dim=-1).numpy())
    return np.concatenate(rows)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_predict_equals_the_padded_forward_on_bert(tiny_model: EarshotModel, pooling: str) -> None:
    tiny_model.config = EarshotConfig.from_dict({**tiny_model.config.to_dict(), "pooling": pooling})
    assert tiny_model.position_offset == 0
    batch = pack(tiny_model.encode(TEXTS).input_ids, 0, 0, pooling, row_tokens=16)
    assert batch.input_ids.shape[0] < len(TEXTS)  # several texts really share rows
    np.testing.assert_allclose(tiny_model.predict_proba(TEXTS)["sentiment"], _padded_one_by_one(tiny_model), atol=1e-5)


def test_packed_predict_equals_the_padded_forward_on_mpnet(tiny_model: EarshotModel) -> None:
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    encoder = MPNetModel(MPNetConfig(vocab_size=tiny_model.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=130))
    model = EarshotModel(encoder, tiny_model.tokenizer, tiny_model.config).eval()
    assert model.position_offset == 2  # MPNet counts positions from padding_idx (1) + 1
    # The padded reference finds positions by skipping token id 1, MPNet's padding id but the tiny
    # BERT vocabulary's [UNK]: these texts use known words only.
    texts = ["late", "my flight was delayed hours and nobody at the gate", "rude staff", "lost my bag",
             "great crew", "late late late late late late", "I was charged twice for one ticket"]
    assert not any(1 in ids for ids in model.encode(texts).input_ids)
    np.testing.assert_allclose(model.predict_proba(texts)["sentiment"], _padded_one_by_one(model, texts), atol=1e-5)


def test_other_encoders_keep_padded_passes(tiny_model: EarshotModel, monkeypatch: pytest.MonkeyPatch) -> None:
    packed = tiny_model.predict_proba(TEXTS)
    monkeypatch.setattr(tiny_model, "position_offset", None)
    padded = tiny_model.predict_proba(TEXTS)
    np.testing.assert_allclose(padded["sentiment"], packed["sentiment"], atol=1e-5)
    np.testing.assert_allclose(padded["pain_points"], packed["pain_points"], atol=1e-5)
    assert position_offset(SimpleNamespace(config=SimpleNamespace(model_type="distilbert"))) is None
