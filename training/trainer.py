"""Fine-tuning both heads of an :class:`~model.EarshotModel` together.

Example:
    >>> model = EarshotModel.from_base(DEFAULT_BASE_MODEL, data.sentiment_labels(), data.pain_point_labels())
    >>> result = Trainer(model, train, validation, TrainingConfig(output_dir="runs/airline")).train()
    >>> result.best_epoch
    3
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from model import EarshotModel
from model.device import resolve_device

from .checkpoint import TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .data import Example
from .metrics import multi_label_metrics, single_label_metrics, tune_thresholds

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


@dataclass
class _Targets:
    sentiment: torch.Tensor     # (n,) class index, -100 where unknown
    pain_points: torch.Tensor   # (n, labels) 0/1 floats


class Trainer:
    """Trains a model on checked examples; writes checkpoints and the best model to ``config.output_dir``."""

    def __init__(self, model: EarshotModel, train: Sequence[Example], validation: Sequence[Example],
                 config: TrainingConfig) -> None:
        if not train:
            raise ValueError("no training examples")
        if not validation:
            raise ValueError("no validation examples: early stopping and threshold tuning need them")
        self.model, self.train_examples, self.validation_examples, self.config = model, list(train), list(validation), config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.device = resolve_device(config.device)

    # ------------------------------------------------------------------------------------- public
    def train(self, resume: bool = False) -> TrainingResult:
        """Run (or, with ``resume``, continue) training; the best epoch's model ends in ``output_dir``."""
        started = time.monotonic()
        _seed_everything(self.config.seed)
        model = self.model
        model.to(device=self.device, dtype=torch.float32)
        ids = model.encode([e.text for e in self.train_examples]).input_ids
        targets = self._targets(self.train_examples)
        steps_per_epoch = math.ceil(len(ids) / self.config.batch_size)
        optimizer = self._optimizer()
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.config.warmup_ratio * steps_per_epoch * self.config.epochs),
            steps_per_epoch * self.config.epochs)
        state = TrainingState(epoch=0, best_score=-1.0, best_epoch=0, bad_epochs=0, history=[],
                              fingerprint=self._fingerprint())
        if resume:
            state = self._resume(model, optimizer, scheduler, state)
        sentiment_loss, pain_loss = self._losses(targets)
        use_amp = self.config.mixed_precision and self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

        while state.epoch < self.config.epochs and not self._should_stop(state):
            epoch = state.epoch + 1
            model.train()
            batches = self._batches(ids, epoch)
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch",
                       disable=not self.config.progress, dynamic_ncols=True)
            running = 0.0
            for step, batch in enumerate(bar, start=1):
                input_ids, attention = model.collate([ids[i] for i in batch])
                with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                    sent_logits, pain_logits = model(input_ids.to(self.device), attention.to(self.device))
                loss = self._loss(sent_logits.float(), pain_logits.float(), targets, batch, sentiment_loss, pain_loss)
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
            save_checkpoint(self.checkpoint_dir, model, optimizer, scheduler, state)

        return self._finish(state, time.monotonic() - started)

    # ------------------------------------------------------------------------------- epoch steps
    def _end_epoch(self, epoch: int, train_loss: float, state: TrainingState) -> None:
        metrics, thresholds = self.evaluate_validation()
        score = validation_score(metrics)
        improved = score > state.best_score
        state.history.append({"epoch": epoch, "train_loss": train_loss, "validation_score": score,
                              **{f"{head}_{name}": metrics[head][name] for head in metrics
                                 for name in ("accuracy", "macro_f1", "micro_f1")}})
        state.epoch = epoch
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            self.model.set_thresholds(thresholds)
            self.model.config.metrics = {"validation": metrics}
            self.model.save_pretrained(self.checkpoint_dir / "best")
        else:
            state.bad_epochs += 1
        logger.info("epoch %d: loss %.4f, validation score %.4f%s", epoch, train_loss, score,
                    " (best so far)" if improved else "")

    def _should_stop(self, state: TrainingState) -> bool:
        return self.config.patience > 0 and state.bad_epochs >= self.config.patience

    def evaluate_validation(self) -> tuple[dict[str, Any], dict[str, float]]:
        """Metrics on the validation examples, with pain-point thresholds tuned on them."""
        model = self.model
        probabilities = model.predict_proba([e.text for e in self.validation_examples])
        targets = self._targets(self.validation_examples)
        metrics: dict[str, Any] = {}
        if model.sentiment_labels:
            metrics["sentiment"] = single_label_metrics(targets.sentiment.numpy().clip(min=-1),
                                                        probabilities.sentiment, model.sentiment_labels)
        thresholds: dict[str, float] = {}
        if model.pain_point_labels:
            gold = targets.pain_points.numpy()
            tuned = tune_thresholds(gold, probabilities.pain_points, shrinkage=self.config.threshold_shrinkage)
            thresholds = {label: float(t) for label, t in zip(model.pain_point_labels, tuned)}
            metrics["pain_points"] = multi_label_metrics(gold, probabilities.pain_points, tuned,
                                                         model.pain_point_labels)
        return metrics, thresholds

    def _finish(self, state: TrainingState, seconds: float) -> TrainingResult:
        best = self.checkpoint_dir / "best"
        trained = EarshotModel.from_pretrained(best, device=self.device)
        provenance = {**trained.config.provenance, "best_epoch": state.best_epoch, "epochs_run": state.epoch,
                      "training_seconds": round(seconds, 1), "trained_on": _describe(self.device),
                      "config": self.config.to_dict(),
                      "history": state.history, **state.fingerprint}
        trained.config.provenance = provenance
        trained.save_pretrained(self.output_dir)
        self.model.load_state_dict(trained.state_dict())
        self.model.set_thresholds(trained.config.thresholds)
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
        if state.fingerprint != fresh.fingerprint:
            changed = sorted(k for k in fresh.fingerprint if state.fingerprint.get(k) != fresh.fingerprint[k])
            raise ValueError(f"cannot resume from {checkpoint}: {changed} differ from the interrupted run; "
                             "resume with the same data, labels and settings, or train into a new --output")
        logger.info("resumed after epoch %d from %s", state.epoch, checkpoint)
        return state

    def _fingerprint(self) -> dict[str, Any]:
        """What must not change between an interrupted run and its resumption."""
        digest = hashlib.sha256()
        for example in [*self.train_examples, *self.validation_examples]:
            digest.update(repr((example.text, example.sentiment, example.pain_points)).encode())
        settings = {k: v for k, v in self.config.to_dict().items() if k not in ("progress", "keep_checkpoints", "device")}
        return {"data_sha256": digest.hexdigest(), "train_rows": len(self.train_examples),
                "validation_rows": len(self.validation_examples), "base_model": self.model.config.base_model,
                "sentiment_labels": self.model.sentiment_labels, "pain_point_labels": self.model.pain_point_labels,
                "settings": settings}

    def _optimizer(self) -> torch.optim.Optimizer:
        # Heads start from random weights and learn with a higher rate than the pretrained encoder.
        decay, no_decay, heads = [], [], []
        for name, parameter in self.model.named_parameters():
            if name.startswith(("sentiment_head", "pain_point_head")):
                heads.append(parameter)
            elif parameter.ndim < 2:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay, "lr": self.config.learning_rate},
            {"params": no_decay, "weight_decay": 0.0, "lr": self.config.learning_rate},
            {"params": heads, "weight_decay": 0.0, "lr": self.config.head_learning_rate},
        ]
        return torch.optim.AdamW(groups)

    def _targets(self, examples: Sequence[Example]) -> _Targets:
        sentiment_index = {label: i for i, label in enumerate(self.model.sentiment_labels)}
        pain_index = {label: i for i, label in enumerate(self.model.pain_point_labels)}
        sentiment = torch.full((len(examples),), -100, dtype=torch.long)
        pain = torch.zeros((len(examples), len(pain_index)), dtype=torch.float32)
        for row, example in enumerate(examples):
            if example.sentiment is not None and sentiment_index:
                sentiment[row] = sentiment_index[example.sentiment]
            for label in example.pain_points:
                pain[row, pain_index[label]] = 1.0
        return _Targets(sentiment, pain)

    def _losses(self, targets: _Targets) -> tuple[nn.Module, nn.Module]:
        """Loss functions weighted against class imbalance as the config asks."""
        power = {"none": 0.0, "sqrt": 0.5, "balanced": 1.0}[self.config.class_weighting]
        known = targets.sentiment[targets.sentiment >= 0]
        counts = torch.bincount(known, minlength=len(self.model.sentiment_labels)).float().clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)) ** power if len(counts) else None
        positives = targets.pain_points.sum(dim=0).clamp(min=1)
        negatives = len(targets.pain_points) - positives
        pos_weight = ((negatives / positives) ** power).clamp(max=self.config.max_pos_weight)
        return (nn.CrossEntropyLoss(weight=weight.to(self.device) if weight is not None else None, ignore_index=-100),
                nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(self.device)))

    def _loss(self, sent_logits: torch.Tensor, pain_logits: torch.Tensor, targets: _Targets, batch: list[int],
              sentiment_loss: nn.Module, pain_loss: nn.Module) -> torch.Tensor:
        loss = sent_logits.new_zeros(())
        if sent_logits.shape[1]:
            gold = targets.sentiment[batch].to(self.device)
            if (gold >= 0).any():  # a batch of rows without sentiment trains only the pain-point head
                loss = loss + sentiment_loss(sent_logits, gold)
        if pain_logits.shape[1]:
            gold_pain = targets.pain_points[batch].to(self.device)
            loss = loss + self.config.pain_point_loss_weight * pain_loss(pain_logits, gold_pain)
            if self.config.pain_point_ranking_weight > 0:
                loss = loss + self.config.pain_point_ranking_weight * ranking_loss(pain_logits, gold_pain)
        return loss

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


def ranking_loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Mean of -log(softmax mass on the gold labels) over rows with at least one gold label.

    For a row with one label this is the usual cross-entropy; rows without labels add nothing
    (the sigmoid loss teaches "none"), and a batch without any gives 0.

    Example:
        >>> ranking_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]))  # -log(e^2 / (e^2 + 1))
        tensor(0.1269)
    """
    labelled = gold.sum(dim=1) > 0
    if not labelled.any():
        return logits.new_zeros(())
    log_probs = torch.log_softmax(logits[labelled].float(), dim=-1)
    gold_mass = torch.logsumexp(log_probs.masked_fill(gold[labelled] <= 0, float("-inf")), dim=-1)
    return -gold_mass.mean()


def validation_score(metrics: dict[str, Any]) -> float:
    """The early-stopping score: mean of sentiment macro-F1 and pain-point micro-F1 (heads present)."""
    parts = []
    if "sentiment" in metrics:
        parts.append(metrics["sentiment"]["macro_f1"])
    if "pain_points" in metrics:
        parts.append(metrics["pain_points"]["micro_f1"])
    return float(np.mean(parts))


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    return f"{device.type.upper()} ({torch.get_num_threads()} threads)"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
