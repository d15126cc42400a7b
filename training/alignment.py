"""Texts near the descriptions of their labels: the encoder that taxonomies from names start from.

A taxonomy written as names and one-line descriptions, with no labelled row, is answered by the
nearest description (the ``names`` recipe). all-MiniLM-L6-v2 learned sentence similarity, not how a
customer's words match a label's definition. ``align_descriptions`` fine-tunes an encoder on texts
paired with the descriptions of their labels, from every taxonomy the project has mapped: each
source's own labels, described in ``training/general/mappings/``, and the general taxonomy's labels
on the examples written for earshot. A taxonomy nobody trained on then finds its texts better
(leave-one-source-out figures: docs/experiments.md, "Taxonomies from names alone").

The loss is symmetric in-batch contrastive (InfoNCE, as sentence-transformers'
MultipleNegativesRankingLoss): each text against every description in its batch, each description
against every text; a text's positives are all its labels' descriptions.

Example:
    >>> table = pd.read_csv("/tmp/general/train.csv", keep_default_na=False)
    >>> pairs = described_texts(table, exclude=["hint3"])
    >>> losses = align_descriptions(model, pairs, AlignmentConfig())
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from .general_data import MAPPINGS_DIR, TAXONOMY_PATH, WRITTEN, read_mapping
from .taxonomy import read_taxonomy

if TYPE_CHECKING:
    import torch

    from earshot.model import EarshotModel

logger = logging.getLogger("earshot.training")

# Heads of the general taxonomy whose descriptions pair with the written examples' labels. Sentiment's
# three descriptions would pair with every row and teach polarity, not topics.
GENERAL_TOPIC_HEADS = ("pain_points", "praise_points")


@dataclass
class AlignmentConfig:
    """How ``align_descriptions`` trains.

    ``per_label``: at most this many texts of each source label (large sources would drown small
    ones); ``written_rows``: at most this many written examples with a topic label; ``scale``: the
    cosine similarities' multiplier before the softmax (sentence-transformers' default, 20).
    """

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    scale: float = 20.0
    max_length: int = 64
    per_label: int = 40
    written_rows: int = 2000
    seed: int = 13
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise ValueError(f"alignment epochs must be over 0, got {self.epochs}")
        # A batch of one has no other description to tell its text from.
        for name, least in (("batch_size", 2), ("max_length", 1), ("per_label", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"alignment {name} must be at least {least}, got {getattr(self, name)}")
        if self.written_rows < 0:
            raise ValueError(f"alignment written_rows must be 0 or more, got {self.written_rows}")
        if not (self.learning_rate > 0 and self.scale > 0):
            raise ValueError(f"alignment learning_rate and scale must be over 0, got {self.learning_rate}, {self.scale}")


@dataclass(frozen=True)
class DescribedText:
    """A text and the descriptions of its labels (one or more), and the source it came from."""

    text: str
    descriptions: tuple[str, ...]
    source: str = ""


def described_texts(table: pd.DataFrame, exclude: Sequence[str] = (), config: AlignmentConfig | None = None,
                    mappings_dir: str | Path = MAPPINGS_DIR, taxonomy_path: str | Path = TAXONOMY_PATH
                    ) -> list[DescribedText]:
    """Texts of a general training table (``earshot general-data``) with their labels' descriptions.

    A source row's descriptions are those of its ``source_labels`` in the source's mapping table; a
    written row's are those of its general pain and praise points. Sources in ``exclude`` are left out
    (to score a taxonomy nobody trained on). Rows without a described label are skipped.
    """
    config = config or AlignmentConfig()
    missing = [c for c in ("text", "source", "source_labels", *GENERAL_TOPIC_HEADS) if c not in table.columns]
    if missing:
        raise ValueError(f"the alignment table lacks the columns {missing} (found {list(table.columns)}): "
                         "give a training table written by `earshot general-data`")
    taxonomy = read_taxonomy(taxonomy_path)
    general = {(head.name, label.name): label.description for head in taxonomy.heads
               if head.name in GENERAL_TOPIC_HEADS for label in head.labels if label.description}
    unknown = sorted(set(exclude) - set(table.source))
    if unknown:
        raise ValueError(f"--exclude-source {unknown}: no such source in the table (found {sorted(set(table.source))})")
    pairs: list[DescribedText] = []
    rows = table[~table.source.isin(list(exclude))].drop_duplicates("text")
    for source, group in rows.groupby("source", sort=True):
        if source == WRITTEN:
            pairs += _written_pairs(group, general, config)
        else:
            pairs += _source_pairs(group, read_mapping(str(source), mappings_dir, taxonomy_path), config.per_label,
                                   str(source))
    return pairs


def _source_pairs(group: pd.DataFrame, mapping: dict, per_label: int, source: str) -> list[DescribedText]:
    taken: dict[str, int] = {}
    pairs = []
    for text, cell in zip(group.text, group.source_labels):
        labels = [label for label in str(cell).split(";") if label in mapping and mapping[label].description]
        if not labels:
            continue
        taken[labels[0]] = taken.get(labels[0], 0) + 1
        if taken[labels[0]] <= per_label:
            pairs.append(DescribedText(text, tuple(mapping[label].description for label in labels), source))
    return pairs


def _written_pairs(group: pd.DataFrame, general: dict[tuple[str, str], str], config: AlignmentConfig) -> list[DescribedText]:
    pairs = []
    for row in group.sample(frac=1.0, random_state=config.seed).itertuples(index=False):
        descriptions = tuple(general[(head, label)] for head in GENERAL_TOPIC_HEADS
                             for label in str(getattr(row, head)).split(";") if (head, label) in general)
        if descriptions:
            pairs.append(DescribedText(row.text, descriptions, WRITTEN))
    return pairs[: config.written_rows]


def align_descriptions(model: EarshotModel, pairs: Sequence[DescribedText], config: AlignmentConfig) -> list[float]:
    """Fine-tune ``model``'s encoder in place so texts land near their labels' descriptions; the losses
    per step. The heads are untouched (a ``names`` recipe sets them from descriptions afterwards)."""
    import torch
    from tqdm.auto import tqdm

    from .optimizer import adamw

    if len(pairs) < 2:
        raise ValueError(f"alignment needs at least 2 described texts (each learns against the others), got {len(pairs)}")
    batch_size = min(config.batch_size, len(pairs))
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    steps = max(1, math.ceil(len(pairs) / batch_size * config.epochs))
    warmup = max(1, steps // 10)
    encoder = model.encoder
    optimizer = adamw(encoder.parameters(), lr=config.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    encoder.train()
    order: list[int] = []
    losses = []
    for _ in tqdm(range(steps), desc="aligning", unit="batch", disable=not config.progress, dynamic_ncols=True):
        if len(order) < batch_size:
            order += rng.sample(range(len(pairs)), len(pairs))
        batch = [pairs[i] for i in order[:batch_size]]
        del order[:batch_size]
        loss = _batch_loss(model, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    encoder.eval()
    logger.info("aligned on %d described texts: %d steps, loss %.3f -> %.3f", len(pairs), steps,
                sum(losses[:20]) / len(losses[:20]), sum(losses[-20:]) / len(losses[-20:]))
    return losses


def _batch_loss(model: EarshotModel, batch: Sequence[DescribedText], config: AlignmentConfig) -> torch.Tensor:
    import torch

    descriptions = sorted({d for pair in batch for d in pair.descriptions})
    column = {d: i for i, d in enumerate(descriptions)}
    logits = config.scale * _unit_vectors(model, [p.text for p in batch], config) \
        @ _unit_vectors(model, descriptions, config).T
    positive = torch.zeros_like(logits, dtype=torch.bool)
    for row, pair in enumerate(batch):
        positive[row, [column[d] for d in pair.descriptions]] = True
    return (_multi_positive_nce(logits, positive) + _multi_positive_nce(logits.T, positive.T)) / 2


def _multi_positive_nce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(softmax mass on the row's positives)."""
    import torch

    kept = logits.masked_fill(~positive, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(kept, dim=1)).mean()


def _unit_vectors(model: EarshotModel, texts: Sequence[str], config: AlignmentConfig) -> torch.Tensor:
    """The model's pooled vectors of ``texts`` (its own forward pass and pooling), at unit length."""
    import torch

    from earshot.model.modeling import EMBEDDING

    encoded = model.tokenizer(list(texts), padding=True, truncation=True, max_length=config.max_length,
                              return_tensors="pt")
    pooled = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])[EMBEDDING]
    return torch.nn.functional.normalize(pooled, dim=-1)
