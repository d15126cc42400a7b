"""Fine-tuning with the encoder's lowest layers frozen, their output computed once per text.

A frozen layer's output never changes, so a training step need not run it: each training text's
hidden states after the ``n`` lowest layers (and the embeddings) are computed once, without dropout,
and every step runs only the layers above on them. The step's forward and backward passes then cost
about ``(layers - n) / layers`` of a full step's (docs/experiments.md, "Frozen lower layers").

The cache holds each text's hidden states in memory: tokens x hidden size x 4 bytes. A step lays its
texts' states out as the model lays out tokens: packed several to a row where it packs, padded elsewhere.
``earshot retrain --from`` freezes the lowest third of the layers, which the model it starts from tuned.

Example:
    >>> from earshot.model import EarshotModel, Head
    >>> model = EarshotModel.from_base("sentence-transformers/all-MiniLM-L6-v2",
    ...                                [Head("sentiment", "single", ["neg", "pos"])])  # doctest: +SKIP
    >>> rows = model.encode(["late again", "thanks!"]).input_ids  # doctest: +SKIP
    >>> frozen = FrozenLayers(model, rows, 3)  # doctest: +SKIP
    >>> frozen.forward_rows([0, 1])["sentiment"].shape  # doctest: +SKIP
    torch.Size([2, 2])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from earshot.model import EarshotModel
from earshot.model.packing import pack

_CACHE_BATCH = 64


class _Given(nn.Module):
    """Stands in for an encoder's embeddings: returns the hidden states it is given as ``inputs_embeds``."""

    def forward(self, input_ids: object = None, inputs_embeds: torch.Tensor | None = None, *args: object,
                **kwargs: object) -> torch.Tensor:
        """``inputs_embeds`` unchanged (the upper layers' input), given by keyword (BERT, RoBERTa, MPNet) or
        second after the token ids (DistilBERT)."""
        if inputs_embeds is None:
            raise ValueError("the upper layers of a frozen encoder take hidden states (inputs_embeds), not token ids")
        return inputs_embeds


def _layer_owner(encoder: nn.Module) -> str | None:
    """The name of the submodule holding the encoder's ``layer`` stack, or None."""
    for owner in ("encoder", "transformer"):
        if isinstance(getattr(getattr(encoder, owner, None), "layer", None), nn.ModuleList):
            return owner
    return None


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-, RoBERTa- or MPNet-style encoder (``encoder.layer``) or a
    DistilBERT-style one (``transformer.layer``)."""
    owner = _layer_owner(encoder)
    if owner is None:
        raise ValueError(f"cannot find the layers of a {type(encoder).__name__}; earshot finds them in BERT, "
                         "RoBERTa, MPNet and DistilBERT encoders")
    return getattr(encoder, owner).layer


def check_frozen_layers(encoder: nn.Module, count: int) -> None:
    """Raise a ValueError unless ``count`` lower layers of ``encoder`` can be frozen (at least one trains)."""
    layers = encoder_layers(encoder)
    if not hasattr(encoder, "embeddings"):
        raise ValueError(f"--frozen-layers needs an encoder with embeddings; {type(encoder).__name__} has none")
    if not 0 < count < len(layers):
        raise ValueError(f"--frozen-layers must be between 1 and {len(layers) - 1} (the encoder has "
                         f"{len(layers)} layers and at least one must train), got {count}")


def _view(encoder: nn.Module, layers: Sequence[nn.Module], embeddings: nn.Module) -> nn.Module:
    """The same encoder (same parameters, same modules) running only ``layers`` after ``embeddings``,
    without the pooler (earshot pools the last hidden states itself)."""
    owner = _layer_owner(encoder)
    view = copy.copy(encoder)
    view._modules = dict(encoder._modules)
    stack = copy.copy(getattr(encoder, owner))
    stack._modules = dict(stack._modules)
    stack._modules["layer"] = nn.ModuleList(layers)
    view._modules[owner] = stack
    view._modules["embeddings"] = embeddings
    if "pooler" in view._modules:
        view._modules["pooler"] = None
    return view


class FrozenLayers:
    """``model``'s embeddings and ``count`` lowest layers frozen, their output cached for ``rows``
    (token-id rows, indexed as the trainer indexes its batches). :meth:`release` unfreezes them."""

    def __init__(self, model: EarshotModel, rows: Sequence[Sequence[int]], count: int) -> None:
        check_frozen_layers(model.encoder, count)
        layers = encoder_layers(model.encoder)
        self.model, self.count = model, count
        # Everything of the encoder but the upper layers: embeddings, lower layers, and what the layers
        # share (MPNet's relative position bias), which the cached states were computed with.
        upper = {id(p) for layer in layers[count:] for p in layer.parameters()}
        self.frozen = [p for p in model.encoder.parameters() if id(p) not in upper and p.requires_grad]
        for parameter in self.frozen:
            parameter.requires_grad_(False)
        try:
            self._bottom = _view(model.encoder, list(layers[:count]), model.encoder.embeddings)
            self._top = _view(model.encoder, list(layers[count:]), _Given())
            self.states = self._cache(rows)
        except BaseException:
            self.release()
            raise

    @torch.no_grad()
    def _cache(self, rows: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Each row's hidden states after the frozen layers, in eval mode (no dropout)."""
        was_training = self.model.training
        self.model.eval()
        states: list[torch.Tensor | None] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), _CACHE_BATCH):
            batch = order[start: start + _CACHE_BATCH]
            input_ids, attention = self.model.collate([rows[i] for i in batch])
            hidden = self._bottom(input_ids=input_ids.to(self.model.device),
                                  attention_mask=attention.to(self.model.device)).last_hidden_state
            for i, row_hidden in zip(batch, hidden):
                states[i] = row_hidden[: len(rows[i])].clone()
        self.model.train(was_training)
        return states  # type: ignore[return-value]

    def forward_rows(self, batch: Sequence[int]) -> dict[str, torch.Tensor]:
        """The model's outputs for the cached rows ``batch``, as ``model.forward_rows`` gives them: packed
        several to a row where the model packs its passes, else padded."""
        picked = [self.states[i] for i in batch]
        if self.model.position_offset is not None:
            return self._packed(picked)
        width = max(len(s) for s in picked)
        hidden = picked[0].new_zeros((len(picked), width, picked[0].shape[-1]))
        attention = torch.zeros((len(picked), width), dtype=torch.long, device=hidden.device)
        for i, states in enumerate(picked):
            hidden[i, : len(states)] = states
            attention[i, : len(states)] = 1
        top = self._top(inputs_embeds=hidden, attention_mask=attention).last_hidden_state
        return self.model.pooled_outputs(top, attention)

    def _packed(self, picked: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The upper layers over the texts' states laid end to end in rows (``model.packing``): a random
        batch, as the contrastive stage draws, padded to its longest text would be mostly padding."""
        # Lay out cell numbers as packing lays out token ids: cell 0 is padding, text k's states are
        # cells 1 + (its offset) onwards.
        lengths = [len(states) for states in picked]
        starts = np.cumsum([1, *lengths[:-1]])
        layout = pack([range(start, start + length) for start, length in zip(starts, lengths)], 0, 0,
                      self.model.config.pooling)
        cells = torch.cat([picked[0].new_zeros((1, picked[0].shape[-1])), *picked])
        hidden = cells[torch.from_numpy(layout.input_ids).to(cells.device)]
        mask = torch.from_numpy(layout.attention_mask).to(cells.device)
        top = self._top(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        return self.model.packed_outputs(top, torch.from_numpy(layout.pooling).to(cells.device))

    def release(self) -> None:
        """Unfreeze what was frozen here (parameters frozen before stay so) and drop the cache."""
        for parameter in self.frozen:
            parameter.requires_grad_(True)
        self.frozen, self.states = [], []
