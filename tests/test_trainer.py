"""Training on the tiny model: it learns, checkpoints, resumes to the same result, validates config."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import earshot.training.trainer as trainer_module
import earshot.model.modeling as modeling
from earshot.model import EarshotModel
from earshot.model.heads import ranking_loss
from earshot.training import ColumnMapping, HeadColumn, Trainer, TrainingConfig, read_examples, split_validation
from earshot.training.frozen import FrozenLayers
from earshot.training.optimizer import adamw

MAPPING = ColumnMapping(text="text", heads=(HeadColumn("sentiment", "single", "sentiment"),
                                            HeadColumn("pain_points", "multi", "pain_points")))


def _fresh(tiny_base: Path, data) -> EarshotModel:
    torch.manual_seed(0)
    return EarshotModel.from_base(str(tiny_base), data.heads(MAPPING), max_length=32)


def _config(out: Path, **overrides) -> TrainingConfig:
    settings = dict(output_dir=str(out), recipe="fine-tune", epochs=3, batch_size=16, learning_rate=2e-3,
                    head_learning_rate=1e-2, patience=0, progress=False)
    return TrainingConfig(**{**settings, **overrides})


_base_config = _config


@pytest.fixture()
def split(feedback_csv: Path):
    data = read_examples(feedback_csv, MAPPING)
    return data, *split_validation(data.examples, 0.25, seed=3)


def test_training_learns_and_writes_a_loadable_model(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, validation = split
    model = _fresh(tiny_base, data)
    untrained, _ = Trainer(model, train, validation, _config(tmp_path / "x")).evaluate_validation()
    result = Trainer(model, train, validation, _config(tmp_path / "run", epochs=4)).train()
    assert result.best_score > 0.85
    assert result.validation_metrics["sentiment"]["accuracy"] > untrained["sentiment"]["accuracy"]
    loaded = EarshotModel.from_pretrained(tmp_path / "run", device="cpu")
    assert loaded.config.provenance["best_epoch"] == result.best_epoch
    pain = loaded.config.head("pain_points")
    assert pain.thresholds != {label: 0.5 for label in pain.labels}  # tuned
    assert loaded.version == model.version
    assert not (tmp_path / "run" / "checkpoints").exists()  # removed after success
    texts = [e.text for e in validation]
    np.testing.assert_allclose(loaded.predict_proba(texts)["pain_points"], model.predict_proba(texts)["pain_points"],
                               atol=1e-6)


def test_saved_weights_have_the_asked_dtype_whatever_device_trained(tiny_base: Path, split, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU, loading casts to half precision for inference; the saved model must not inherit that.

    No GPU here, so the cast is simulated: every load behaves as on an accelerator (fp16).
    """
    data, train, validation = split
    monkeypatch.setattr(modeling, "inference_dtype", lambda device: torch.float16)
    Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "f32", epochs=1)).train()
    assert {t.dtype for t in load_file(tmp_path / "f32" / "model.safetensors").values()
            if t.is_floating_point()} == {torch.float32}
    Trainer(_fresh(tiny_base, data), train, validation,
            _config(tmp_path / "f16", epochs=1, save_dtype="float16")).train()
    assert {t.dtype for t in load_file(tmp_path / "f16" / "model.safetensors").values()
            if t.is_floating_point()} == {torch.float16}


def test_a_third_head_trains_in_the_same_pass(tiny_base: Path, tmp_path: Path) -> None:
    rows = pd.read_csv(Path(__file__).parent / "data" / "feedback.csv", keep_default_na=False)
    rows["praise_points"] = ["crew" if "crew" in t else ("app" if "app" in t else "") for t in rows["text"]]
    path = tmp_path / "three.csv"
    rows.to_csv(path, index=False)
    mapping = ColumnMapping(heads=(*MAPPING.heads, HeadColumn.parse("praise_points:multi:praise_points")))
    data = read_examples(path, mapping)
    train, validation = split_validation(data.examples, 0.25, seed=3)
    torch.manual_seed(0)
    model = EarshotModel.from_base(str(tiny_base), data.heads(mapping), max_length=32)
    result = Trainer(model, train, validation, _config(tmp_path / "run", epochs=2)).train()
    assert set(result.validation_metrics) == {"sentiment", "pain_points", "praise_points"}
    assert result.validation_metrics["praise_points"]["per_label"].keys() == {"app", "crew"}
    assert set(EarshotModel.from_pretrained(tmp_path / "run").predict(["the crew"])[0].heads) == {
        "sentiment", "pain_points", "praise_points"}


@pytest.mark.parametrize("frozen_layers", [0, 1])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_base: Path, split, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, frozen_layers: int) -> None:
    data, train, validation = split
    _config = functools.partial(_base_config, frozen_layers=frozen_layers)
    Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "straight")).train()

    real_save = trainer_module.save_checkpoint

    def save_then_die(folder, model, optimizer, scheduler, state):
        path = real_save(folder, model, optimizer, scheduler, state)
        if state.epoch == 2:
            raise KeyboardInterrupt("simulated crash after epoch 2")
        return path

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "crashed")).train()
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    assert (tmp_path / "crashed" / "checkpoints" / "epoch-0002").is_dir()

    # a different random init proves the weights come from the checkpoint, not the constructor
    torch.manual_seed(123)
    resumed_model = EarshotModel.from_base(str(tiny_base), data.heads(MAPPING), max_length=32)
    result = Trainer(resumed_model, train, validation, _config(tmp_path / "crashed")).train(resume=True)
    assert result.epochs_run == 3
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "crashed" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_resume_with_other_data_is_refused(tiny_base: Path, split, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data, train, validation = split
    config = _config(tmp_path / "run", epochs=2, keep_checkpoints=True)
    Trainer(_fresh(tiny_base, data), train, validation, config).train()
    with pytest.raises(ValueError, match=r"cannot resume .*\['data_sha256', 'train_rows'\]"):
        Trainer(_fresh(tiny_base, data), train[:-5], validation, config).train(resume=True)


def test_early_stopping_stops(tiny_base: Path, split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, train, validation = split
    scores = iter([0.5, 0.4, 0.3, 0.9, 0.9])
    monkeypatch.setattr(trainer_module, "validation_score", lambda metrics, heads: next(scores))
    result = Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "r", epochs=5, patience=2)).train()
    assert result.epochs_run == 3 and result.best_epoch == 1


def test_small_gains_keep_their_model_but_do_not_buy_more_epochs(tiny_base: Path, split, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data, train, validation = split
    scores = iter([0.5, 0.52, 0.6, 0.61, 0.615, 0.9])
    monkeypatch.setattr(trainer_module, "validation_score", lambda metrics, heads: next(scores))
    config = _config(tmp_path / "r", epochs=6, patience=2, min_improvement=0.05)
    result = Trainer(_fresh(tiny_base, data), train, validation, config).train()
    # 0.52 and 0.61 are kept as the best so far but count as bad epochs; 0.6 beats 0.5 by more than 0.05.
    assert (result.epochs_run, result.best_epoch) == (5, 5)
    assert result.best_score == pytest.approx(0.615)


def test_rows_without_sentiment_still_train_pain_points(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, validation = split
    unlabelled = [type(e)(text=e.text, labels={**e.labels, "sentiment": None}, row=e.row) for e in train]
    model = _fresh(tiny_base, data)
    before = model.heads["pain_points"].weight.detach().clone()
    sentiment_before = model.heads["sentiment"].weight.detach().clone()
    Trainer(model, unlabelled, validation, _config(tmp_path / "r", epochs=1)).train()
    assert not torch.equal(model.heads["pain_points"].weight, before)
    assert torch.equal(model.heads["sentiment"].weight, sentiment_before)  # no sentiment label, no gradient


def test_probed_heads_start_fine_tuning_from_a_linear_probe_scored_as_epoch_zero(tiny_base: Path, split,
                                                                                 tmp_path: Path) -> None:
    data, train, validation = split
    model = _fresh(tiny_base, data)
    random_heads, _ = Trainer(model, train, validation, _config(tmp_path / "x")).evaluate_validation()
    result = Trainer(model, train, validation, _config(tmp_path / "r", epochs=1, probe_heads=True)).train()
    assert [entry["epoch"] for entry in result.history] == [0, 1]
    probe = result.history[0]["validation_score"]
    untrained = trainer_module.validation_score(random_heads, model.config.heads)
    assert probe > untrained + 0.1  # the fitted heads already read the base encoder's vectors


def test_without_probed_heads_fine_tuning_starts_at_epoch_one(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, validation = split
    result = Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "r", epochs=1)).train()
    assert [entry["epoch"] for entry in result.history] == [1]


@pytest.mark.parametrize("fields, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"learning_rate": 2.0}, r"learning_rate must be in \(0, 1\)"),
    ({"class_weighting": "auto"}, "class_weighting must be one of"),
    ({"patience": -1}, "patience must be 0"),
    ({"min_improvement": 1.5}, r"min_improvement must be in \[0, 1\)"),
    ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
    ({"ranking_loss_weight": -1.0}, "ranking_loss_weight must be >= 0"),
    ({"save_dtype": "int8"}, "save_dtype must be one of"),
    ({"threshold_shrinkage": -5.0}, "threshold_shrinkage must be >= 0"),
    ({"frozen_from_epoch": 0}, "frozen_from_epoch must be a positive integer"),
    ({"probe_heads": True, "recipe": "few-shot"}, "probe_heads is for the fine-tune recipe"),
])
def test_config_validates_itself(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingConfig(output_dir="x", **fields)


def test_ranking_loss_is_cross_entropy_on_single_label_rows_and_ignores_rows_without_labels() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.1, 3.0], [1.0, 1.0, 1.0]])
    gold = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    expected_first = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    expected_third = -torch.log(torch.tensor(2.0 / 3.0))  # two gold labels share the softmax mass
    assert torch.allclose(ranking_loss(logits, gold), (expected_first + expected_third) / 2)
    assert ranking_loss(logits, torch.zeros_like(gold)).item() == 0.0


def test_ranking_loss_moves_the_pain_point_head(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, validation = split
    heads = []
    for weight in (0.0, 1.0):
        model = _fresh(tiny_base, data)
        Trainer(model, train, validation, _config(tmp_path / f"w{weight}", epochs=1,
                                                  ranking_loss_weight=weight)).train()
        heads.append(model.heads["pain_points"].weight.detach().clone())
    assert not torch.allclose(heads[0], heads[1])


@pytest.mark.parametrize("amx, mixed, expected", [(True, True, torch.bfloat16), (True, False, torch.float32),
                                                  (False, True, torch.float32)])
def test_training_runs_forward_passes_in_bfloat16_on_a_cpu_with_amx(tiny_base: Path, split, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, amx: bool,
                                                                   mixed: bool, expected: torch.dtype) -> None:
    """Only the training steps' forward passes change dtype: the weights stay fp32, and validation and
    the saved model run in fp32."""
    import earshot.model.device as device_module

    monkeypatch.setattr(device_module, "bf16_matrix_units", lambda: amx)
    data, train, validation = split
    model = _fresh(tiny_base, data)
    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}
    # A projection's output: layer norms run in fp32 under autocast anyway.
    model.encoder.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, out: seen[module.training].add(out.dtype))
    result = Trainer(model, train, validation, _config(tmp_path / "run", epochs=2, mixed_precision=mixed)).train()
    assert seen == {True: {expected}, False: {torch.float32}}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert np.isfinite(result.history[-1]["train_loss"]) and result.best_score > 0.5
    precision = EarshotModel.from_pretrained(tmp_path / "run").config.provenance["precision"]
    assert precision == ("bfloat16 mixed" if expected == torch.bfloat16 else "float32")


def test_adamw_is_fused_where_torch_has_the_kernel_and_updates_as_the_loop_does() -> None:
    torch.manual_seed(0)
    fused_layer, loop_layer = torch.nn.Linear(8, 3), torch.nn.Linear(8, 3)
    loop_layer.load_state_dict(fused_layer.state_dict())
    groups = [{"params": [fused_layer.weight], "weight_decay": 0.01}, {"params": [fused_layer.bias], "weight_decay": 0.0}]
    fused = adamw(groups, lr=1e-2)
    loop = torch.optim.AdamW([{"params": [loop_layer.weight], "weight_decay": 0.01},
                              {"params": [loop_layer.bias], "weight_decay": 0.0}], lr=1e-2, foreach=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for _ in range(5):
        x = torch.randn(4, 8)
        for layer, optimizer in ((fused_layer, fused), (loop_layer, loop)):
            optimizer.zero_grad()
            layer(x).pow(2).sum().backward()
            optimizer.step()
    torch.testing.assert_close(fused_layer.weight, loop_layer.weight, rtol=1e-5, atol=1e-6)
    # A device without a fused kernel (here: meta tensors) gets the plain loop instead of an error.
    assert not adamw(torch.nn.Linear(2, 2, device="meta").parameters(), lr=1e-3).defaults["fused"]


def test_frozen_layers_answer_as_the_whole_encoder_and_train_only_the_layers_above(tiny_base: Path, split,
                                                                                    tmp_path: Path) -> None:
    data, train, validation = split
    model = _fresh(tiny_base, data)
    rows = model.encode([e.text for e in train[:20]]).input_ids
    frozen = FrozenLayers(model, rows, 1)
    model.eval()  # no dropout: the cached lower layer and the upper one give the whole encoder's answer
    with torch.no_grad():
        whole, parts = model.forward_rows([rows[i] for i in (3, 0, 7)]), frozen.forward_rows([3, 0, 7])
    for name in whole:
        torch.testing.assert_close(parts[name], whole[name], rtol=1e-5, atol=1e-5, msg=name)
    frozen.release()

    before = {name: p.detach().clone() for name, p in _fresh(tiny_base, data).named_parameters()}
    model = _fresh(tiny_base, data)
    Trainer(model, train, validation, _config(tmp_path / "frozen", frozen_layers=1, epochs=2)).train()
    trained = load_file(tmp_path / "frozen" / "model.safetensors")
    # Everything of the encoder but its upper layer stays: embeddings, lower layer, pooler.
    upper = [n for n in before if n.startswith("encoder.encoder.layer.1.")]
    lower = [n for n in before if n.startswith("encoder.") and n not in upper]
    assert upper and any(n.startswith("encoder.encoder.layer.0.") for n in lower)
    for name in lower:
        torch.testing.assert_close(trained[name], before[name], rtol=0, atol=0, msg=name)
    assert all(not torch.equal(trained[name], before[name]) for name in upper if name.endswith("weight"))
    assert all(p.requires_grad for p in model.parameters())  # released: the model trains whole again


def test_frozen_layers_stay_through_the_contrastive_stage(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, validation = split
    before = {name: p.detach().clone() for name, p in _fresh(tiny_base, data).named_parameters()}
    model = _fresh(tiny_base, data)
    Trainer(model, train, validation, _config(tmp_path / "few", recipe="few-shot", frozen_layers=1,
                                              contrastive_steps=6, few_shot_epochs=1)).train()
    trained = load_file(tmp_path / "few" / "model.safetensors")
    upper = [n for n in before if n.startswith("encoder.encoder.layer.1.") and n.endswith("weight")]
    lower = [n for n in before if n.startswith("encoder.") and not n.startswith("encoder.encoder.layer.1.")]
    for name in lower:
        torch.testing.assert_close(trained[name], before[name], rtol=0, atol=0, msg=name)
    assert upper and all(not torch.equal(trained[name], before[name]) for name in upper)
    assert all(p.requires_grad for p in model.parameters())


def test_layers_frozen_from_a_later_epoch_train_before_it_and_stay_after(tiny_base: Path, split, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 trains every layer; the cache is taken from the lower layers as epoch 1 left them, once."""
    import earshot.training.trainer as trainer_module

    data, train, validation = split
    initial = {name: p.detach().clone() for name, p in _fresh(tiny_base, data).named_parameters()}
    lower = [n for n in initial if n.startswith("encoder.") and not n.startswith("encoder.encoder.layer.1.")]
    at_freeze: list[dict[str, torch.Tensor]] = []

    class Recorded(FrozenLayers):
        def __init__(self, model, rows, count) -> None:  # noqa: ANN001 - the parent's signature
            at_freeze.append({n: p.detach().clone() for n, p in model.named_parameters() if n in lower})
            super().__init__(model, rows, count)

    monkeypatch.setattr(trainer_module, "FrozenLayers", Recorded)
    model = _fresh(tiny_base, data)
    Trainer(model, train, validation, _config(tmp_path / "late", frozen_layers=1, frozen_from_epoch=2, epochs=3,
                                              patience=0)).train()
    assert len(at_freeze) == 1
    trained = load_file(tmp_path / "late" / "model.safetensors")
    weights = [n for n in lower if n.endswith("weight") and "LayerNorm" not in n and "pooler" not in n]
    assert weights and all(not torch.equal(at_freeze[0][n], initial[n]) for n in weights)  # epoch 1 trained them
    for name in weights:  # and epochs 2 and 3 left them as epoch 1 did
        torch.testing.assert_close(trained[name], at_freeze[0][name].to(trained[name].dtype), rtol=0, atol=0, msg=name)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("kind", ["mpnet", "distilbert"])
def test_frozen_layers_answer_as_the_whole_encoder_on_other_layouts(tiny_base: Path, split, kind: str) -> None:
    """MPNet shares a relative-position table across layers; DistilBERT keeps its layers under
    ``transformer`` and hands its embeddings ``inputs_embeds`` by position."""
    from transformers import DistilBertConfig, DistilBertModel, MPNetConfig, MPNetModel

    data, train, _ = split
    tiny = _fresh(tiny_base, data)
    size = dict(vocab_size=tiny.tokenizer.vocab_size, max_position_embeddings=64)
    encoder = (MPNetModel(MPNetConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                      intermediate_size=64, **size)) if kind == "mpnet" else
               DistilBertModel(DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64, **size)))
    model = EarshotModel(encoder, tiny.tokenizer, tiny.config)
    rows = model.encode([e.text for e in train[:12]]).input_ids
    frozen = FrozenLayers(model, rows, 2)
    model.eval()
    with torch.no_grad():
        whole, parts = model.forward_rows([rows[i] for i in (5, 1, 9)]), frozen.forward_rows([5, 1, 9])
    for name in whole:
        torch.testing.assert_close(parts[name], whole[name], rtol=1e-5, atol=1e-5, msg=name)
    frozen.release()


def test_frozen_layers_must_leave_one_layer_to_train(tiny_base: Path, split, tmp_path: Path) -> None:
    data, train, _ = split
    model = _fresh(tiny_base, data)
    with pytest.raises(ValueError, match="between 1 and 1 .*has 2 layers"):
        FrozenLayers(model, model.encode([train[0].text]).input_ids, 2)
    with pytest.raises(ValueError, match="between 1 and 1"):  # refused before the run trains anything
        Trainer(model, train, [], _config(tmp_path / "r", frozen_layers=2, recipe="few-shot")).train()
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="frozen_layers must be 0"):
        _config(Path("x"), frozen_layers=-1)


def test_a_checkpoint_from_before_a_setting_existed_resumes(tiny_base: Path, split, tmp_path: Path) -> None:
    """An interrupted run of an earlier earshot trained at the default of every setting added since."""
    data, train, validation = split
    config = _config(tmp_path / "run", epochs=2, keep_checkpoints=True)
    Trainer(_fresh(tiny_base, data), train, validation, config).train()
    for state_file in (tmp_path / "run" / "checkpoints").glob("*/state.json"):
        meta = json.loads(state_file.read_text())
        del meta["training_state"]["fingerprint"]["settings"]["frozen_layers"]
        state_file.write_text(json.dumps(meta))
    assert Trainer(_fresh(tiny_base, data), train, validation, config).train(resume=True).epochs_run == 2
    with pytest.raises(ValueError, match=r"\['settings'\] differ"):
        Trainer(_fresh(tiny_base, data), train, validation, _config(tmp_path / "run", epochs=2, frozen_layers=1,
                                                                    keep_checkpoints=True)).train(resume=True)
