"""Learning from a few examples per label: a contrastive stage on the encoder, then heads fitted on it.

SetFit's method (Tunstall et al., 2022), in earshot's one-encoder, many-heads model: first the encoder
is tuned so that texts sharing labels embed close together and others apart; then each head, a
linear layer on the pooled embedding, is fitted as a regularised logistic regression on the frozen
embeddings. SetFit trains on sampled pairs, one pair per two encoder passes; here each batch holds a
few labels with several texts each and every pair in it counts (a supervised contrastive loss,
Khosla et al., 2020), so one pass of 64 texts gives some 2,000 pairs.

Example:
    >>> contrastive_stage(model, examples, steps=200)      # the encoder moves, the heads do not
    >>> fit_heads(model, examples)                          # each head: logistic regression on embeddings
"""

from __future__ import annotations

import logging
import math
import random
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from earshot.model import EarshotModel
from earshot.model.heads import Head, HeadLayer, head_floors, head_kind

from .data import Example, head_gold, label_sets, rows_by_label
from .frozen import FrozenLayers
from .optimizer import adamw

logger = logging.getLogger(__name__)

# The contrastive stage's batch and how many times it sees each text by default.
CONTRASTIVE_BATCH = 64
CONTRASTIVE_PASSES = 20


def pair_weights(sets: Sequence[frozenset[int] | None]) -> torch.Tensor:
    """How much each pair in a batch counts as a positive: the Jaccard overlap of their label sets.

    1 for the same single label (or the same set, the empty one included), 0 for disjoint sets or
    where either label is unknown.

    Example:
        >>> pair_weights([frozenset({0}), frozenset({0, 1}), None])[0, 1]
        tensor(0.5000)
    """
    n = len(sets)
    weights = torch.zeros(n, n)
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            if i == j or a is None or b is None:
                continue
            union = a | b
            weights[i, j] = 1.0 if not union else len(a & b) / len(union)
    return weights


def supervised_contrastive_loss(embeddings: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over anchors with a positive of -sum_j w_ij log softmax_j(cos_ij / T) / sum_j w_ij.

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
        >>> w = pair_weights([frozenset({0}), frozenset({0}), frozenset({1})])
        >>> supervised_contrastive_loss(z, w, 0.1) < supervised_contrastive_loss(z.flip(0), w, 0.1)
        tensor(True)
    """
    z = F.normalize(embeddings.float(), dim=-1)
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    log_p = (z @ z.T / temperature).masked_fill(self_mask, float("-inf")).log_softmax(dim=-1)
    log_p = log_p.masked_fill(self_mask, 0.0)
    weights = weights.to(z.device)
    mass = weights.sum(dim=1)
    anchors = mass > 0
    if not anchors.any():
        return z.new_zeros(())
    return -((log_p * weights).sum(dim=1)[anchors] / mass[anchors]).mean()


class BalancedBatches:
    """Batches of ``batch_size / per_label`` labels x ``per_label`` texts, one head at a time in turn.

    A plain shuffle of 8 examples per label over 77 labels puts a text beside another of its label
    in less than half of the batches; the contrastive loss learns only from such pairs.
    """

    def __init__(self, sets: dict[str, list[frozenset[int] | None]], batch_size: int, per_label: int,
                 seed: int) -> None:
        self.rng = random.Random(seed)
        self.batch_size, self.per_label = batch_size, per_label
        # Per head: each label with at least two rows (a pair to learn from) -> those rows.
        self.pools: list[dict[int, list[int]]] = []
        for head_sets in sets.values():
            pool = {label: rows for label, rows in rows_by_label(head_sets).items() if len(rows) >= 2}
            if pool:
                self.pools.append(pool)
        self.turn = 0

    def __bool__(self) -> bool:
        return bool(self.pools)

    def next(self) -> list[int]:
        pool = self.pools[self.turn % len(self.pools)]
        self.turn += 1
        labels = list(pool)
        self.rng.shuffle(labels)
        batch: list[int] = []
        seen: set[int] = set()
        for label in labels:
            rows = [r for r in pool[label] if r not in seen]
            take = self.rng.sample(rows, min(self.per_label, len(rows), self.batch_size - len(batch)))
            batch.extend(take)
            seen.update(take)
            if len(batch) >= self.batch_size:
                break
        return batch


def contrastive_stage(model: EarshotModel, examples: Sequence[Example], steps: int, *,
                      batch_size: int = CONTRASTIVE_BATCH,
                      per_label: int = 4, learning_rate: float = 3e-5, temperature: float = 0.05,
                      warmup_ratio: float = 0.1, max_grad_norm: float = 1.0, seed: int = 13,
                      device: torch.device | None = None, progress: bool = True,
                      frozen: FrozenLayers | None = None) -> list[float]:
    """Tune ``model.encoder`` for ``steps`` batches so that texts sharing labels embed together.

    Every head's labels count, one head a batch in turn. Returns the loss of each step. With ``frozen``
    (built over these examples' token rows, in order), the layers it froze stay and each step runs only
    the layers above, on their cached output.
    """
    device = device or model.device
    heads = model.config.heads
    sets = {head.name: label_sets(head, examples) for head in heads}
    batches = BalancedBatches(sets, batch_size, per_label, seed)
    if not batches or steps <= 0:
        logger.info("contrastive stage skipped: no label has two examples")
        return []
    # A frozen encoder's rows are cached already: no need to tokenise the texts again.
    ids = model.encode([e.text for e in examples]).input_ids if frozen is None else []
    model.to(device)
    parameters = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = adamw(parameters, lr=learning_rate, weight_decay=0.01)
    warmup = max(1, int(warmup_ratio * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (steps - step) / steps))
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="contrastive", unit="batch", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        batch = batches.next()
        outputs = frozen.forward_rows(batch) if frozen is not None else model.forward_rows([ids[i] for i in batch])
        embeddings = outputs["embedding"]
        weights = sum(pair_weights([sets[h.name][i] for i in batch]) for h in heads) / len(heads)
        loss = supervised_contrastive_loss(embeddings, weights, temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    model.eval()
    return losses


def fit_heads(model: EarshotModel, examples: Sequence[Example], c: float = 10.0, iterations: int = 100) -> None:
    """Set every head to the L2-regularised logistic regression of its labels on the frozen embeddings.

    The same objective as scikit-learn's ``LogisticRegression(C=c)`` (multinomial for single heads,
    one binary model per label for multi heads), solved with L-BFGS in torch. A head whose labels are
    all unknown keeps its weights.
    """
    embeddings = torch.from_numpy(model.embed([e.text for e in examples]))
    for head in model.config.heads:
        gold = torch.from_numpy(head_gold(head, examples))
        known = torch.from_numpy(head.behaviour.labelled(gold.numpy()))
        if not known.any():
            continue
        layer: nn.Linear = model.heads[head.name]
        weight, bias = fit_logistic(embeddings[known], gold[known], head.kind, len(head.labels), c, iterations)
        with torch.no_grad():
            layer.weight.copy_(weight.to(layer.weight))
            layer.bias.copy_(bias.to(layer.bias))


# A label's logit is this many times a text's cosine similarity with its description (a temperature:
# softmax answers about as sure as a trained head's, not a measured figure).
PROTOTYPE_SCALE = 20.0


def prototype_heads(model: EarshotModel, examples: Sequence[Example], scale: float = PROTOTYPE_SCALE,
                    catch_all_floor: float | None = None) -> None:
    """Set every head so that each label's logit follows the cosine similarity of a text with the mean
    vector of that label's examples (a taxonomy's descriptions): the nearest description wins.

    Logits are ``scale * (cos - c)``, with ``c`` the head's mean, over its labels, of a label's cosine with
    the nearest other label's description: a multi head's label is over 0.5 when a text is about as near
    its description as the nearest two descriptions are to each other. One ``c`` for every label of a
    head, so a softmax is unmoved by it. A single head's catch-all label (``catch_all_labels``) also
    wins every text whose cosine with each other label's description is below ``catch_all_floor``
    (default ``CATCH_ALL_FLOOR``), through a floor on its logit. A label without examples gets a zero row and the lowest logit. The pooled vectors are not unit length, so the rows are divided by their mean
    length.

    Example:
        >>> prototype_heads(model, taxonomy.examples())
    """
    vectors = torch.from_numpy(model.embed([e.text for e in examples])).double()
    length = vectors.norm(dim=1).mean()
    for head in model.config.heads:
        sets = label_sets(head, examples)
        centres = torch.zeros(len(head.labels), vectors.shape[1], dtype=torch.float64)
        for label in range(len(head.labels)):
            members = [row for row, labels in enumerate(sets) if labels and label in labels]
            if members:
                centre = vectors[members].mean(dim=0)
                centres[label] = centre / centre.norm()
        present = centres.norm(dim=1) > 0
        alike = (centres @ centres.T).masked_fill(~present[None, :], -1.0)
        alike.fill_diagonal_(-1.0)
        nearest_other = alike.max(dim=1).values[present]
        shift = float(nearest_other.clamp(min=0.0).mean()) if len(nearest_other) > 1 else 0.0
        catch_all = catch_all_labels(head)
        if catch_all:
            floor = CATCH_ALL_FLOOR if catch_all_floor is None else catch_all_floor
            head.floors = {label: (scale * floor / float(length), -scale * shift) for label in catch_all}
            logger.info("head %r: %s takes every text whose cosine with each other label's description is "
                        "below %.2f (the catch-all)", head.name, " and ".join(map(repr, catch_all)), floor)
        layer: HeadLayer = model.heads[head.name]
        layer.set_floors(head_floors(head))
        with torch.no_grad():
            layer.weight.copy_((scale * centres / length).to(layer.weight))
            layer.bias.copy_(torch.where(present, -scale * shift, -scale).to(layer.bias))


# A catch-all label ("other") wins when no other label's description is within this cosine of a text:
# its own description ("anything else") is too vague to be any text's nearest. Chosen on half of the
# written app reviews of benchmarks/names and scored on the other half (docs/experiments.md).
CATCH_ALL_FLOOR = 0.30
# Label names that mean "none of the other labels", compared in lower case with '_' and '-' as spaces.
CATCH_ALL_NAMES = frozenset({"other", "others", "none", "misc", "miscellaneous", "something else",
                             "anything else", "none of the above", "none of these", "oos", "out of scope",
                             "unknown", "n/a", "not applicable"})


def catch_all_labels(head: Head) -> list[str]:
    """The labels of a single head that stand for "none of the others": those its taxonomy names
    (``Head.catch_all``), else those named so (``other``, ``misc``, ``OTHER``, ``other_feedback`` ...).
    The names recipe floors their logit. A multi head has none (its empty label set says "none").

    Example:
        >>> catch_all_labels(Head("category", "single", ["bug", "Other", "other_feedback"]))
        ['Other', 'other_feedback']
        >>> catch_all_labels(Head("category", "single", ["bug", "other", "general"], catch_all=("general",)))
        ['general']
    """
    if not head.behaviour.takes_catch_all:
        return []
    if head.catch_all is not None:
        return list(head.catch_all)
    found = []
    for label in head.labels:
        name = " ".join(label.lower().replace("_", " ").replace("-", " ").split())
        if name in CATCH_ALL_NAMES or name.startswith("other "):
            found.append(label)
    return found if len(found) < len(head.labels) else []


def fit_logistic(x: torch.Tensor, gold: torch.Tensor, kind: str, labels: int, c: float,
                 iterations: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` minimising sum of losses + ||weight||^2 / (2c) over rows ``x``.

    ``gold``: label indices (single) or a 0/1 matrix (multi); ``labels``: how many the head has (a
    label without examples gets zero weights and a bias that the others' pull down).

    Example:
        >>> w, b = fit_logistic(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1]), "single", 2, 10.0)
        >>> (torch.tensor([[0.0], [1.0]]) @ w.T + b).argmax(1).tolist()
        [0, 1]
    """
    x = x.double()
    weight = torch.zeros(labels, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(labels, dtype=torch.float64, requires_grad=True)
    loss_of = head_kind(kind).logistic_loss
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of(x @ weight.T + bias, gold) + weight.pow(2).sum() / (2 * c)
        loss.backward()
        return loss

    optimizer.step(objective)
    return weight.detach().float(), bias.detach().float()


def contrastive_passes_steps(examples: int) -> int:
    """The steps of :data:`CONTRASTIVE_PASSES` passes over ``examples`` texts, :data:`CONTRASTIVE_BATCH` a step."""
    return math.ceil(CONTRASTIVE_PASSES * examples / CONTRASTIVE_BATCH)


def default_contrastive_steps(examples: int) -> int:
    """Sized by the data: about 20 passes over the examples at 64 a batch, between 100 and 400 steps."""
    return int(min(400, max(100, contrastive_passes_steps(examples))))
