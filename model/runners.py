"""Runners: what computes a forward pass. One is chosen when a model is loaded; ``predict`` only calls it.

A runner takes the named inputs of one pass (``EarshotModel.pass_inputs``: packed or padded rows) and
returns float32 arrays: ``embedding`` (one pooled vector per text) and each head's logits, by head
name. The torch runner runs the model's own module (``bf16``: in bfloat16 on the CPU), the compiled
runner the same module through ``torch.compile``; the ONNX runners (``model.onnx_backend``) run an
export of it in ONNX Runtime on the CPU.

Example:
    >>> runner = TorchRunner(model)
    >>> sorted(runner(model.pass_inputs(model.encode(["late again"]).input_ids)))
    ['embedding', 'pain_points', 'sentiment']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from .device import bf16_matrix_units, resolve_device
from .onnx_backend import load_onnx_runner

AUTO = "auto"


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
        self._packed = module.forward_packed  # packed rows (model/packing.py)
        self._padded = module

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feed.items()}
        with torch.inference_mode():
            outputs = self._forward(tensors)
        return {name: value.float().cpu().numpy() for name, value in outputs.items()}

    def _forward(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtype = next(self.module.parameters()).dtype
        if "position_ids" in tensors:
            return self._packed(tensors["input_ids"], tensors["position_ids"],
                                tensors["attention_mask"].to(dtype), tensors["pooling"].to(dtype))
        return self._padded(tensors["input_ids"], tensors["attention_mask"])


class CompiledRunner(TorchRunner):
    """The torch runner with the module's forward compiled by ``torch.compile`` (inductor, weights frozen
    into the graph as constants, which lets oneDNN keep them pre-packed for its matrix units; speeds in
    docs/experiments.md). Compiling takes tens of seconds, so
    ``EarshotModel.compile_runner`` compiles at load, on a pass whose sizes are all different and at
    least 2: torch specialises a graph to any size of 0 or 1, to sizes that happen to be equal and to
    strides, and each such graph is another compile. For the same reason a pass of one row or one text
    runs with its first row (and text) repeated and the copy's outputs dropped, and the packed mask is
    built with the same strides for every pass (``model.packing.pack``).
    Answers equal the uncompiled runner's up to float rounding (tested).
    """

    def __init__(self, module: nn.Module, name: str = "torch") -> None:
        super().__init__(module, f"{name} compiled")  # what /model and metrics report: scores differ by rounding
        self._packed = torch.compile(module.forward_packed, dynamic=True)
        self._padded = torch.compile(module.forward, dynamic=True)

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = len(feed["pooling"] if "pooling" in feed else feed["input_ids"])
        outputs = super().__call__(at_least_two(feed))
        return {name: value[:texts] for name, value in outputs.items()}

    def _forward(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Freezing is read when a graph compiles, which happens inside a call; torch.compile's own
        # `options={"freezing": True}` left the weights unpacked (aten::addmm instead of oneDNN's
        # packed linear in the profile; docs/experiments.md).
        from torch._inductor import config as inductor_config  # imported once, on the first pass

        with inductor_config.patch(freezing=True):
            return super()._forward(tensors)


def at_least_two(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` with its first row repeated when it has one row, and its first text when it has one text.

    Example:
        >>> at_least_two({"input_ids": np.array([[5, 6]]), "attention_mask": np.array([[1, 1]])})["input_ids"]
        array([[5, 6],
               [5, 6]])
    """
    def twice_first(array: np.ndarray) -> np.ndarray:
        return np.concatenate([array, array[:1]]) if len(array) == 1 else array

    grown = {name: twice_first(array) for name, array in feed.items() if name != "pooling"}
    if "pooling" in feed:  # (texts, rows * width): the repeated row's cells pool into no text
        pooling = feed["pooling"]
        added_cells = grown["input_ids"].size - feed["input_ids"].size
        pooling = np.pad(pooling, ((0, 0), (0, added_cells)))
        grown["pooling"] = twice_first(pooling)
    return grown


# ------------------------------------------------------------------------------------- backends
@dataclass(frozen=True)
class Backend:
    """A way to run the network, chosen once when a model is loaded.

    ``load`` moves the model where the backend runs and sets its runner; ``cpu_only`` backends refuse an
    accelerator; ``compilable`` ones can run through ``torch.compile``; ``auto_rank`` orders the
    backends ``auto`` may pick (lowest first, None: never), ``auto_when`` says whether it may pick this
    one for a device.
    """

    name: str
    summary: str
    load: Callable[[Any, Path], None]
    cpu_only: bool = True
    compilable: bool = False
    auto_rank: int | None = None
    auto_when: Callable[[torch.device], bool] = lambda device: False


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` loadable by its name (CLI choices, EARSHOT_BACKEND and ``from_pretrained``)."""
    _BACKENDS[backend.name] = backend
    return backend


def backend_names() -> tuple[str, ...]:
    """Every backend's name, then ``auto``: the choices of ``--backend`` and ``EARSHOT_BACKEND``."""
    return (*_BACKENDS, AUTO)


def backend_help() -> str:
    """One line per backend, for ``--help``."""
    ranked = sorted((b for b in _BACKENDS.values() if b.auto_rank is not None), key=lambda b: b.auto_rank)
    return ("; ".join(f"{b.name}: {b.summary}" for b in _BACKENDS.values())
            + f"; auto (the service's default): the first of {', '.join(b.name for b in ranked)} that suits the "
              "device, so that batch scores equal the API's")


def choose_backend(name: str, device: str | torch.device | None) -> tuple[Backend, str | torch.device | None]:
    """The backend ``name`` (``auto`` resolved for ``device``) and the device it runs on.

    Example:
        >>> choose_backend("onnx-int8", None)[0].name
        'onnx-int8'
    """
    if name == AUTO:
        target = resolve_device(device)
        ranked = sorted((b for b in _BACKENDS.values() if b.auto_rank is not None), key=lambda b: b.auto_rank)
        chosen = next(b for b in ranked if b.auto_when(target))
        return chosen, ("cpu" if chosen.cpu_only else device)
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; use one of {list(backend_names())}")
    backend = _BACKENDS[name]
    if backend.cpu_only and device not in (None, "auto", "cpu"):
        raise ValueError(f"backend {name!r} runs on the CPU; use backend 'torch' for device {device!r}")
    return backend, device


def _load_torch(model: Any, folder: Path, device: str | torch.device | None = None) -> None:
    model.to_device(device)


def _load_bf16(model: Any, folder: Path, device: str | torch.device | None = None) -> None:
    model.to(device="cpu", dtype=torch.bfloat16)
    model.runner = TorchRunner(model, "bf16")


def _onnx_loader(name: str) -> Callable[..., None]:
    def load(model: Any, folder: Path, device: str | torch.device | None = None) -> None:
        model.to_device("cpu")
        model.runner = load_onnx_runner(model, folder, model.version, name)
    return load


register_backend(Backend("torch", "the model's torch module on the CPU or an accelerator (fp16 there)", _load_torch,
                         cpu_only=False, compilable=True, auto_rank=2, auto_when=lambda d: d.type != "cpu"))
register_backend(Backend("bf16", "torch in bfloat16 on the CPU, for CPUs with AMX bfloat16 units", _load_bf16,
                         compilable=True, auto_rank=0, auto_when=lambda d: d.type == "cpu" and bf16_matrix_units()))
register_backend(Backend("onnx", "ONNX Runtime in fp32 on the CPU, exported beside the model on first use",
                         _onnx_loader("onnx")))
register_backend(Backend("onnx-int8", "ONNX Runtime with per-token int8 quantisation on the CPU, exported beside "
                         "the model on first use", _onnx_loader("onnx-int8"), auto_rank=1,
                         auto_when=lambda d: d.type == "cpu"))
BACKENDS = tuple(_BACKENDS)  # the built-in backends
