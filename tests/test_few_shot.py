"""The few-shot recipe: contrastive loss and batches, heads fitted as logistic regressions, the trainer's choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from earshot.model import EarshotModel
from earshot.training import ColumnMapping, HeadColumn, Trainer, TrainingConfig, read_examples, split_validation
from earshot.training.few_shot import (BalancedBatches, contrastive_stage, fit_heads, fit_logistic, label_sets,
                                       pair_weights, supervised_contrastive_loss)

MAPPING = ColumnMapping(text="text", heads=(HeadColumn("sentiment", "single", "sentiment"),
                                            HeadColumn("pain_points", "multi", "pain_points")))


@pytest.fixture()
def data(feedback_csv: Path):
    return read_examples(feedback_csv, MAPPING)


def _model(tiny_base: Path, data) -> EarshotModel:
    torch.manual_seed(0)
    return EarshotModel.from_base(str(tiny_base), data.heads(MAPPING), max_length=32)


def test_pair_weights_are_label_overlap_and_unknown_pairs_count_nothing() -> None:
    weights = pair_weights([frozenset({0}), frozenset({0, 1}), frozenset(), frozenset(), None])
    assert weights[0, 1] == 0.5 and weights[1, 0] == 0.5
    assert weights[2, 3] == 1.0  # "none of these" is a shared answer
    assert weights[0, 2] == 0.0 and weights[4].sum() == 0 and weights[:, 4].sum() == 0
    assert torch.all(weights.diagonal() == 0)


def test_contrastive_loss_is_lower_when_same_labels_embed_together() -> None:
    weights = pair_weights([frozenset({0}), frozenset({0}), frozenset({1}), frozenset({1})])
    together = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = together[[0, 2, 1, 3]]
    assert supervised_contrastive_loss(together, weights, 0.1) < supervised_contrastive_loss(mixed, weights, 0.1)
    alone = pair_weights([frozenset({0}), frozenset({1})])  # no anchor has a positive: nothing to learn
    assert supervised_contrastive_loss(torch.randn(2, 4), alone, 0.1) == 0


def test_balanced_batches_hold_several_texts_of_each_label() -> None:
    sets = {"intent": [frozenset({i % 10}) for i in range(200)]}
    batch = BalancedBatches(sets, batch_size=16, per_label=4, seed=1).next()
    labels = [next(iter(sets["intent"][i])) for i in batch]
    assert len(batch) == 16 and len(set(batch)) == 16
    assert sorted(np.bincount(labels, minlength=10)[np.bincount(labels, minlength=10) > 0]) == [4, 4, 4, 4]


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_fit_logistic_solves_what_scikit_learn_solves(kind: str) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    if kind == "single":
        gold = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int) + (x[:, 1] > 1).astype(int)
        reference = LogisticRegression(C=3.0, max_iter=5000, tol=1e-8).fit(x, gold).predict_proba(x)
        weight, bias = fit_logistic(torch.from_numpy(x), torch.from_numpy(gold), kind, 3, c=3.0)
        ours = torch.softmax(torch.from_numpy(x).float() @ weight.T + bias, dim=1).numpy()
    else:
        gold = np.stack([x[:, 0] > 0, x[:, 2] + rng.normal(size=120) > 0.5], axis=1).astype(float)
        reference = np.stack([LogisticRegression(C=3.0, max_iter=5000, tol=1e-8).fit(x, gold[:, j]).predict_proba(x)[:, 1]
                              for j in range(2)], axis=1)
        weight, bias = fit_logistic(torch.from_numpy(x), torch.from_numpy(gold), kind, 2, c=3.0)
        ours = torch.sigmoid(torch.from_numpy(x).float() @ weight.T + bias).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_contrastive_stage_pulls_labels_together_and_fitted_heads_learn(tiny_base: Path, data) -> None:
    model = _model(tiny_base, data)
    examples = data.examples
    sentiment = np.array([next(iter(s)) for s in label_sets(model.config.head("sentiment"), examples)])

    def gap() -> float:
        z = F.normalize(torch.from_numpy(model.embed([e.text for e in examples])), dim=1)
        cosine = (z @ z.T).numpy()
        same = sentiment[:, None] == sentiment[None, :]
        np.fill_diagonal(same, False)
        return float(cosine[same].mean() - cosine[~same].mean())

    before = gap()
    weights_before = model.heads["sentiment"].weight.detach().clone()
    losses = contrastive_stage(model, examples, steps=30, batch_size=16, learning_rate=1e-3, progress=False)
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert gap() > before + 0.05
    assert torch.equal(model.heads["sentiment"].weight, weights_before)  # the stage moves the encoder only
    fit_heads(model, examples)
    predicted = model.predict_proba([e.text for e in examples])["sentiment"].argmax(axis=1)
    assert (predicted == sentiment).mean() > 0.9


def test_auto_recipe_takes_few_shot_on_small_data_and_records_its_start(tiny_base: Path, data, tmp_path: Path) -> None:
    train, validation = split_validation(data.examples, 0.25, seed=3)
    config = TrainingConfig(output_dir=str(tmp_path / "m"), contrastive_steps=10, few_shot_epochs=1,
                            contrastive_learning_rate=1e-3, batch_size=16, progress=False)
    trainer = Trainer(_model(tiny_base, data), train, validation, config)
    assert max(trainer.rows_per_label().values()) < config.few_shot_max_per_label and trainer.few_shot()
    result = trainer.train()
    assert [entry["epoch"] for entry in result.history] == [0, 1]
    assert result.history[0]["sentiment_accuracy"] > 0.7  # the fitted heads work before any fine-tuning
    fine_tune = TrainingConfig(output_dir="x", few_shot_max_per_label=1)
    assert not Trainer(_model(tiny_base, data), train, validation, fine_tune).few_shot()


@pytest.mark.parametrize("rows, few_shot, epochs", [(3149, False, 26), (10401, False, 8), (1444, False, 40),
                                                     (616, True, 4)])
def test_epochs_are_sized_by_steps(rows: int, few_shot: bool, epochs: int) -> None:
    config = TrainingConfig(output_dir="m")
    assert config.planned_epochs(-(-rows // config.batch_size), few_shot) == epochs
    assert TrainingConfig(output_dir="m", epochs=3).planned_epochs(5, few_shot) == 3
    assert config.planned_patience(33) == 6 and config.planned_patience(4) == 2
    assert TrainingConfig(output_dir="m", patience=0).planned_patience(33) == 0


@pytest.mark.parametrize("fields, message", [
    ({"recipe": "setfit"}, "recipe must be one of"),
    ({"contrastive_steps": -1}, "contrastive_steps must be 0"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"epochs": 0}, "epochs must be a positive integer"),
])
def test_bad_few_shot_settings_are_named(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingConfig(output_dir="m", **fields)


def names_model(tiny_base: Path, descriptions: dict[str, str]) -> tuple[EarshotModel, list]:
    """A tiny model with a single head ``issue`` and a multi head ``tags`` over the descriptions' labels,
    and the descriptions as taxonomy examples (row 0)."""
    from earshot.model import Head
    from earshot.training.data import Example

    torch.manual_seed(0)
    model = EarshotModel.from_base(str(tiny_base), [Head("issue", "single", list(descriptions)),
                                                     Head("tags", "multi", list(descriptions))], max_length=32)
    return model, [Example(text, {"issue": label, "tags": (label,)}, row=0) for label, text in descriptions.items()]


def test_a_taxonomy_without_rows_answers_with_the_nearest_description(tiny_base: Path, tmp_path: Path) -> None:
    from earshot.training.few_shot import prototype_heads

    descriptions = {"late": "my flight was delayed for hours", "rude": "staff shouted at my kids at the gate",
                    "bag": "my bag never arrived in denver"}
    model, examples = names_model(tiny_base, descriptions)
    trainer = Trainer(model, examples, [], TrainingConfig(output_dir=str(tmp_path / "m"), progress=False))
    assert trainer.recipe() == "names"  # every row is a description: no data rows
    prototype_heads(model, examples)
    texts = list(descriptions.values())
    vectors = model.embed(texts)
    cosine = F.normalize(torch.from_numpy(vectors), dim=1)
    nearest = (cosine @ cosine.T).argmax(dim=1).tolist()
    answers = model.predict(texts)
    assert [a["issue"].label for a in answers] == [list(descriptions)[i] for i in nearest] == list(descriptions)
    # a description is its own multi-head label, the surest one
    assert [a["tags"].labels[0].label for a in answers] == list(descriptions)


def test_a_taxonomy_from_names_alone_starts_from_the_aligned_encoder(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from earshot.model import DEFAULT_BASE_MODEL, NAMES_MODEL_DIR
    from earshot.training import pipeline
    from earshot.training.data import Example

    descriptions = [Example("a delayed parcel", {"issue": "late"}, row=0)]
    data = [*descriptions, Example("where is my box", {"issue": "late"}, row=2)]
    config = TrainingConfig(output_dir=str(tmp_path / "m"))
    assert pipeline.default_base(config, descriptions) == str(NAMES_MODEL_DIR)  # shipped with the package
    assert pipeline.default_base(config, data) == DEFAULT_BASE_MODEL  # rows: the recipes measured on MiniLM
    assert pipeline.default_base(TrainingConfig(output_dir="m", recipe="names"), data) == str(NAMES_MODEL_DIR)
    assert pipeline.default_base(TrainingConfig(output_dir="m", recipe="few-shot"), descriptions) == DEFAULT_BASE_MODEL
    monkeypatch.setattr(pipeline, "NAMES_MODEL_DIR", tmp_path / "not-installed")
    assert pipeline.default_base(config, descriptions) == DEFAULT_BASE_MODEL


def test_a_catch_all_label_wins_when_no_description_is_near(tiny_base: Path, tmp_path: Path) -> None:
    import json

    from earshot.training.few_shot import catch_all_labels, prototype_heads

    descriptions = {"late": "my flight was delayed for hours", "bag": "my bag never arrived in denver",
                    "other": "anything else"}
    model, examples = names_model(tiny_base, descriptions)
    assert catch_all_labels(model.config.heads[0]) == ["other"] and catch_all_labels(model.config.heads[1]) == []
    texts = [*descriptions.values(), "the staff", "gate shouted kids", "denver hours", "my flight", "kids", "bag"]
    vectors = F.normalize(torch.from_numpy(model.embed(texts)), dim=1)
    centres = F.normalize(torch.from_numpy(model.embed(list(descriptions.values()))), dim=1)
    cosine = vectors @ centres.T
    # A random tiny encoder's cosines are all high: a floor between its texts' nearest specific cosines.
    nearest = cosine[2:, :2].max(dim=1).values.sort().values
    floor = float(nearest[len(nearest) // 2 - 1: len(nearest) // 2 + 1].mean())  # between two texts: no tie
    prototype_heads(model, examples, catch_all_floor=floor)
    assert model.heads["issue"].slope is not None and model.heads["tags"].slope is None
    # The rule, exactly: the nearest description, unless no other label's description reaches the floor.
    floored = cosine.clone()
    floored[:, 2] = floored[:, 2].clamp(min=floor)
    expected = [list(descriptions)[i] for i in floored.argmax(dim=1).tolist()]
    answers = [a["issue"].label for a in model.predict(texts)]
    assert answers == expected
    assert answers[:2] == ["late", "bag"]  # a text at its own description keeps its label
    far = cosine[:, :2].max(dim=1).values < floor
    assert far.any(), "the check needs a text far from both specific descriptions"
    assert all(a == "other" for a, f in zip(answers, far.tolist()) if f)

    folder = tmp_path / "names-model"
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    (issue,) = [head for head in saved["earshot"]["heads"] if head["name"] == "issue"]
    assert list(issue["floors"]) == ["other"]
    for backend in ("torch", "onnx"):
        again = EarshotModel.from_pretrained(folder, backend=backend)
        assert [a["issue"].label for a in again.predict(texts)] == answers, backend


def test_a_resumed_names_run_puts_the_catch_all_floor_back(tiny_base: Path) -> None:
    from earshot.model import Head
    from earshot.training.few_shot import prototype_heads
    from earshot.training.trainer import restore_floors

    descriptions = {"late": "my flight was delayed for hours", "bag": "my bag never arrived in denver",
                    "other": "anything else"}
    model, examples = names_model(tiny_base, descriptions)
    prototype_heads(model, examples, catch_all_floor=0.999)  # above every cosine: the catch-all takes all
    texts = ["the staff", "denver hours", "kids at the gate"]
    assert {a["issue"].label for a in model.predict(texts)} == {"other"}
    saved = {h.name: {label: list(floor) for label, floor in h.floors.items()} for h in model.config.heads if h.floors}
    fresh = EarshotModel.from_base(str(tiny_base), [Head(h.name, h.kind, h.labels) for h in model.config.heads],
                                   max_length=32)
    fresh.load_state_dict(model.state_dict(), strict=True)  # what a checkpoint restores: weights, no floors
    assert {a["issue"].label for a in fresh.predict(texts)} != {"other"}
    restore_floors(fresh, saved)
    assert [a["issue"].label for a in fresh.predict(texts)] == ["other"] * 3
    assert fresh.config.heads[0].floors == model.config.heads[0].floors


def test_a_retrain_from_a_model_sizes_its_stage_by_the_new_rows_and_freezes_a_third_of_the_layers() -> None:
    from earshot.training.config import continue_settings
    from earshot.training.few_shot import default_contrastive_steps

    # A first model's stage never falls under 100 steps; a continuation's makes 20 passes over the new rows
    # only, so 150 answers cost the same stage over 60 or over 600 labelled rows.
    assert default_contrastive_steps(210) == 100
    assert continue_settings(150, 210, layers=6)["contrastive_steps"] == continue_settings(150, 766, 6)[
        "contrastive_steps"] == 47
    assert continue_settings(640, 2000, 6)["contrastive_steps"] == 200
    assert [continue_settings(150, 766, n)["frozen_layers"] for n in (2, 6, 12)] == [0, 2, 4]
    assert TrainingConfig(output_dir="x", **continue_settings(0, 766, 6)).contrastive_steps == 0
