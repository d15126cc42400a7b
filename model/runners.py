"""Runners: what computes a forward pass. One is chosen when a model is loaded; ``predict`` only calls it.

A runner takes the named inputs of one pass (``EarshotModel.pass_inputs``: packed or padded rows) and
returns float32 arrays: ``embedding`` (one pooled vector per text) and each head's logits, by head
name. The torch runner runs the model's own module (``bf16``: in bfloat16 on the CPU); the ONNX
runners (``model.onnx_backend``) run an export of it in ONNX Runtime on the CPU.

Example:
    >>> runner = TorchRunner(model)
    >>> sorted(runner(model.pass_inputs(model.encode(["late again"]).input_ids)))
    ['embedding', 'pain_points', 'sentiment']
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

BACKENDS = ("torch", "bf16", "onnx", "onnx-int8")


class Runner(Protocol):
    """Computes one forward pass; ``name`` is the backend, ``device`` where it runs."""

    name: str
    device: torch.device

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class TorchRunner:
    """The model's torch module, on whatever device and dtype the module sits; ``name`` is the backend
    it serves (``torch``, or ``bf16`` for a module in bfloat16 on the CPU)."""

    def __init__(self, module: nn.Module, name: str = "torch") -> None:
        self.module = module
        self.name = name

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dtype = next(self.module.parameters()).dtype
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feed.items()}
        with torch.inference_mode():
            if "position_ids" in tensors:  # packed rows (model/packing.py)
                outputs = self.module.forward_packed(tensors["input_ids"], tensors["position_ids"],
                                                     tensors["attention_mask"].to(dtype), tensors["pooling"].to(dtype))
            else:
                outputs = self.module(tensors["input_ids"], tensors["attention_mask"])
        return {name: value.float().cpu().numpy() for name, value in outputs.items()}
