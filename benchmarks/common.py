"""Helpers shared by the benchmarks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from earshot.training import ColumnMapping, HeadColumn

# The airline tweets' columns as the default model's heads, "Can't Tell" meaning no pain point.
AIRLINE_MAPPING = ColumnMapping(heads=(HeadColumn("sentiment", "single", "airline_sentiment"),
                                       HeadColumn("pain_points", "multi", "negativereason")),
                                none_labels=("Can't Tell",))


def plain_classifier_folder(model) -> Path:
    """A BertForSequenceClassification folder holding ``model``'s encoder weights and tokenizer.

    The naive baselines run this through `transformers.pipeline`: the same network size as earshot's,
    without earshot's batching, length sorting or other heads.
    """
    from transformers import BertForSequenceClassification

    folder = Path(tempfile.mkdtemp(prefix="naive-model-"))
    config = model.encoder.config
    config.num_labels = max(2, len(model.config.heads[0].labels))
    classifier = BertForSequenceClassification(config)
    classifier.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    classifier.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return folder


@contextmanager
def adamw_loop() -> Iterator[None]:
    """Every training loop inside takes AdamW's plain loop per tensor, as earshot did before its fused
    kernel (the same update rule): the baseline of "What a training step costs: the optimizer"."""
    import torch

    import earshot.training.few_shot as few_shot
    import earshot.training.trainer as trainer

    saved = trainer.adamw, few_shot.adamw
    loop = lambda params, **settings: torch.optim.AdamW(params, foreach=False, fused=False, **settings)  # noqa: E731
    trainer.adamw = few_shot.adamw = loop
    try:
        yield
    finally:
        trainer.adamw, few_shot.adamw = saved
