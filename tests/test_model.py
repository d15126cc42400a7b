"""The model object: one forward pass for both heads, predict/predict_proba, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model import EarshotConfig, EarshotModel

TEXTS = ["my flight was delayed 3 hours", "thank you so much", "I was charged twice for one ticket and "
         "the agent was incredibly rude to me when I called about the refund that never reached my account",
         "is there wifi"]


def test_predict_returns_typed_results_in_input_order(tiny_model: EarshotModel) -> None:
    predictions = tiny_model.predict(TEXTS, batch_size=2)
    one_by_one = [tiny_model.predict([text])[0] for text in TEXTS]
    assert len(predictions) == len(TEXTS)
    for together, alone in zip(predictions, one_by_one):
        assert together.sentiment == alone.sentiment
        assert together.sentiment_scores == pytest.approx(alone.sentiment_scores, abs=1e-5)
        assert together.pain_point_scores == pytest.approx(alone.pain_point_scores, abs=1e-5)
        assert set(together.sentiment_scores) == {"negative", "neutral", "positive"}
        assert sum(together.sentiment_scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert together.sentiment_score == max(together.sentiment_scores.values())


def test_pain_points_follow_per_label_thresholds(tiny_model: EarshotModel) -> None:
    scores = tiny_model.predict(TEXTS[:1])[0].pain_point_scores
    # put one label's threshold just under its score and every other just over
    chosen = "late"
    thresholds = {label: min(max(score + 0.01, 0.01), 0.99) for label, score in scores.items()}
    thresholds[chosen] = max(scores[chosen] - 0.01, 0.01)
    tiny_model.set_thresholds(thresholds)
    found = tiny_model.predict(TEXTS[:1])[0].pain_points
    assert [p.label for p in found] == [chosen]
    assert found[0].score == pytest.approx(scores[chosen])


def test_predict_proba_shapes_and_empty_input(tiny_model: EarshotModel) -> None:
    probabilities = tiny_model.predict_proba(TEXTS)
    assert probabilities.sentiment.shape == (4, 3)
    assert probabilities.pain_points.shape == (4, 4)
    assert ((probabilities.pain_points > 0) & (probabilities.pain_points < 1)).all()
    empty = tiny_model.predict_proba([])
    assert empty.sentiment.shape == (0, 3) and empty.pain_points.shape == (0, 4)


def test_long_text_is_cut_and_flagged(tiny_model: EarshotModel) -> None:
    long_text = " ".join(["delayed"] * 200)
    encoded = tiny_model.encode([long_text, "delayed"])
    assert len(encoded.input_ids[0]) == tiny_model.config.max_length
    assert encoded.input_ids[0][-1] == tiny_model.tokenizer.sep_token_id
    assert [p.truncated for p in tiny_model.predict([long_text, "delayed"])] == [True, False]


def test_text_of_exactly_max_length_is_not_flagged(tiny_model: EarshotModel) -> None:
    limit = tiny_model.config.max_length
    exact = " ".join(["delayed"] * (limit - 2))  # + [CLS] and [SEP]
    assert tiny_model.predict([exact])[0].truncated is False


@pytest.mark.parametrize("bad, message", [
    ([None], r"text 0 is NoneType, not a string"),
    (["ok", "  "], r"text 1 is empty or only whitespace"),
])
def test_bad_texts_are_named(tiny_model: EarshotModel, bad: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.predict(bad)


def test_a_single_string_is_refused(tiny_model: EarshotModel) -> None:
    with pytest.raises(TypeError, match=r"list of texts, not a single string"):
        tiny_model.predict("hello")  # type: ignore[arg-type]


def test_save_and_load_round_trip(tiny_model: EarshotModel, tmp_path: Path) -> None:
    tiny_model.set_thresholds({"billing": 0.3, "late": 0.7, "lost_item": 0.5, "rude_staff": 0.42})
    tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["earshot"]["pain_point_labels"] == ["billing", "late", "lost_item", "rude_staff"]
    assert config["earshot"]["thresholds"]["rude_staff"] == 0.42
    assert config["model_type"] == "bert"  # still readable by transformers.AutoConfig
    assert {"model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    for name in ("model.safetensors", "config.json"):  # a served or shared model folder is read by others
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, name
    loaded = EarshotModel.from_pretrained(tmp_path, device="cpu")
    before, after = tiny_model.predict_proba(TEXTS), loaded.predict_proba(TEXTS)
    np.testing.assert_array_equal(before.sentiment, after.sentiment)
    np.testing.assert_array_equal(before.pain_points, after.pain_points)
    assert loaded.config.thresholds == tiny_model.config.thresholds


def test_float16_save_halves_the_file_and_loads_as_float32(tiny_model: EarshotModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "fp32")
    tiny_model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    assert load_file(tmp_path / "fp16" / "model.safetensors")["sentiment_head.weight"].dtype == torch.float16
    loaded = EarshotModel.from_pretrained(tmp_path / "fp16", device="cpu")
    assert next(loaded.parameters()).dtype == torch.float32
    np.testing.assert_allclose(loaded.predict_proba(TEXTS).sentiment, tiny_model.predict_proba(TEXTS).sentiment,
                               atol=5e-3)


def test_pickle_weights_are_never_loaded(tiny_model: EarshotModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match=r"pytorch_model.bin.*pickle files are not loaded"):
        EarshotModel.from_pretrained(tmp_path)


def test_a_folder_without_earshot_config_is_refused(tiny_base: Path) -> None:
    with pytest.raises(ValueError, match=r"no 'earshot' section"):
        EarshotModel.from_pretrained(tiny_base)


def test_model_without_sentiment_head(tiny_base: Path) -> None:
    model = EarshotModel.from_base(str(tiny_base), [], ["card_lost", "fee"], max_length=16)
    prediction = model.predict(["lost my card"])[0]
    assert prediction.sentiment is None and prediction.sentiment_scores == {}
    assert set(prediction.pain_point_scores) == {"card_lost", "fee"}


@pytest.mark.parametrize("fields, message", [
    ({"sentiment_labels": [], "pain_point_labels": []}, "at least one head"),
    ({"sentiment_labels": ["only"], "pain_point_labels": []}, "at least two classes"),
    ({"sentiment_labels": [], "pain_point_labels": ["a", "a"]}, "duplicate pain-point labels"),
    ({"sentiment_labels": [], "pain_point_labels": ["a"], "thresholds": {"a": 1.5}}, r"must be in \(0, 1\)"),
    ({"sentiment_labels": [], "pain_point_labels": ["a"], "thresholds": {"b": 0.5}}, "unknown pain points"),
])
def test_config_validates_itself(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EarshotConfig(**fields)


def test_config_from_a_newer_earshot_is_refused() -> None:
    with pytest.raises(ValueError, match="newer earshot"):
        EarshotConfig.from_dict({"sentiment_labels": ["a", "b"], "pain_point_labels": [], "format_version": 99})
