"""Helpers shared by the benchmarks."""

from __future__ import annotations

import tempfile
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
