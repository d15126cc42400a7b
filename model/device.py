"""Choosing where a model runs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else CUDA, then MPS, then CPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is not None and str(device) != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but CUDA is not available on this machine")
        if resolved.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} was asked for, but MPS is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def inference_dtype(device: torch.device) -> torch.dtype:
    """Half precision on accelerators (twice the throughput, same labels); fp32 on CPU, where fp16 is slow."""
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


@lru_cache(maxsize=1)
def bf16_matrix_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX: the ``amx_bf16`` flag).

    There torch runs the model in bfloat16 faster than in fp32 and than int8 ONNX (docs/experiments.md);
    without AMX, int8 ONNX stays the choice. Linux only (other systems: False).
    """
    path = Path(cpuinfo)
    if not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split()
    return False


def training_autocast(device: torch.device, mixed_precision: bool = True) -> torch.dtype | None:
    """The dtype a training step's forward pass runs in under autocast, or None for fp32 throughout.

    Where the hardware multiplies half-precision matrices natively: bfloat16 on CUDA GPUs that have it
    (else float16, which needs a gradient scaler) and on CPUs with AMX, where training steps ran faster
    at the same quality (docs/experiments.md); elsewhere fp32, since bfloat16 emulated in software is slower.
    Weights, gradients and the optimizer stay fp32 either way.

    Example:
        >>> training_autocast(torch.device("cpu"), mixed_precision=False) is None
        True
    """
    if not mixed_precision:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and bf16_matrix_units():
        return torch.bfloat16
    return None
