"""Resumable training checkpoints in safetensors + JSON.

Optimizer and RNG state are tensors plus plain numbers, so they are split into a safetensors file
and a JSON file: resuming never unpickles anything, which would run code from a file on disk.
A checkpoint folder is written under a temporary name and renamed when complete, so a ``kill -9``
during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from earshot.files import atomic_folder

_PREFIX = "epoch-"


@dataclass
class TrainingState:
    """Where training stands after a finished epoch."""

    epoch: int
    best_score: float
    best_epoch: int
    bad_epochs: int
    history: list[dict[str, Any]]
    fingerprint: dict[str, Any]
    # Seconds of training up to this state, summed over interrupted runs (checkpoints written before
    # this field existed read as 0).
    seconds: float = 0.0
    # The validation score the patience counts from: the last epoch that beat it by more than the
    # config's ``min_improvement`` (None in checkpoints written before the margin: the best score).
    patience_reference: float | None = None
    # The names recipe's catch-all floors set at epoch 0 ({head: {label: [slope, intercept]}}): config, not
    # weights, so a resumed run puts them back on its freshly built heads.
    floors: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainingState) -> Path:
    """Write a complete checkpoint for ``state.epoch`` and remove older ones."""
    final = folder / f"{_PREFIX}{state.epoch:04d}"
    with atomic_folder(final) as partial:
        _write(partial, model, optimizer, scheduler, state)
    for older in folder.glob(f"{_PREFIX}*"):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return final


def _write(partial: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainingState) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, partial / "model.safetensors")
    tensors, meta = _split_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, partial / "optimizer.safetensors")
    meta["scheduler"] = scheduler.state_dict()
    meta["training_state"] = state.__dict__
    (partial / "state.json").write_text(json.dumps(meta), encoding="utf-8")


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, or None."""
    complete = sorted(p for p in folder.glob(f"{_PREFIX}*") if (p / "state.json").is_file())
    return complete[-1] if complete else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler) -> TrainingState:
    """Restore model, optimizer, scheduler and RNG from ``path``; return the training state."""
    model.load_state_dict(load_file(path / "model.safetensors"), strict=True)
    tensors = load_file(path / "optimizer.safetensors")
    meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda_rng = tensors.pop("rng.cuda", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    optimizer.load_state_dict(_join_optimizer(tensors, meta))
    scheduler.load_state_dict(meta["scheduler"])
    return TrainingState(**meta["training_state"])


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, slots in state_dict["state"].items():
        for name, value in slots.items():
            key = f"state.{index}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}
