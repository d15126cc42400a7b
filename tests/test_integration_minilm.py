"""The real MiniLM weights: fine-tune on the fixture, round-trip, and the shipped default model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from earshot.model import DEFAULT_MODEL_DIR, EarshotModel
from earshot.training.taxonomy import read_taxonomy
from earshot.training import ColumnMapping, HeadColumn, Trainer, TrainingConfig, read_examples, split_validation

pytestmark = pytest.mark.integration


def test_fine_tune_minilm_and_round_trip(minilm_path: str, feedback_csv: Path, tmp_path: Path) -> None:
    mapping = ColumnMapping(heads=(HeadColumn("sentiment", "single", "sentiment"),
                                   HeadColumn("pain_points", "multi", "pain_points")))
    data = read_examples(feedback_csv, mapping)
    train, validation = split_validation(data.examples, 0.2, seed=5)
    model = EarshotModel.from_base(minilm_path, data.heads(mapping), max_length=64)
    result = Trainer(model, train, validation, TrainingConfig(output_dir=str(tmp_path / "m"), recipe="fine-tune",
                                                              epochs=2, batch_size=16, progress=False)).train()
    assert result.epochs_run == 2
    # two epochs are enough for the easy sentiment classes of the fixture, on texts it never trained on
    assert result.validation_metrics["sentiment"]["accuracy"] >= 0.8

    texts = [e.text for e in validation]
    loaded = EarshotModel.from_pretrained(tmp_path / "m", device="cpu")
    assert [p.to_dict() for p in loaded.predict(texts)] == [p.to_dict() for p in model.predict(texts)]
    assert loaded.config.base_model == minilm_path
    assert (tmp_path / "m" / "tokenizer.json").is_file()


def test_default_model_loads_offline_and_is_right_on_clear_cases() -> None:
    model = EarshotModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    taxonomy = read_taxonomy(DEFAULT_MODEL_DIR / "taxonomy.yaml")
    for head in model.config.heads:  # the taxonomy shipped beside the model names every label of every head
        assert head.labels == [label.name for label in taxonomy.head(head.name).labels], head.name
    texts = ["The parcel arrived crushed and the vase inside was broken",
             "@Railbright my train is delayed 3 hours again",
             "I was charged twice for the same order, please fix this",
             "Thank you, the staff were wonderful!",
             "My flight got cancelled and I cannot rebook online",
             "@Skyvia great, thanks!",  # sincere thanks, not the sarcasm below
             "Thanks @Parcelo for losing my parcel, really appreciated"]
    predictions = model.predict(texts)
    assert [p["sentiment"].label for p in predictions] == ["negative", "negative", "negative", "positive", "negative",
                                                           "positive", "negative"]
    assert predictions[6]["pain_points"].label == "Lost or damaged item"
    assert predictions[0]["pain_points"].label == "Lost or damaged item"
    assert predictions[1]["pain_points"].label == "Delays"
    assert predictions[2]["pain_points"].label == "Billing and charges"
    assert predictions[3]["pain_points"].labels == []
    scores = predictions[4]["pain_points"].scores
    assert max(scores, key=scores.get) == "Cancellation"
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert "## Metrics" in card and "## Sources" in card
    assert not re.search(r"\bNC\b|non-?commercial", card, re.IGNORECASE)  # any company may use the default


def test_default_model_batches_and_single_calls_agree() -> None:
    model = EarshotModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    texts = ["parcel lost", "@shop " + "very long complaint about the delay " * 40, "@shop thanks!"]
    together = model.predict_proba(texts, batch_size=2)
    alone = [model.predict_proba([t]) for t in texts]
    for i, single in enumerate(alone):
        np.testing.assert_allclose(together["pain_points"][i], single["pain_points"][0], atol=1e-5)
    assert together.truncated.tolist() == [False, True, False]


def test_a_taxonomy_from_names_alone_answers_from_the_shipped_aligned_encoder(tmp_path: Path) -> None:
    from earshot.cli import main
    from earshot.model import NAMES_MODEL_DIR

    taxonomy = tmp_path / "apps.yaml"
    taxonomy.write_text("""heads:
  topic:
    kind: single
    labels:
      - {name: bug, description: "The app crashes, freezes or shows errors."}
      - {name: battery, description: "The app drains the battery."}
      - {name: privacy, description: "The app collects or shares personal data."}
      - {name: wish, description: "The user asks for a new feature."}
""")
    assert main(["train", "--taxonomy", str(taxonomy), "--output", str(tmp_path / "m"), "--no-progress"]) == 0
    model = EarshotModel.from_pretrained(tmp_path / "m", device="cpu")
    assert model.config.base_model.startswith(str(NAMES_MODEL_DIR))
    texts = ["keeps closing as soon as i open it", "my phone is dead by lunch since i installed this",
             "why does a torch app need my contacts and location??", "please add a dark mode"]
    assert [p["topic"].label for p in model.predict(texts)] == ["bug", "battery", "privacy", "wish"]
    card = (NAMES_MODEL_DIR / "README.md").read_text()
    assert "| banking77 | CC BY 4.0 |" in card
    assert not re.search(r"\bNC\b|non-?commercial", card, re.IGNORECASE)
