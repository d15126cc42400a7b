"""The optimizer every training loop of earshot uses."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def _fused_devices() -> set[str]:
    """Device types with a fused AdamW kernel in this torch: the whole update in one kernel instead of
    a loop of small ones per tensor (the rule is AdamW's; only the summation order of floats differs)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return set(_get_fused_kernels_supported_devices())


def adamw(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], **settings: Any) -> torch.optim.AdamW:
    """AdamW over ``params`` (tensors or parameter groups), fused where every parameter's device has
    the kernel; on the CPU the plain loop spent more time in the update than in the backward pass of
    short texts (docs/experiments.md, "What a training step costs: the optimizer").

    >>> layer = torch.nn.Linear(4, 2)
    >>> adamw(layer.parameters(), lr=1e-3).defaults["fused"]
    True
    """
    params = [{**group, "params": list(group["params"])} if isinstance(group, dict) else group for group in params]
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = bool(tensors) and all(p.is_floating_point() and p.device.type in _fused_devices() for p in tensors)
    return torch.optim.AdamW(params, fused=fused or None, **settings)
