"""Distillation: a student learns every head from a teacher's answers, and from gold labels where rows have them.

The teacher labels each training text once (its ``predict_proba``; unlabelled texts count too). The
student then trains as in :class:`~earshot.training.Trainer`, with each head's loss a mix of

- the teacher's answer softened by a temperature ``T`` (Hinton et al. 2015): for a single head the
  KL divergence between the two softmaxes at ``T``, for a multi head each label's sigmoid at ``T`` as a
  soft target; both times ``T**2`` so that the gradient's size does not depend on ``T``;
- the usual loss on the gold labels, on the rows that have them;
- optionally the teacher's pooled text vector (``embedding_weight``): a student as wide as its teacher
  learns the vector itself (1 - cosine); a narrower one learns how the texts of a batch resemble each
  other (the batch's cosine-similarity matrix, Tung & Mori 2019), which needs no projection layer.
  Off by default: on the airline fast tier it did not help (docs/experiments.md);
- optionally the teacher's hidden states (``hidden_weight``, TinyBERT-style, Jiao et al. 2020): each
  student layer ``j`` of ``m`` learns teacher layer ``ceil(j * n / m)`` of ``n``, token by token
  (1 - cosine). It needs the teacher's tokenizer and width (a ``--student-layers`` student) and runs
  the teacher alongside each training step, since token-level states are too large to keep.

Validation (gold labels) chooses the epoch and tunes the multi heads' thresholds, as ``train`` does.
A student can be a fresh base encoder or the first N layers of the teacher's (or a base) encoder:
dropping the top layers keeps most of a fine-tuned encoder's quality (Sajjad et al., 2023, "On the
effect of dropping layers of pre-trained transformer models").

Example:
    >>> teacher = EarshotModel.from_pretrained("runs/mpnet", device="cpu")
    >>> student = student_from_layers(teacher, 3)
    >>> trainer = DistillationTrainer(student, teacher, train, validation, TrainingConfig(output_dir="runs/student"))
    >>> trainer.train().best_epoch
    4
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers.pytorch_utils import prune_linear_layer

from earshot.files import atomic_path, sha256
from earshot.model import EarshotModel
from earshot.model.heads import head_kind
from earshot.model.modeling import EMBEDDING, is_model_folder
from earshot.model.runners import TorchRunner

from .config import TrainingConfig
from .data import Example
from .frozen import encoder_layers
from .trainer import Trainer

logger = logging.getLogger(__name__)

TEACHER_FILE = "teacher.safetensors"


@dataclass(frozen=True)
class DistillationConfig:
    """How the teacher's answers weigh against the gold labels.

    ``temperature``: softens the teacher's answers (1: as they are); ``gold_weight``: share of each
    head's loss that comes from gold labels on the rows that have them (0: the teacher alone);
    ``embedding_weight``: weight of the term that pulls the student's text vectors toward the
    teacher's (0: heads only); ``hidden_weight``: weight of the term that pulls the student's layers'
    token states toward the teacher's (0: off).

    Example:
        >>> DistillationConfig(temperature=2.0, gold_weight=0.5).temperature
        2.0
    """

    temperature: float = 2.0
    gold_weight: float = 0.5
    embedding_weight: float = 0.0
    hidden_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if not 0.0 <= self.gold_weight <= 1.0:
            raise ValueError(f"gold_weight must be from 0 to 1, got {self.gold_weight!r}")
        if not self.embedding_weight >= 0.0:
            raise ValueError(f"embedding_weight must be >= 0, got {self.embedding_weight!r}")
        if not self.hidden_weight >= 0.0:
            raise ValueError(f"hidden_weight must be >= 0, got {self.hidden_weight!r}")


def student_start(teacher: EarshotModel, base: str | None = None) -> EarshotModel:
    """The model a student starts from, before any layers are dropped: the teacher itself when ``base``
    is None; an earshot model folder with the teacher's heads (its encoder, tokenizer and heads, e.g. a
    smaller model to teach again), in float32; else a base encoder (hub id or local folder) with fresh
    heads. Raises a ValueError naming both head sets when an earshot folder's heads differ.

    Example:
        >>> student_from_layers(student_start(mpnet_teacher, "model/default"), 5).encoder.config.num_hidden_layers
        5
    """
    if base is None:
        return teacher
    if is_model_folder(base):
        start = load_teacher(base, device=teacher.device)  # fp32 torch, as a teacher: it will be trained
        theirs, mine = _head_set(teacher), _head_set(start)
        if mine != theirs:
            raise ValueError(f"--student-base {base} has heads {sorted(mine)} and the teacher {sorted(theirs)}: a "
                             "student learns the teacher's heads; give a base encoder instead, or a model with them")
        return start
    # The student learns the teacher's answers: a floor sized to the teacher's vectors would hold its logits up.
    heads = [replace(head, floors={}) for head in teacher.config.heads]
    return EarshotModel.from_base(base, heads, max_length=teacher.config.max_length)


def _head_set(model: EarshotModel) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(h.name, h.kind, tuple(h.labels)) for h in model.config.heads}


def student_from_layers(source: EarshotModel, layers: int | Sequence[int]) -> EarshotModel:
    """A copy of ``source`` (its tokenizer, heads and weights) keeping some of its layers.

    ``layers`` is a count (keep the first ``layers``) or the numbers, from 1, of the layers to keep, in
    order (every other layer, as DistilBERT does, or the top ones, whose output the heads were trained
    on). Raises a ValueError naming the encoder's layer count when ``layers`` asks for a layer it lacks.

    Example:
        >>> student_from_layers(EarshotModel.from_pretrained(), 3).encoder.config.num_hidden_layers
        3
        >>> student_from_layers(EarshotModel.from_pretrained(), [1, 3, 4, 5, 6]).encoder.config.num_hidden_layers
        5
    """
    keep = layer_numbers(layers, len(encoder_layers(source.encoder)), source.config.base_model or "model")
    student = copy.deepcopy(source)
    blocks = encoder_layers(student.encoder)
    kept = [blocks[n - 1] for n in keep]
    del blocks[:]
    blocks.extend(kept)
    config = student.encoder.config
    setattr(config, "n_layers" if hasattr(config, "n_layers") else "num_hidden_layers", len(keep))
    student.runner = TorchRunner(student)
    student.version = None
    student.config.metrics, student.config.provenance = {}, {}
    return student


def narrow_ffn(student: EarshotModel, width: int, texts: Sequence[str]) -> EarshotModel:
    """Keep ``width`` of each layer's feed-forward neurons in ``student`` (in place; returned too).

    The feed-forward block is two thirds of a layer's work per token; its neurons are ranked by how
    much each adds to the layer's output on ``texts``: the mean absolute activation times the norm of
    its output weights (Michel et al. 2019 rank attention heads the same way). Raises a ValueError
    naming the encoder's width when ``width`` is not below it.

    Example:
        >>> student = narrow_ffn(student_from_layers(teacher, 6), 768, train_texts[:1000])
        >>> student.encoder.config.intermediate_size
        768
    """
    config = student.encoder.config
    have = getattr(config, "intermediate_size", None)
    if have is None:
        raise ValueError(f"--student-ffn works with BERT-style encoders; {type(student.encoder).__name__} has no "
                         "intermediate_size")
    if not 1 <= width < have:
        raise ValueError(f"--student-ffn {width}: the encoder's feed-forward blocks have {have} neurons; choose "
                         f"from 1 to {have - 1}")
    if not texts:
        raise ValueError("--student-ffn ranks neurons on the training texts, and there are none")
    layers = encoder_layers(student.encoder)
    activity = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]

    def tap(index: int):
        def keep(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            activity[index] += output.detach().abs().reshape(-1, output.shape[-1]).sum(0).float().cpu()
        return keep

    handles = [layer.intermediate.register_forward_hook(tap(i)) for i, layer in enumerate(layers)]
    try:
        student.run(list(texts))
    finally:
        for handle in handles:
            handle.remove()
    for layer, active in zip(layers, activity):
        into, out = layer.intermediate.dense, layer.output.dense
        keep = torch.argsort(active * out.weight.detach().float().cpu().norm(dim=0), descending=True)[:width].sort().values
        layer.intermediate.dense = prune_linear_layer(into, keep, dim=0)
        layer.output.dense = prune_linear_layer(out, keep, dim=1)
    config.intermediate_size = width
    return student


def layer_numbers(layers: int | Sequence[int], have: int, encoder: str = "model") -> list[int]:
    """The numbers, from 1, of the layers ``layers`` keeps of an ``encoder`` with ``have`` layers: a count
    keeps the first ones. Raises a ValueError naming the layer count when a layer is missing, and when
    a number repeats or comes out of order.

    Example:
        >>> layer_numbers(3, 6), layer_numbers([1, 3, 6], 6)
        ([1, 2, 3], [1, 3, 6])
    """
    where = f"the source encoder ({encoder}) has {have} layers"
    if isinstance(layers, int):
        if not 1 <= layers <= have:
            raise ValueError(f"--student-layers {layers}: {where}; choose from 1 to {have}")
        return list(range(1, layers + 1))
    keep = list(layers)
    named = ",".join(map(str, keep))
    if not keep or any(not 1 <= n <= have for n in keep):
        raise ValueError(f"--student-layers {named}: {where}; number them from 1 to {have}")
    if any(b <= a for a, b in zip(keep, keep[1:])):
        raise ValueError(f"--student-layers {named}: give each layer once, in increasing order")
    return keep


def parse_layers(text: str) -> int | list[int]:
    """``--student-layers``: a count (``3``) or layer numbers from 1 (``1,3,4,5,6``).

    Example:
        >>> parse_layers("3"), parse_layers("1,3,6")
        (3, [1, 3, 6])
    """
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--student-layers {text!r}: give a count (3) or layer numbers from 1 (1,3,4,5,6)") from None
    return numbers[0] if "," not in text else numbers


class DistillationTrainer(Trainer):
    """A :class:`Trainer` whose loss also pulls each head toward the teacher's answers.

    ``train`` may mix rows with gold labels and rows without (``Example.labels`` empty): the teacher
    labels every row, gold counts only where given. The teacher's answers are computed once and kept
    beside the checkpoints, so a resumed run neither recomputes them nor trains on different ones.
    Several teachers (a sequence) answer as one: each head's probabilities averaged over them (an
    ensemble's answer); the text-vector and layer terms learn from the first.
    """

    def __init__(self, model: EarshotModel, teacher: EarshotModel | Sequence[EarshotModel], train: Sequence[Example],
                 validation: Sequence[Example], config: TrainingConfig,
                 distillation: DistillationConfig | None = None) -> None:
        if config.recipe not in ("auto", "fine-tune"):
            raise ValueError(f"distillation trains on the teacher's answers for every row; --recipe {config.recipe} "
                             "does not apply (leave it at auto or fine-tune)")
        self.teachers = [teacher] if isinstance(teacher, EarshotModel) else list(teacher)
        if not self.teachers:
            raise ValueError("distillation needs a teacher")
        student_heads = _head_set(model)
        for one in self.teachers:
            if _head_set(one) != student_heads:
                raise ValueError(f"the student's heads {sorted(student_heads)} differ from teacher {one.version}'s "
                                 f"{sorted(_head_set(one))}: a student learns the teacher's heads and labels")
        distillation = distillation or DistillationConfig()
        if config.frozen_layers and distillation.hidden_weight:
            raise ValueError("--frozen-layers and --hidden-weight do not combine: the layer term needs every student "
                             "layer's states from each step; leave one of them out")
        super().__init__(model, train, validation, config)
        self.teacher = self.teachers[0]
        self.distillation = distillation
        self._soft: dict[str, torch.Tensor] = {}
        self._labelled: dict[str, torch.Tensor] = {}
        self._teacher_embedding = torch.zeros(0)

    def recipe(self) -> str:
        return "fine-tune"

    def train(self, resume: bool = False):  # type: ignore[override]
        answers = self._teacher_answers(resume)
        temperature = self.distillation.temperature
        for head in self.model.config.heads:
            soft = soften(answers[head.name], head.kind, temperature)
            self._soft[head.name] = torch.from_numpy(soft).to(self.device)
            # A multi head's gold is "none of its labels" unless the row leaves the head out entirely.
            self._labelled[head.name] = torch.tensor([e.labels.get(head.name) is not None
                                                      for e in self.train_examples], dtype=torch.bool)
        self._teacher_embedding = torch.from_numpy(answers[EMBEDDING]).to(self.device)
        if not self.distillation.hidden_weight:
            return super().train(resume=resume)
        self._token_rows = self._shared_token_rows()
        self.teacher.eval()
        pairs = layer_pairs(len(encoder_layers(self.model.encoder)), len(encoder_layers(self.teacher.encoder)))
        self._student_taps = LayerTaps(self.model.encoder, [s for s, _ in pairs])
        self._teacher_taps = LayerTaps(self.teacher.encoder, [t for _, t in pairs])
        try:
            return super().train(resume=resume)
        finally:
            self._student_taps.remove()
            self._teacher_taps.remove()

    def _shared_token_rows(self) -> list[list[int]]:
        """The training texts' token ids, checked to be the same for student and teacher (the layer
        term compares them token by token), as are their widths."""
        width, teacher_width = self.model.encoder.config.hidden_size, self.teacher.encoder.config.hidden_size
        if width != teacher_width:
            raise ValueError(f"--hidden-weight compares the student's token states with the teacher's: the student is "
                             f"{width} wide and the teacher {teacher_width}; use a --student-layers student or "
                             "--hidden-weight 0")
        texts = [e.text for e in self.train_examples]
        rows = self.model.encode(texts).input_ids
        for i, (mine, theirs) in enumerate(zip(rows, self.teacher.encode(texts).input_ids)):
            if mine != theirs:
                raise ValueError(f"--hidden-weight needs the teacher's tokenizer: training row {i} has "
                                 f"{len(mine)} student tokens and {len(theirs)} teacher tokens; use a "
                                 "--student-layers student or --hidden-weight 0")
        return rows

    def _teacher_answers(self, resume: bool) -> dict[str, np.ndarray]:
        """The teachers' probabilities (by head name, averaged over teachers) and the first teacher's text
        vectors (``embedding``) for every training text, read back on resume when they are the same
        teachers' answers for the same texts."""
        texts = [e.text for e in self.train_examples]
        key = sha256(*[one.version or "" for one in self.teachers], *texts)
        cache = self.checkpoint_dir / TEACHER_FILE
        if resume and cache.is_file():
            stored = load_file(cache)
            if bytes(stored.pop("__key__")).decode() == key and EMBEDDING in stored:
                logger.info("resume: the teacher's answers read from %s", cache)
                return stored
        answers: dict[str, np.ndarray] = {}
        for one in self.teachers:
            logger.info("the teacher (%s) labels %d training texts", one.version, len(texts))
            given = one.predict_proba(texts)  # one pass: every head's probabilities and the text vectors
            for name, values in given.scores.items():
                answers[name] = answers.get(name, 0) + values.astype(np.float64) / len(self.teachers)
            answers.setdefault(EMBEDDING, given.embeddings)
        answers = {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in answers.items()}
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            save_file({**answers, "__key__": np.frombuffer(key.encode(), dtype=np.uint8).copy()}, str(tmp))
        return answers

    def _losses(self, targets: dict[str, torch.Tensor]) -> dict[str, nn.Module]:
        # Class weights count the rows with gold only: unlabelled rows are not "none of the labels".
        return super()._losses({name: gold[self._labelled[name]] for name, gold in targets.items()})

    def _fingerprint(self) -> dict[str, Any]:
        return {**super()._fingerprint(), "teachers": [one.version for one in self.teachers],
                "distillation": asdict(self.distillation)}

    def _loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], batch: list[int],
              losses: dict[str, nn.Module]) -> torch.Tensor:
        weight, temperature = self.distillation.gold_weight, self.distillation.temperature
        rows = torch.tensor(batch)
        soft_loss = outputs["embedding"].new_zeros((), dtype=torch.float32)
        for head in self.model.config.heads:
            logits = outputs[head.name].float() / temperature
            soft = self._soft[head.name][rows.to(self.device)]
            part = head.behaviour.soft_loss(logits, soft, self.config)
            soft_loss = soft_loss + temperature ** 2 * part
        vector_loss = soft_loss.new_zeros(())
        if self.distillation.embedding_weight:
            vector_loss = self.distillation.embedding_weight * embedding_loss(
                outputs[EMBEDDING].float(), self._teacher_embedding[rows.to(self.device)])
        if self.distillation.hidden_weight:
            vector_loss = vector_loss + self.distillation.hidden_weight * self._hidden_loss(batch)
        if weight == 0:
            return soft_loss + vector_loss
        gold_loss = soft_loss.new_zeros(())
        for head in self.model.config.heads:
            # Gold counts on the rows that have this head's labels (unlabelled rows have none).
            keep = self._labelled[head.name][rows]
            if keep.any():
                gold = targets[head.name][rows[keep]].to(self.device)
                gold_loss = gold_loss + self._head_loss(head, outputs[head.name][keep.to(self.device)].float(), gold,
                                                        losses[head.name])
        return weight * gold_loss + (1 - weight) * soft_loss + vector_loss

    def _hidden_loss(self, batch: list[int]) -> torch.Tensor:
        """The layer term for the batch the student has just run: the teacher runs the same rows (the
        same packing, hence the same token cells), and each tapped pair of layers is compared."""
        rows = [self._token_rows[i] for i in batch]
        with torch.no_grad():
            self.teacher.forward_rows(rows)
        input_ids = self.model.pass_inputs(rows)["input_ids"]
        real = torch.from_numpy(input_ids != (self.model.tokenizer.pad_token_id or 0)).to(self.device)
        pairs = zip(self._student_taps.take(), self._teacher_taps.take())
        return torch.stack([token_state_loss(mine, theirs, real) for mine, theirs in pairs]).mean()


class LayerTaps:
    """Forward hooks keeping the token states that chosen layers of an encoder returned last.

    Example:
        >>> taps = LayerTaps(model.encoder, [1, 2])
        >>> model.forward_rows(rows); first, second = taps.take(); taps.remove()
    """

    def __init__(self, encoder: nn.Module, indices: Sequence[int]) -> None:
        layers = encoder_layers(encoder)
        self.indices = list(indices)
        self._states: dict[int, torch.Tensor] = {}
        self._handles = [layers[i].register_forward_hook(self._keeper(i)) for i in self.indices]

    def _keeper(self, index: int):
        def keep(module: nn.Module, inputs: Any, output: Any) -> None:
            self._states[index] = output[0] if isinstance(output, tuple) else output
        return keep

    def take(self) -> list[torch.Tensor]:
        """The kept states in ``indices`` order, then forgotten (they hold the step's graph)."""
        states, self._states = self._states, {}
        return [states[i] for i in self.indices]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def layer_pairs(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) layer indices from 0: student layer ``j`` of ``m`` (from 1) learns teacher
    layer ``ceil(j * n / m)``, so the last learns the last.

    Example:
        >>> layer_pairs(3, 6)
        [(0, 1), (1, 3), (2, 5)]
    """
    return [(j - 1, math.ceil(j * teacher_layers / student_layers) - 1) for j in range(1, student_layers + 1)]


def token_state_loss(student: torch.Tensor, teacher: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cosine`` between student and teacher token states ``(rows, width, hidden)`` over the
    cells that hold a real token (``real``; padding cells hold nothing to learn).

    Example:
        >>> float(token_state_loss(torch.ones(1, 2, 3), 2 * torch.ones(1, 2, 3), torch.tensor([[True, False]])))
        0.0
    """
    cosine = F.cosine_similarity(student.float(), teacher.float(), dim=-1)
    return (1 - cosine)[real].mean()


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """How far a batch of student text vectors is from the teacher's: ``1 - cosine`` when both are
    as wide, else the mean squared difference of the two batch cosine-similarity matrices.

    Example:
        >>> float(embedding_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])))
        0.0
    """
    if student.shape[-1] == teacher.shape[-1]:
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    return F.mse_loss(student @ student.T, teacher @ teacher.T)


def soften(probabilities: np.ndarray, kind: str, temperature: float) -> np.ndarray:
    """A head's probabilities as they would be with logits divided by ``temperature``.

    Single heads: softmax(log p / T); multi heads: sigmoid(logit(p) / T), each label alone.

    Example:
        >>> soften(np.array([[0.8, 0.2]]), "single", 2.0).round(3)
        array([[0.667, 0.333]], dtype=float32)
    """
    return head_kind(kind).soften(probabilities, temperature)


def load_teacher(path: str | Path, device: str | torch.device | None = None) -> EarshotModel:
    """The teacher model, in float32 with torch (its exact answers, not an int8 approximation); also
    how an earshot folder given as ``--student-base`` is loaded (``student_start``)."""
    teacher = EarshotModel.from_pretrained(path, device=device, backend="torch")
    teacher.to(dtype=torch.float32)
    return teacher
