"""Fine-tuning every head of an :class:`~earshot.model.EarshotModel` together, one encoder pass per batch.

Example:
    >>> model = EarshotModel.from_base(DEFAULT_BASE_MODEL, data.heads(mapping))
    >>> result = Trainer(model, train, validation, TrainingConfig(output_dir="runs/airline")).train()
    >>> result.best_epoch
    3
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from earshot.files import sha256
from earshot.model import EarshotModel, Head
from earshot.model.device import resolve_device, training_autocast
from earshot.model.heads import head_floors

from .checkpoint import TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .data import Example, head_gold
from .few_shot import contrastive_stage, default_contrastive_steps, fit_heads, prototype_heads
from .frozen import FrozenLayers, check_frozen_layers
from .optimizer import adamw

logger = logging.getLogger(__name__)

# Batches are sorted by length inside windows of this many batches, then the batches are shuffled:
# far less padding than a plain shuffle (about 2x faster on CPU) while keeping the order random.
_BUCKET_WINDOW = 50


@dataclass
class TrainingResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    seconds: float
    history: list[dict[str, Any]]
    validation_metrics: dict[str, Any]


def head_targets(head: Head, examples: Sequence[Example]) -> torch.Tensor:
    """``head_gold`` as the loss takes it: unknown single labels are -100, cross-entropy's ignore index."""
    return head.behaviour.targets(head_gold(head, examples))


class Trainer:
    """Trains a model on checked examples; writes checkpoints and the best model to ``config.output_dir``."""

    def __init__(self, model: EarshotModel, train: Sequence[Example], validation: Sequence[Example],
                 config: TrainingConfig) -> None:
        if not train:
            raise ValueError("no training examples")
        self.model, self.train_examples, self.validation_examples, self.config = model, list(train), list(validation), config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.device = resolve_device(config.device)
        self._frozen: FrozenLayers | None = None  # the lower layers' cache while they are frozen

    # ------------------------------------------------------------------------------------- public
    def train(self, resume: bool = False) -> TrainingResult:
        """Run (or, with ``resume``, continue) training; the best epoch's model ends in ``output_dir``."""
        started = time.monotonic()
        if self.config.frozen_layers:  # refused before any work, not after a contrastive stage
            check_frozen_layers(self.model.encoder, self.config.frozen_layers)
        _seed_everything(self.config.seed)
        model = self.model
        model.to(device=self.device, dtype=torch.float32)
        ids = model.encode([e.text for e in self.train_examples]).input_ids
        targets = {head.name: head_targets(head, self.train_examples) for head in model.config.heads}
        steps_per_epoch = math.ceil(len(ids) / self.config.batch_size)
        recipe = self.recipe()
        few_shot = recipe == "few-shot"
        epochs = self.config.planned_epochs(steps_per_epoch, few_shot) if recipe != "names" else (self.config.epochs or 0)
        if not self.validation_examples:
            # Nothing to choose an epoch or thresholds on: the last epoch is kept, thresholds stay at
            # 0.5, and a few-shot start is not fine-tuned further unless --epochs asks for it.
            logger.warning("no validation examples: keeping the last epoch; multi-head thresholds stay at 0.5")
            if few_shot and self.config.epochs is None:
                epochs = 0
        self.patience = self.config.planned_patience(epochs)
        start = {"few-shot": "contrastive stage and fitted heads, then ", "names": "heads from the descriptions, then "}
        logger.info("recipe %s: %s%d epochs of %d steps, patience %d", recipe, start.get(recipe, ""), epochs,
                    steps_per_epoch, self.patience)
        optimizer = self._optimizer(few_shot)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.config.warmup_ratio * steps_per_epoch * epochs), steps_per_epoch * epochs)
        state = TrainingState(epoch=0, best_score=-1.0, best_epoch=0, bad_epochs=0, history=[],
                              fingerprint=self._fingerprint())
        if resume:
            state = self._resume(model, optimizer, scheduler, state)
            restore_floors(model, state.floors)
        # A resumed run's time counts from the first run's start: the model card gives the whole cost.
        started -= state.seconds

        def checkpoint() -> None:
            state.seconds = time.monotonic() - started
            save_checkpoint(self.checkpoint_dir, model, optimizer, scheduler, state)

        contrastive = few_shot and not state.history
        self._frozen = None
        try:
            if contrastive and self._freezes(1):
                # The frozen layers' output is computed once, for the contrastive stage and the epochs alike.
                self._frozen = FrozenLayers(model, ids, self.config.frozen_layers)
            frozen = self._frozen
            probe = recipe == "fine-tune" and self.config.probe_heads and not state.history
            if contrastive or probe:
                # Epoch 0: heads fitted on the encoder's vectors (after the few-shot recipe's contrastive
                # stage, or on the base encoder as a linear probe), scored and kept like any epoch, so
                # fine-tuning after it is kept only where it scores better; a probe's heads also spare
                # the encoder the large first gradients of random heads.
                loss = 0.0
                if contrastive:
                    losses = contrastive_stage(
                        model, self.train_examples, self._contrastive_steps(), learning_rate=self.config.contrastive_learning_rate,
                        temperature=self.config.contrastive_temperature, seed=self.config.seed, device=self.device,
                        progress=self.config.progress, frozen=frozen)
                    loss = float(np.mean(losses[-20:])) if losses else 0.0
                fit_heads(model, self.train_examples, c=self.config.head_fit_c)
                self._end_epoch(0, loss, state)
                checkpoint()
            if recipe == "names" and not state.history:
                # Epoch 0: each label's head row is its descriptions' mean vector (nearest description wins);
                # fine-tuning the encoder on one text per label moved texts away from them (docs/experiments.md).
                prototype_heads(model, self.train_examples)
                state.floors = {head.name: {label: list(floor) for label, floor in head.floors.items()}
                                for head in model.config.heads if head.floors}
                self._end_epoch(0, 0.0, state)
                checkpoint()
            self._fine_tune(ids, targets, epochs, optimizer, scheduler, state, checkpoint)
        finally:
            if self._frozen is not None:
                self._frozen.release()
                self._frozen = None
        return self._finish(state, time.monotonic() - started)

    def _fine_tune(self, ids: Sequence[Sequence[int]], targets: dict[str, torch.Tensor], epochs: int,
                   optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainingState,
                   checkpoint: Callable[[], None]) -> None:
        """The fine-tuning epochs, each ended by a validation score and a checkpoint; from
        ``frozen_from_epoch`` on, with the lowest ``frozen_layers`` frozen and their output cached."""
        model = self.model
        losses = self._losses(targets)
        amp_dtype = training_autocast(self.device, self.config.mixed_precision)
        use_amp = amp_dtype is not None
        # float16 gradients underflow without scaling; bfloat16 has fp32's range and needs none.
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        while state.epoch < epochs and not self._should_stop(state):
            epoch = state.epoch + 1
            if self._frozen is None and self._freezes(epoch):
                # Cached after the epochs that trained them: the states of the lower layers as they now are.
                self._frozen = FrozenLayers(model, ids, self.config.frozen_layers)
            frozen = self._frozen
            model.train()
            batches = self._batches(ids, epoch)
            bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                       disable=not self.config.progress, dynamic_ncols=True)
            running = 0.0
            for step, batch in enumerate(bar, start=1):
                with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                    outputs = (frozen.forward_rows(batch) if frozen is not None
                               else model.forward_rows([ids[i] for i in batch]))
                loss = self._loss(outputs, targets, batch, losses)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += (loss.item() - running) / min(step, 50)  # smoothed over the last ~50 steps
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            bar.close()
            self._end_epoch(epoch, running, state)
            checkpoint()

    # ------------------------------------------------------------------------------- epoch steps
    def _end_epoch(self, epoch: int, train_loss: float, state: TrainingState) -> None:
        metrics, thresholds = self.evaluate_validation()
        score = validation_score(metrics, self.model.config.heads) if metrics else 0.0
        improved = score > state.best_score or not self.validation_examples
        reference = state.best_score if state.patience_reference is None else state.patience_reference
        # A better epoch's model is always kept; only a gain above the margin buys more epochs.
        progressed = improved and (score > reference + self.config.min_improvement or not self.validation_examples)
        state.history.append({"epoch": epoch, "train_loss": train_loss, "validation_score": score,
                              **{f"{head}_{name}": metrics[head][name] for head in metrics
                                 for name in ("accuracy", "macro_f1", "micro_f1") if name in metrics[head]}})
        state.epoch = epoch
        if improved:
            state.best_score, state.best_epoch = score, epoch
            self.model.set_thresholds(thresholds)
            self.model.config.metrics = {"validation": metrics}
            self.model.save_pretrained(self.checkpoint_dir / "best")
        if progressed:
            state.patience_reference, state.bad_epochs = score, 0
        else:
            state.bad_epochs += 1
        logger.info("epoch %d: loss %.4f, validation score %.4f%s", epoch, train_loss, score,
                    " (best so far)" if improved else "")

    def _freezes(self, epoch: int) -> bool:
        """Whether fine-tuning epoch ``epoch`` (0 and 1: the contrastive stage too) runs with layers frozen."""
        return bool(self.config.frozen_layers) and epoch >= self.config.frozen_from_epoch

    def _should_stop(self, state: TrainingState) -> bool:
        return self.patience > 0 and state.bad_epochs >= self.patience

    def recipe(self) -> str:
        """The recipe this run takes: as configured, or under "auto": ``names`` when every training row
        is a taxonomy description (no data rows), ``few-shot`` when some head has at most
        ``few_shot_max_per_label`` labelled rows per label (its rows over its labels), else ``fine-tune``."""
        if self.config.recipe != "auto":
            return self.config.recipe
        if all(example.row == 0 for example in self.train_examples):
            return "names"
        few = min(self.rows_per_label().values()) <= self.config.few_shot_max_per_label
        return "few-shot" if few else "fine-tune"

    def few_shot(self) -> bool:
        """Whether this run takes the few-shot recipe (see :meth:`recipe`)."""
        return self.recipe() == "few-shot"

    def rows_per_label(self) -> dict[str, float]:
        """Per head: its labelled training rows divided by its number of labels."""
        rows = {}
        for head in self.model.config.heads:
            gold = head_gold(head, self.train_examples)
            labelled = int(head.behaviour.labelled(gold).sum())
            rows[head.name] = labelled / len(head.labels)
        return rows

    def _contrastive_steps(self) -> int:
        if self.config.contrastive_steps is not None:
            return self.config.contrastive_steps
        return default_contrastive_steps(len(self.train_examples))

    def evaluate_validation(self) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
        """Each head's metrics on the validation examples, multi heads' thresholds tuned on them."""
        model = self.model
        if not self.validation_examples:
            return {}, {}
        probabilities = model.predict_proba([e.text for e in self.validation_examples])
        metrics: dict[str, Any] = {}
        thresholds: dict[str, dict[str, float]] = {}
        for head in model.config.heads:
            gold = head_gold(head, self.validation_examples)
            tuned = head.behaviour.tuned_thresholds(head, gold, probabilities[head.name],
                                                    self.config.threshold_shrinkage)
            if tuned is not None:
                thresholds[head.name] = tuned
            metrics[head.name] = head.behaviour.metrics(head, gold, probabilities[head.name], tuned)
        return metrics, thresholds

    def _finish(self, state: TrainingState, seconds: float) -> TrainingResult:
        best = self.checkpoint_dir / "best"
        # Read on the CPU in float32 (``from_pretrained`` on an accelerator would cast to half precision,
        # and that is what would be written), then saved in the precision the config asks for.
        trained = EarshotModel.from_pretrained(best, device="cpu")
        provenance = {**trained.config.provenance, "best_epoch": state.best_epoch, "epochs_run": state.epoch,
                      "training_seconds": round(seconds, 1), "trained_on": _describe(self.device),
                      "precision": _precision(training_autocast(self.device, self.config.mixed_precision)),
                      "config": self.config.to_dict(),
                      "history": state.history, **state.fingerprint}
        trained.config.provenance = provenance
        self.model.version = trained.save_pretrained(self.output_dir, dtype=getattr(torch, self.config.save_dtype))
        self.model.load_state_dict(trained.state_dict())
        self.model.config = trained.config
        if not self.config.keep_checkpoints:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return TrainingResult(best_epoch=state.best_epoch, best_score=state.best_score, epochs_run=state.epoch,
                              seconds=seconds, history=state.history,
                              validation_metrics=trained.config.metrics.get("validation", {}))

    # ---------------------------------------------------------------------------------- building
    def _resume(self, model: EarshotModel, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, fresh: TrainingState) -> TrainingState:
        checkpoint = latest_checkpoint(self.checkpoint_dir)
        if checkpoint is None:
            logger.warning("--resume: no checkpoint in %s, starting from the beginning", self.checkpoint_dir)
            return fresh
        state = load_checkpoint(checkpoint, model, optimizer, scheduler)
        # A setting added to earshot after the checkpoint was written ran at its default there.
        defaults = TrainingConfig(output_dir=self.config.output_dir).to_dict()
        defaults = {k: v for k, v in defaults.items() if k in fresh.fingerprint["settings"]}
        state.fingerprint["settings"] = {**defaults, **state.fingerprint.get("settings", {})}
        if state.fingerprint != fresh.fingerprint:
            changed = sorted(k for k in fresh.fingerprint if state.fingerprint.get(k) != fresh.fingerprint[k])
            raise ValueError(f"cannot resume from {checkpoint}: {changed} differ from the interrupted run; "
                             "resume with the same data, labels and settings, or train into a new --output")
        logger.info("resumed after epoch %d from %s", state.epoch, checkpoint)
        return state

    def _fingerprint(self) -> dict[str, Any]:
        """What must not change between an interrupted run and its resumption."""
        rows = (repr((e.text, sorted(e.labels.items()))) for e in [*self.train_examples, *self.validation_examples])
        settings = {k: v for k, v in self.config.to_dict().items()
                    if k not in ("progress", "keep_checkpoints", "device", "save_dtype")}
        return {"data_sha256": sha256(*rows), "train_rows": len(self.train_examples),
                "validation_rows": len(self.validation_examples), "base_model": self.model.config.base_model,
                "heads": [[h.name, h.kind, h.labels] for h in self.model.config.heads], "settings": settings}

    def _optimizer(self, few_shot: bool) -> torch.optim.Optimizer:
        # Heads start from random weights and learn with a higher rate than the pretrained encoder.
        # After a few-shot start the heads are already fitted: fine-tuning then only polishes, at the
        # contrastive stage's rate (heads 10x): at the full rates, Banking77 with 8 examples per
        # intent lost development accuracy in the first epoch (docs/experiments.md).
        encoder_rate = self.config.contrastive_learning_rate if few_shot else self.config.learning_rate
        head_rate = 10 * encoder_rate if few_shot else self.config.head_learning_rate
        decay, no_decay, heads = [], [], []
        for name, parameter in self.model.named_parameters():
            if name.startswith("heads."):
                heads.append(parameter)
            elif parameter.ndim < 2:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay, "lr": encoder_rate},
            {"params": no_decay, "weight_decay": 0.0, "lr": encoder_rate},
            {"params": heads, "weight_decay": 0.0, "lr": head_rate},
        ]
        return adamw(groups)

    def _losses(self, targets: dict[str, torch.Tensor]) -> dict[str, nn.Module]:
        """One loss per head, weighted against class imbalance as the config asks."""
        power = {"none": 0.0, "sqrt": 0.5, "balanced": 1.0}[self.config.class_weighting]
        losses: dict[str, nn.Module] = {}
        for head in self.model.config.heads:
            losses[head.name] = head.behaviour.loss_function(head, targets[head.name], power,
                                                            self.config.max_pos_weight).to(self.device)
        return losses

    def _loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], batch: list[int],
              losses: dict[str, nn.Module]) -> torch.Tensor:
        loss = outputs["embedding"].new_zeros((), dtype=torch.float32)
        for head in self.model.config.heads:
            loss = loss + self._head_loss(head, outputs[head.name].float(), targets[head.name][batch].to(self.device),
                                          losses[head.name])
        return loss

    def _head_loss(self, head: Head, logits: torch.Tensor, gold: torch.Tensor, loss: nn.Module) -> torch.Tensor:
        """One head's loss on its gold labels (``head_targets`` rows)."""
        return head.behaviour.loss(logits, gold, loss, self.config)

    def _batches(self, ids: Sequence[Sequence[int]], epoch: int) -> list[list[int]]:
        """This epoch's batches: a seeded shuffle, length-sorted within windows, batches shuffled.

        Depends only on seed and epoch, so a resumed run sees the same batches as an uninterrupted one.
        """
        rng = random.Random(self.config.seed * 1000 + epoch)
        order = list(range(len(ids)))
        rng.shuffle(order)
        size = self.config.batch_size
        window = size * _BUCKET_WINDOW
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start: start + window], key=lambda i: len(ids[i]))
            batches.extend(chunk[i: i + size] for i in range(0, len(chunk), size))
        rng.shuffle(batches)
        return batches


def restore_floors(model: EarshotModel, floors: dict[str, dict[str, list[float]]]) -> None:
    """Put a checkpoint's catch-all floors back on the heads (data and layers) of a freshly built model."""
    for head in model.config.heads:
        if head.name in floors:
            head.floors = {label: (slope, intercept) for label, (slope, intercept) in floors[head.name].items()}
            model.heads[head.name].set_floors(head_floors(head))


def validation_score(metrics: dict[str, Any], heads: Sequence[Head]) -> float:
    """The early-stopping score: the mean over heads of each head's headline metric (``HeadKind.headline``)."""
    return float(np.mean([metrics[h.name][h.behaviour.headline] for h in heads]))


def _precision(autocast: torch.dtype | None) -> str:
    """How training steps ran, for the model card: "bfloat16 mixed", "float16 mixed" or "float32"."""
    return "float32" if autocast is None else f"{str(autocast).removeprefix('torch.')} mixed"


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    return f"{device.type.upper()} ({torch.get_num_threads()} threads)"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
