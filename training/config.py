"""The training configuration: typed, with defaults for a first run on new data, checked on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

CLASS_WEIGHTINGS = ("none", "sqrt", "balanced")
RECIPES = ("auto", "fine-tune", "few-shot", "names")
SAVE_DTYPES = ("float32", "float16")


def continue_settings(new_rows: int, rows: int, layers: int) -> dict[str, Any]:
    """The settings of a retrain that starts from a trained model (``earshot retrain --from``), for
    ``rows`` training rows of which ``new_rows`` the model has not trained on, and an encoder of ``layers``
    layers. Flags set by hand win.

    Its encoder already sets apart the labels of the rows it saw, so the contrastive stage makes the
    few-shot recipe's passes over the new rows only, without the recipe's floor of 100 steps, which
    sized a stage for a model that knows nothing yet; the heads are refitted on its vectors, then
    polished for up to 12 epochs at the gentle rates, whatever the rows per label. The lowest third of
    the layers, tuned already, stays as it is and its output is computed once (``--frozen-layers``).
    Without the contrastive stage MAMS (60 labelled rows, 150 answers) lost 5 points (docs/experiments.md,
    "What a retrain costs").

    Example:
        >>> continue_settings(150, 766, layers=6)
        {'recipe': 'few-shot', 'few_shot_epochs': 12, 'contrastive_steps': 47, 'frozen_layers': 2}
    """
    from .few_shot import contrastive_passes_steps

    return {"recipe": "few-shot", "few_shot_epochs": 12, "contrastive_steps": contrastive_passes_steps(new_rows),
            "frozen_layers": layers // 3}


@dataclass
class TrainingConfig:
    """How to fine-tune. Every field is checked in ``__post_init__``.

    Example:
        >>> TrainingConfig(output_dir="runs/airline", epochs=4).learning_rate
        8e-05
    """

    output_dir: str
    # "few-shot": a contrastive stage on the encoder, heads fitted on its embeddings, then a short
    # fine-tuning (training/few_shot.py). "fine-tune": straight to fine-tuning. "auto": few-shot when
    # some head has at most ``few_shot_max_per_label`` labelled training rows per label.
    recipe: str = "auto"
    few_shot_max_per_label: int = 64
    # None: sized by the data. Fine-tuning runs about ``steps`` optimizer steps (whole epochs, at
    # most ``max_epochs``); early stopping is the guard. 2,500 covers the best epochs found by hand
    # (docs/experiments.md): Banking77 epoch 8 of 282 steps, MAMS 8 of 99, SemEval-2016 12 of 54.
    # The few-shot recipe polishes for ``few_shot_epochs`` after its heads are fitted.
    epochs: int | None = None
    steps: int = 2500
    max_epochs: int = 40
    few_shot_epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 8e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    # Epochs without improvement before stopping; None: a fifth of the planned epochs, at least 2.
    patience: int | None = None
    # An epoch better than the best is kept whatever its gain, but resets the patience only when it
    # beats the score the patience counts from by more than this (validation score, 0-1).
    min_improvement: float = 0.0
    seed: int = 13
    class_weighting: str = "sqrt"
    max_pos_weight: float = 10.0
    # A multi head's loss is a mean over its labels, so each label's signal is 1/labels of a single
    # head's; weighting it up lets the encoder learn those features as fast as the single head's.
    multi_label_loss_weight: float = 1.0
    # Sigmoid losses train each label against "absent", never against each other; on texts that do
    # have a label of a multi head, a softmax over its labels (the gold ones sharing the mass) teaches
    # the encoder which label fits best: what ranking the scores needs. 0 turns it off.
    ranking_loss_weight: float = 0.0
    # Per-label thresholds are tuned on the validation data; a label with few positives there gets
    # a noisy optimum. k > 0 pulls each toward the one best shared threshold, by k / (positives + k).
    threshold_shrinkage: float = 0.0
    # Precision of the weights written to output_dir, whatever the device trained in.
    save_dtype: str = "float32"
    # The few-shot recipe's contrastive stage (None: sized by the data, ``default_contrastive_steps``)
    # and the regularisation C of the logistic regressions its heads start from.
    contrastive_steps: int | None = None
    contrastive_learning_rate: float = 3e-5
    contrastive_temperature: float = 0.05
    head_fit_c: float = 10.0
    # The fine-tune recipe's heads start as logistic regressions (C = ``head_fit_c``) on the base
    # encoder's vectors instead of random weights (LP-FT, Kumar et al. 2022): random heads send large
    # gradients into the encoder in the first steps and distort features that texts unlike the
    # training rows still need. Scored as epoch 0, like the few-shot start.
    probe_heads: bool = False
    # Forward passes in bfloat16 (float16 on older GPUs) where the hardware does it natively: CUDA, and
    # CPUs with AMX (model.device.training_autocast). False: fp32 throughout.
    mixed_precision: bool = True
    # Fine-tuning leaves the embeddings and this many lowest encoder layers as they are and runs only the
    # layers above in each step, on hidden states computed once per text (training/frozen.py). 0: all train.
    frozen_layers: int = 0
    # The first fine-tuning epoch that runs with ``frozen_layers`` frozen; the epochs before it train every
    # layer, so the lower layers adapt to the data first and only the long tail of epochs runs cheaper.
    # 1: frozen from the start (and through a few-shot contrastive stage).
    frozen_from_epoch: int = 1
    device: str | None = None
    keep_checkpoints: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        positive_ints = {"epochs": self.epochs, "batch_size": self.batch_size, "steps": self.steps,
                         "max_epochs": self.max_epochs, "few_shot_max_per_label": self.few_shot_max_per_label,
                         "few_shot_epochs": self.few_shot_epochs}
        for name, value in positive_ints.items():
            if value is None and name == "epochs":
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 0):
            raise ValueError(f"patience must be 0 (no early stopping) or more, got {self.patience!r}")
        if self.contrastive_steps is not None and (not isinstance(self.contrastive_steps, int)
                                                   or self.contrastive_steps < 0):
            raise ValueError(f"contrastive_steps must be 0 (no contrastive stage) or more, got {self.contrastive_steps!r}")
        if not isinstance(self.frozen_layers, int) or self.frozen_layers < 0:
            raise ValueError(f"frozen_layers must be 0 (every layer trains) or more, got {self.frozen_layers!r}")
        if not isinstance(self.frozen_from_epoch, int) or self.frozen_from_epoch < 1:
            raise ValueError(f"frozen_from_epoch must be a positive integer, got {self.frozen_from_epoch!r}")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.probe_heads and self.recipe in ("few-shot", "names"):
            raise ValueError(f"probe_heads is for the fine-tune recipe; the {self.recipe} recipe sets its heads itself")
        if self.contrastive_temperature <= 0 or self.head_fit_c <= 0:
            raise ValueError("contrastive_temperature and head_fit_c must be > 0")
        for name in ("learning_rate", "head_learning_rate", "contrastive_learning_rate"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0 or self.max_pos_weight < 1:
            raise ValueError("weight_decay must be >= 0, max_grad_norm > 0 and max_pos_weight >= 1")
        if self.multi_label_loss_weight <= 0:
            raise ValueError(f"multi_label_loss_weight must be > 0, got {self.multi_label_loss_weight!r}")
        if not 0.0 <= self.min_improvement < 1.0:
            raise ValueError(f"min_improvement must be in [0, 1), got {self.min_improvement!r}")
        if self.ranking_loss_weight < 0:
            raise ValueError(f"ranking_loss_weight must be >= 0, got {self.ranking_loss_weight!r}")
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"save_dtype must be one of {SAVE_DTYPES}, got {self.save_dtype!r}")
        if self.threshold_shrinkage < 0:
            raise ValueError(f"threshold_shrinkage must be >= 0, got {self.threshold_shrinkage!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if not self.output_dir:
            raise ValueError("output_dir is required")

    def planned_epochs(self, steps_per_epoch: int, few_shot: bool) -> int:
        """Epochs of fine-tuning: ``epochs`` when set, else ``few_shot_epochs`` after a few-shot start,
        else enough whole epochs for about ``steps`` optimizer steps, at most ``max_epochs``.

        Example:
            >>> TrainingConfig(output_dir="m").planned_epochs(steps_per_epoch=99, few_shot=False)  # 3,149 rows
            26
        """
        if self.epochs is not None:
            return self.epochs
        if few_shot:
            return self.few_shot_epochs
        return max(1, min(self.max_epochs, math.ceil(self.steps / steps_per_epoch)))

    def planned_patience(self, epochs: int) -> int:
        """``patience`` when set, else a fifth of ``epochs`` and at least 2: many short epochs of small
        data score noisily, and two bad ones in a row say little there."""
        return self.patience if self.patience is not None else max(2, epochs // 5)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        """A config from ``data``; keys that are not fields are refused by name (no silent typo)."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}")
        return cls(**data)
