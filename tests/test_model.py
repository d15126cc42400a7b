"""The model object: one forward pass for both heads, predict/predict_proba, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_heads
from earshot.model import EarshotConfig, EarshotModel, Head, read_config, version_id

TEXTS = ["my flight was delayed 3 hours", "thank you so much", "I was charged twice for one ticket and "
         "the agent was incredibly rude to me when I called about the refund that never reached my account",
         "is there wifi"]


def test_predict_returns_typed_results_in_input_order(tiny_model: EarshotModel) -> None:
    predictions = tiny_model.predict(TEXTS, batch_size=2)
    one_by_one = [tiny_model.predict([text])[0] for text in TEXTS]
    assert len(predictions) == len(TEXTS)
    for together, alone in zip(predictions, one_by_one):
        assert set(together.heads) == {"sentiment", "pain_points"}
        sentiment = together["sentiment"]
        assert sentiment.label == alone["sentiment"].label
        assert sentiment.scores == pytest.approx(alone["sentiment"].scores, abs=1e-5)
        assert together["pain_points"].scores == pytest.approx(alone["pain_points"].scores, abs=1e-5)
        assert set(sentiment.scores) == {"negative", "neutral", "positive"}
        assert sum(sentiment.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(sentiment.labels) == 1 and sentiment.labels[0].score == max(sentiment.scores.values())


def test_pain_points_follow_per_label_thresholds(tiny_model: EarshotModel) -> None:
    scores = tiny_model.predict(TEXTS[:1])[0]["pain_points"].scores
    # put one label's threshold just under its score and every other just over
    chosen = "late"
    thresholds = {label: min(max(score + 0.01, 0.01), 0.99) for label, score in scores.items()}
    thresholds[chosen] = max(scores[chosen] - 0.01, 0.01)
    tiny_model.set_thresholds({"pain_points": thresholds})
    found = tiny_model.predict(TEXTS[:1])[0]["pain_points"].labels
    assert [p.label for p in found] == [chosen]
    assert found[0].score == pytest.approx(scores[chosen])
    tiny_model.set_thresholds({"pain_points": {"billing": 0.3}})  # the others keep theirs
    assert tiny_model.config.head("pain_points").thresholds == {**thresholds, "billing": 0.3}
    with pytest.raises(ValueError, match=r"\['sentiment'\], which are not heads with thresholds"):
        tiny_model.set_thresholds({"sentiment": {"negative": 0.5}})
    with pytest.raises(ValueError, match="unknown labels"):
        tiny_model.set_thresholds({"pain_points": {"wifi": 0.5}})


def test_predict_proba_shapes_and_empty_input(tiny_model: EarshotModel) -> None:
    probabilities = tiny_model.predict_proba(TEXTS)
    assert probabilities["sentiment"].shape == (4, 3)
    assert probabilities["pain_points"].shape == (4, 4)
    assert ((probabilities["pain_points"] > 0) & (probabilities["pain_points"] < 1)).all()
    assert tiny_model.embed(TEXTS).shape == (4, 32)
    empty = tiny_model.predict_proba([])
    assert empty["sentiment"].shape == (0, 3) and empty["pain_points"].shape == (0, 4)


def test_one_forward_pass_gives_the_embedding_and_every_head(tiny_base: Path) -> None:
    heads = [*tiny_heads(), Head("praise_points", "multi", ["crew", "food"]), Head("channel", "single", ["a", "b"])]
    model = EarshotModel.from_base(str(tiny_base), heads, max_length=32).to_device("cpu").eval()
    input_ids, attention = model.collate(model.encode(TEXTS).input_ids)
    outputs = model(input_ids, attention)
    assert {name: tuple(t.shape) for name, t in outputs.items()} == {
        "embedding": (4, 32), "sentiment": (4, 3), "pain_points": (4, 4), "praise_points": (4, 2), "channel": (4, 2)}
    prediction = model.predict(TEXTS[:1])[0]
    assert list(prediction.heads) == ["sentiment", "pain_points", "praise_points", "channel"]
    assert len(prediction["channel"].labels) == 1 and set(prediction["praise_points"].scores) == {"crew", "food"}


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
    tiny_model.set_thresholds({"pain_points": {"billing": 0.3, "late": 0.7, "lost_item": 0.5, "rude_staff": 0.42}})
    version = tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["earshot"]["heads"][1] == {"name": "pain_points", "kind": "multi",
                                             "labels": ["billing", "late", "lost_item", "rude_staff"],
                                             "thresholds": {"billing": 0.3, "late": 0.7, "lost_item": 0.5,
                                                            "rude_staff": 0.42}}
    assert config["model_type"] == "bert"  # still readable by transformers.AutoConfig
    assert {"model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    for name in ("model.safetensors", "config.json"):  # a served or shared model folder is read by others
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, name
    loaded = EarshotModel.from_pretrained(tmp_path, device="cpu")
    assert loaded.version == version == tiny_model.version and len(version) == 16
    before, after = tiny_model.predict_proba(TEXTS), loaded.predict_proba(TEXTS)
    np.testing.assert_array_equal(before["sentiment"], after["sentiment"])
    np.testing.assert_array_equal(before["pain_points"], after["pain_points"])
    assert loaded.config.heads == tiny_model.config.heads


def test_version_id_follows_weights_and_config_but_not_the_human_label(tiny_model: EarshotModel,
                                                                       tmp_path: Path) -> None:
    first = tiny_model.save_pretrained(tmp_path / "a")
    tiny_model.config.label = "spring release"
    assert tiny_model.save_pretrained(tmp_path / "b") == first
    tiny_model.set_thresholds({"pain_points": {"late": 0.7}})
    assert tiny_model.save_pretrained(tmp_path / "c") != first
    with torch.no_grad():
        tiny_model.heads["sentiment"].bias.add_(0.01)
    assert tiny_model.save_pretrained(tmp_path / "d") not in (first, version_id(tmp_path / "c"))
    assert read_config(tmp_path / "b").label == "spring release"


def test_a_format_1_folder_loads_unchanged_with_the_same_scores(tiny_model: EarshotModel, tmp_path: Path) -> None:
    """Folders saved before heads were data (the shipped default model among them) migrate on read."""
    from safetensors.torch import save_file

    tiny_model.set_thresholds({"pain_points": {"late": 0.7}})
    tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    heads = config["earshot"].pop("heads")
    config["earshot"].update(sentiment_labels=heads[0]["labels"], pain_point_labels=heads[1]["labels"],
                             thresholds=heads[1]["thresholds"], version="0", format_version=1)
    (tmp_path / "config.json").write_text(json.dumps(config))
    state = load_file(tmp_path / "model.safetensors")
    old_names = {"heads.sentiment.": "sentiment_head.", "heads.pain_points.": "pain_point_head."}
    renamed = {}
    for name, tensor in state.items():
        for new, old in old_names.items():
            name = name.replace(new, old)
        renamed[name] = tensor
    save_file(renamed, tmp_path / "model.safetensors")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    loaded = EarshotModel.from_pretrained(tmp_path, device="cpu")
    assert [(h.name, h.kind) for h in loaded.config.heads] == [("sentiment", "single"), ("pain_points", "multi")]
    assert loaded.config.head("pain_points").thresholds["late"] == 0.7
    np.testing.assert_allclose(loaded.predict_proba(TEXTS)["pain_points"], tiny_model.predict_proba(TEXTS)["pain_points"],
                               atol=1e-6)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing rewritten


def test_float16_save_halves_the_file_and_loads_as_float32(tiny_model: EarshotModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "fp32")
    tiny_model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    assert load_file(tmp_path / "fp16" / "model.safetensors")["heads.sentiment.weight"].dtype == torch.float16
    loaded = EarshotModel.from_pretrained(tmp_path / "fp16", device="cpu")
    assert next(loaded.parameters()).dtype == torch.float32
    np.testing.assert_allclose(loaded.predict_proba(TEXTS)["sentiment"],
                               tiny_model.predict_proba(TEXTS)["sentiment"], atol=5e-3)


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
    model = EarshotModel.from_base(str(tiny_base), [Head("pain_points", "multi", ["card_lost", "fee"])], max_length=16)
    prediction = model.predict(["lost my card"])[0]
    assert list(prediction.heads) == ["pain_points"]
    assert set(prediction["pain_points"].scores) == {"card_lost", "fee"}


@pytest.mark.parametrize("heads, message", [
    ([], "at least one head"),
    ([{"name": "sentiment", "kind": "single", "labels": ["only"]}], "at least two labels"),
    ([{"name": "pain_points", "kind": "multi", "labels": ["a", "a"]}], "duplicate labels"),
    ([{"name": "p", "kind": "multi", "labels": ["a"], "thresholds": {"a": 1.5}}], r"must be in \(0, 1\)"),
    ([{"name": "p", "kind": "multi", "labels": ["a"], "thresholds": {"b": 0.5}}], "unknown labels"),
    ([{"name": "p", "kind": "multi", "labels": ["a"]}, {"name": "p", "kind": "single", "labels": ["a", "b"]}],
     "duplicate head names"),
    ([{"name": "embedding", "kind": "multi", "labels": ["a"]}], "not one of"),
])
def test_config_validates_itself(heads: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EarshotConfig(heads=heads)


def test_config_from_a_newer_earshot_is_refused() -> None:
    with pytest.raises(ValueError, match="newer earshot"):
        EarshotConfig.from_dict({"heads": [], "format_version": 99})


def test_config_format_rises_only_for_floored_heads() -> None:
    """A head with catch-all floors needs format 3 (a format-2 reader would ignore the floors and answer
    differently); without floors the config stays format 2, readable by older earshot versions."""
    plain = EarshotConfig(heads=[Head("topic", "single", ["billing", "other"])])
    floored = EarshotConfig(heads=[Head("topic", "single", ["billing", "other"], floors={"other": (2.0, -0.5)})])
    assert plain.to_dict()["format_version"] == 2
    assert floored.to_dict()["format_version"] == 3
    assert EarshotConfig.from_dict(floored.to_dict()).head("topic").floors == {"other": (2.0, -0.5)}
