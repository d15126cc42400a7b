"""Packing several texts into each row of a forward pass, so that a pass computes almost no padding.

A padded pass makes every text as long as the longest one; a batch of random tweets spends a third
or more of its work on padding. Here the texts of a pass are laid end to end in rows of about
``ROW_TOKENS`` tokens; each text attends only to itself (a block-diagonal attention mask), its
positions restart at the model's first position, and its pooled vector is the mean (or first
token) of its own cells. The answers equal the padded pass's up to float rounding (tested).

The ONNX runners lay each pass out again with every text at a multiple of ``ALIGN_TOKENS`` cells
(``aligned``): ONNX Runtime sums a softmax row in vector lanes, so a text's sums, and through int8
rounding its scores, changed with where its neighbours put it. torch's runners keep the dense layout.

Packing made both torch and int8 ONNX faster on random airline tweets, and for torch ``ROW_TOKENS``
beat longer rows, since attention over a row is computed whole, masked or not (docs/experiments.md,
"Figures behind the code").

Example:
    >>> batch = pack([[101, 7, 102], [101, 8, 9, 102]], pad_id=0, position_offset=0, pooling="mean")
    >>> batch.input_ids.tolist(), batch.position_ids.tolist()
    ([[101, 8, 9, 102, 101, 7, 102]], [[0, 1, 2, 3, 0, 1, 2]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from torch import nn

ROW_TOKENS = 64
# The ONNX runners start each text at a multiple of this many cells, in rows a multiple of it wide
# (``aligned``): then ONNX Runtime's softmax (MLAS's AVX2, AVX-512 and generic kernels) sums a text's
# row in the same lanes and order wherever the text sits (docs/experiments.md, "Batch independence").
ALIGN_TOKENS = 4
# Lowest fp32 value, not -inf: every token attends at least to itself, so no softmax row is empty,
# and fp16 turns it into -inf without NaNs.
_BLOCKED = np.finfo(np.float32).min


@dataclass(frozen=True)
class PackedBatch:
    """The inputs of one packed pass: ``rows`` rows of ``width`` token cells holding ``texts`` texts."""

    input_ids: np.ndarray       # (rows, width) int64
    position_ids: np.ndarray    # (rows, width) int64
    attention_mask: np.ndarray  # (rows, 1, width, width) float32: 0 inside a text, very negative across
    pooling: np.ndarray         # (texts, rows * width) float32: each text's weights over all cells

    def feed(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "position_ids": self.position_ids,
                "attention_mask": self.attention_mask, "pooling": self.pooling}


def position_offset(encoder: nn.Module) -> int | None:
    """Where the encoder's positions start, or None when packing is not known to be exact for it.

    BERT-style encoders count from 0; MPNet (like RoBERTa) from ``padding_idx + 1``. Other
    architectures keep padded passes.
    """
    model_type = getattr(encoder.config, "model_type", None)
    if model_type == "bert":
        return 0
    if model_type == "mpnet":
        return int(encoder.embeddings.padding_idx) + 1
    return None


def pack_rows(lengths: Sequence[int], row_tokens: int = ROW_TOKENS) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``max(row_tokens, longest)`` tokens.

    First fit, longest first: a text goes into the first row with room for it.

    Example:
        >>> pack_rows([30, 40, 20, 10], row_tokens=50)
        [[1, 3], [0, 2]]
    """
    capacity = max(row_tokens, max(lengths, default=0))
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if free >= lengths[index]:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


def pack(token_rows: Sequence[Sequence[int]], pad_id: int, position_offset: int, pooling: str,
         row_tokens: int = ROW_TOKENS, align: int = 1) -> PackedBatch:
    """Lay ``token_rows`` (one list of token ids per text) into packed rows; see the module docstring.

    ``align`` > 1 starts every text at a multiple of ``align`` cells in rows a multiple of ``align`` wide
    (:func:`aligned`); 1 lays the texts end to end.
    """
    lengths = [len(ids) for ids in token_rows]
    cells = np.fromiter((token for ids in token_rows for token in ids), dtype=np.int64, count=sum(lengths))
    within = _place_in_text(lengths)
    if pooling == "cls":
        weights = (within == 0).astype(np.float32)
    else:
        weights = np.repeat(np.array([1.0 / n for n in lengths], dtype=np.float32), lengths)
    return _lay_out(cells, position_offset + within, weights, lengths, pad_id, position_offset, row_tokens, align)


def aligned(feed: dict[str, np.ndarray], align: int = ALIGN_TOKENS, pad_id: int = 0,
            row_tokens: int = ROW_TOKENS) -> dict[str, np.ndarray]:
    """The packed pass ``feed`` laid out again with each text at a multiple of ``align`` cells, in rows a
    multiple of ``align`` wide: the same texts, in the same order, with the same tokens, positions and
    pooling weights.

    Why: a text's fp32 softmax sums (hence its int8 roundings) must not depend on where its neighbours put it.

    Example:
        >>> feed = pack([[101, 7, 102], [101, 8, 9, 102]], pad_id=0, position_offset=0, pooling="mean").feed()
        >>> aligned(feed)["input_ids"].tolist()
        [[101, 7, 102, 0, 101, 8, 9, 102]]
    """
    input_ids, positions, mask, pooling = (feed[name] for name in ("input_ids", "position_ids", "attention_mask",
                                                                   "pooling"))
    width = input_ids.shape[1]
    first = (pooling != 0).argmax(axis=1)  # a text's first cell always has a pooling weight (mean and cls)
    rows, starts = np.divmod(first, width)
    lengths = (mask[rows, 0, starts] == 0).sum(axis=1).tolist()  # what its first cell attends to: the text
    texts = np.repeat(np.arange(len(lengths)), lengths)
    cells = first[texts] + _place_in_text(lengths)
    return _lay_out(input_ids.reshape(-1)[cells], positions.reshape(-1)[cells], pooling[texts, cells], lengths,
                    pad_id, int(positions.reshape(-1)[first[0]]), row_tokens, align).feed()


def _place_in_text(lengths: Sequence[int]) -> np.ndarray:
    """For texts of ``lengths`` laid end to end, each cell's index within its text."""
    return np.arange(sum(lengths)) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _lay_out(cells: np.ndarray, positions: np.ndarray, weights: np.ndarray, lengths: Sequence[int], pad_id: int,
             position_offset: int, row_tokens: int, align: int) -> PackedBatch:
    """The packed pass of texts given end to end: their cells' token ids, positions and pooling
    weights, ``lengths`` cells each, placed in rows by :func:`pack_rows` at multiples of ``align``."""
    spans = [-(-length // align) * align for length in lengths]
    rows = pack_rows(spans, row_tokens)
    row_of, start = np.zeros(len(lengths), dtype=np.int64), np.zeros(len(lengths), dtype=np.int64)
    width = 0
    for row, members in enumerate(rows):
        used = 0
        for index in members:
            row_of[index], start[index] = row, used
            used += spans[index]
        width = max(width, used - spans[members[-1]] + lengths[members[-1]])
    width = -(-width // align) * align
    texts = np.repeat(np.arange(len(lengths)), lengths)
    target = (row_of * width + start)[texts] + _place_in_text(lengths)
    input_ids = np.full(len(rows) * width, pad_id, dtype=np.int64)
    input_ids[target] = cells
    position_ids = np.full(len(rows) * width, position_offset, dtype=np.int64)
    position_ids[target] = positions
    segment = np.full(len(rows) * width, -1, dtype=np.int64)  # -1: the row's padding, a segment of its own
    segment[target] = texts
    pooling = np.zeros((len(lengths), len(rows) * width), dtype=np.float32)
    pooling[texts, target] = weights
    segment = segment.reshape(len(rows), width)
    same_text = segment[:, :, None] == segment[:, None, :]
    # reshape, not [:, None]: the added axis gets a real stride instead of 0, so every pass's mask has
    # the same strides (a compiled graph is specialised to its inputs' strides: model/runners.py).
    mask = np.where(same_text, np.float32(0), _BLOCKED).astype(np.float32).reshape(len(rows), 1, width, width)
    return PackedBatch(input_ids.reshape(len(rows), width), position_ids.reshape(len(rows), width), mask, pooling)
