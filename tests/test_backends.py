"""ONNX and bf16 backends give torch's labels (scores within a stated tolerance); stale exports are handled;
auto picks bf16 on CPUs with bfloat16 matrix units, int8 ONNX on other CPUs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earshot.model import DEFAULT_MODEL_DIR, EarshotModel, version_id
from earshot.model.device import bf16_matrix_units
from earshot.model.onnx_backend import ExportError, export_status as _export_status

AUTO_ON_THIS_CPU = "bf16" if bf16_matrix_units() else "onnx-int8"


def export_status(folder: Path, backend: str) -> str | None:
    return _export_status(folder, version_id(folder), backend)

FP32_TOLERANCE = 1e-4   # same graph, different kernels
INT8_TOLERANCE = 0.06   # int8 weights: scores move a little, labels of clear texts do not
BF16_TOLERANCE = 0.02   # 8 bits of mantissa: scores move by about 1 %


@pytest.fixture()
def no_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU without bfloat16 matrix units, whatever this one has: auto takes int8 ONNX."""
    monkeypatch.setattr("earshot.model.runners.bf16_matrix_units", lambda: False)


def test_onnx_fp32_matches_torch(feedback_texts: list[str], saved_tiny: Path) -> None:
    torch_model = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    onnx_model = EarshotModel.from_pretrained(saved_tiny, backend="onnx")
    assert export_status(saved_tiny, "onnx") is None  # exported on first use, cached beside the model
    texts = feedback_texts
    expected, got = torch_model.predict_proba(texts), onnx_model.predict_proba(texts)
    for head in ("sentiment", "pain_points"):
        np.testing.assert_allclose(got[head], expected[head], atol=FP32_TOLERANCE)
    np.testing.assert_allclose(onnx_model.embed(texts), torch_model.embed(texts), atol=FP32_TOLERANCE)
    assert [p["sentiment"].label for p in onnx_model.predict(texts)] == [
        p["sentiment"].label for p in torch_model.predict(texts)]
    assert onnx_model.version == torch_model.version


def test_stale_export_is_rebuilt(saved_tiny: Path, tiny_model: EarshotModel) -> None:
    EarshotModel.from_pretrained(saved_tiny, backend="onnx")
    tiny_model.heads["sentiment"].bias.data += 1.0  # new weights in the same folder
    tiny_model.save_pretrained(saved_tiny)
    assert "stale" in export_status(saved_tiny, "onnx")
    rebuilt = EarshotModel.from_pretrained(saved_tiny, backend="onnx")
    assert export_status(saved_tiny, "onnx") is None
    reference = EarshotModel.from_pretrained(saved_tiny, device="cpu").predict_proba(["late again"])["sentiment"]
    np.testing.assert_allclose(rebuilt.predict_proba(["late again"])["sentiment"], reference, atol=FP32_TOLERANCE)


def test_missing_export_in_a_read_only_folder_is_reported(saved_tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import earshot.model.onnx_backend as backend

    # root may write anywhere, so the folder is made unwritable in the eyes of the check itself
    monkeypatch.setattr(backend.os, "access", lambda path, mode: False)
    with pytest.raises(ExportError, match=r"no onnx-int8 export .* run `earshot export --model"):
        EarshotModel.from_pretrained(saved_tiny, backend="onnx-int8")


def test_load_runner_refuses_to_rebuild_when_told(saved_tiny: Path) -> None:
    from earshot.model.onnx_backend import load_onnx_runner

    model = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    with pytest.raises(ExportError, match=r"no onnx export in .*earshot export"):
        load_onnx_runner(model, saved_tiny, model.version, "onnx", rebuild=False)


def test_unknown_backend_and_gpu_with_onnx_are_refused(saved_tiny: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'tensorrt'"):
        EarshotModel.from_pretrained(saved_tiny, backend="tensorrt")
    with pytest.raises(ValueError, match=r"runs on the CPU"):
        EarshotModel.from_pretrained(saved_tiny, backend="onnx", device="cuda")


@pytest.mark.integration
def test_int8_gives_torch_labels_on_the_default_model(tmp_path: Path) -> None:
    folder = tmp_path / "default"
    EarshotModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu").save_pretrained(folder)
    texts = ["@united you lost my luggage and nobody can tell me where it is",
             "@SouthwestAir my flight is delayed 3 hours again", "@JetBlue thank you, the crew was wonderful!",
             "@AmericanAir on hold for two hours, customer service is useless",
             "@USAirways the flight attendant was so rude to my mother", "@VirginAmerica what time is boarding?"]
    reference = EarshotModel.from_pretrained(folder, device="cpu")
    int8 = EarshotModel.from_pretrained(folder, backend="onnx-int8")
    expected, got = reference.predict(texts), int8.predict(texts)
    assert [p["sentiment"].label for p in got] == [p["sentiment"].label for p in expected]
    assert [p["pain_points"].label for p in got] == [p["pain_points"].label for p in expected]
    np.testing.assert_allclose(int8.predict_proba(texts)["sentiment"], reference.predict_proba(texts)["sentiment"],
                               atol=INT8_TOLERANCE)


def test_auto_takes_int8_on_the_cpu_with_every_projection_in_int8(saved_tiny: Path, no_bf16_units) -> None:
    import onnx

    model = EarshotModel.from_pretrained(saved_tiny, backend="auto", device="cpu")
    assert model.backend == "onnx-int8" and export_status(saved_tiny, "onnx-int8") is None
    graph = onnx.load(str(saved_tiny / "onnx" / "model-int8.onnx")).graph
    layers = EarshotModel.from_pretrained(saved_tiny, device="cpu").encoder.config.num_hidden_layers
    integer = [node for node in graph.node if node.op_type == "MatMulInteger"]
    assert len(integer) == 6 * layers  # Q, K, V, attention output, FFN in and out of every block
    weights = {tensor.name for tensor in graph.initializer}
    float_matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    assert float_matmuls and not any(set(node.input) & weights for node in float_matmuls)  # activations only
    assert not any(node.op_type == "DynamicQuantizeLinear" for node in graph.node)


def test_int8_answer_does_not_depend_on_the_other_texts_in_the_pass(saved_tiny: Path,
                                                                    feedback_texts: list[str]) -> None:
    model = EarshotModel.from_pretrained(saved_tiny, backend="onnx-int8")
    texts = feedback_texts
    together = model.predict_proba(texts, batch_size=64)
    alone = [model.predict_proba([text]) for text in texts]
    # Activations are quantised per token, so neighbours and padding change nothing beyond the last
    # bit of fp32 kernels run on other shapes (per-pass int8 scales moved scores by up to 0.2).
    for head in ("sentiment", "pain_points"):
        np.testing.assert_allclose(np.concatenate([p[head] for p in alone]), together[head], atol=1e-6)


def test_int8_weight_columns_round_trip_within_half_a_step() -> None:
    from earshot.model.int8 import quantise_columns

    weight = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32) * np.arange(1, 17)
    quantised, scale = quantise_columns(weight)
    assert quantised.dtype == np.int8 and scale.shape == (16,)
    assert np.abs(quantised).max(axis=0).tolist() == [127] * 16  # each column uses its full range
    assert (np.abs(quantised * scale - weight) <= scale / 2 + 1e-6).all()


def test_auto_falls_back_to_torch_with_a_warning_when_it_cannot_export(saved_tiny: Path, monkeypatch, caplog,
                                                                      no_bf16_units) -> None:
    import earshot.model.onnx_backend as backend

    monkeypatch.setattr(backend.os, "access", lambda path, mode: False)
    with caplog.at_level("WARNING", logger="earshot.model.modeling"):
        model = EarshotModel.from_pretrained(saved_tiny, backend="auto", device="cpu")
    assert model.backend == "torch"
    assert "read-only, so serving with torch" in caplog.text and "earshot export --model" in caplog.text


def test_batch_scoring_defaults_to_the_services_backend(saved_tiny: Path, tmp_path: Path,
                                                        feedback_texts: list[str]) -> None:
    """`earshot score` with no --backend gives the answers the service (backend auto) gives, to the last digit."""
    from earshot.cli import main

    texts = feedback_texts[:20]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--model", str(saved_tiny),
                 "--no-progress"]) == 0
    scored = pd.read_csv(tmp_path / "out.csv")
    service = EarshotModel.from_pretrained(saved_tiny, backend="auto", device="cpu")
    torch_model = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    assert service.backend == AUTO_ON_THIS_CPU
    expected = [p["sentiment"].labels[0].score for p in service.predict(texts)]
    np.testing.assert_allclose(scored["sentiment_score"], expected, rtol=0, atol=1e-6)
    # ... which torch's fp32 scores are not: the default really is the service's backend.
    assert np.abs(scored["sentiment_score"] - [p["sentiment"].labels[0].score for p in torch_model.predict(texts)]
                  ).max() > 1e-6


def test_auto_takes_bf16_on_a_cpu_with_matrix_units_and_keeps_torchs_labels(saved_tiny: Path, monkeypatch,
                                                                            feedback_texts: list[str]) -> None:
    import torch

    monkeypatch.setattr("earshot.model.runners.bf16_matrix_units", lambda: True)
    model = EarshotModel.from_pretrained(saved_tiny, backend="auto", device="cpu")
    assert model.backend == "bf16" and next(model.parameters()).dtype == torch.bfloat16
    assert export_status(saved_tiny, "onnx-int8") is not None  # nothing exported: bf16 runs the torch module
    texts = feedback_texts
    reference = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    mine, theirs = model.predict_proba(texts), reference.predict_proba(texts)
    for head in ("sentiment", "pain_points"):
        assert mine[head].dtype == np.float32
        np.testing.assert_allclose(mine[head], theirs[head], atol=BF16_TOLERANCE)
    clear = np.sort(theirs["sentiment"], axis=1)[:, -1] - np.sort(theirs["sentiment"], axis=1)[:, -2] > 2 * BF16_TOLERANCE
    assert (mine["sentiment"].argmax(1) == theirs["sentiment"].argmax(1))[clear].all()
    alone = np.concatenate([model.predict_proba([text])["sentiment"] for text in texts[:20]])
    np.testing.assert_allclose(alone, mine["sentiment"][:20], atol=BF16_TOLERANCE / 2)
    with pytest.raises(ValueError, match="backend 'bf16' runs on the CPU; use backend 'torch' for device 'cuda'"):
        EarshotModel.from_pretrained(saved_tiny, backend="bf16", device="cuda")


def test_bf16_matrix_units_are_read_from_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_tile amx_bf16 amx_int8\n")
    assert bf16_matrix_units(str(cpuinfo)) is True
    other = tmp_path / "cpuinfo-avx512"  # bf16 dot products without AMX: not what was measured, not taken
    other.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert bf16_matrix_units(str(other)) is False
    assert bf16_matrix_units(str(tmp_path / "missing")) is False


def test_onnx_runners_start_every_packed_text_at_an_aligned_cell(saved_tiny: Path, feedback_texts: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a text sits in its packed row must not move its fp32 softmax sums (model/packing.py, ``aligned``)."""
    from earshot.model.packing import ALIGN_TOKENS

    model = EarshotModel.from_pretrained(saved_tiny, backend="onnx-int8")
    session, feeds = model.runner.session, []
    run = session.run
    monkeypatch.setattr(session, "run", lambda names, feed: feeds.append(feed) or run(names, feed))
    model.predict_proba(feedback_texts, batch_size=64)
    assert feeds
    for feed in feeds:
        width = feed["input_ids"].shape[1]
        first = (feed["pooling"] != 0).argmax(axis=1)
        assert width % ALIGN_TOKENS == 0 and (first % width % ALIGN_TOKENS == 0).all()
    assert any(len(feed["input_ids"]) < len(feed["pooling"]) for feed in feeds)  # texts really shared rows


# Five tweets whose int8 scores moved by more than 1e-3 between one pass together and one pass each while
# packing put texts anywhere in a row (the default model, on an AVX-512 CPU).
BATCH_TEXTS = ["@USAirways stuck on the tarmac for an hour with no air and no updates from the pilot",
               "@united why do I have to pay twice for a seat I already picked",
               "@AmericanAir the line at the check-in desk at DFW is a mile long and only two agents working",
               "@united worst airline ever. delayed, cancelled, then lost my bag",
               "@VirginAmerica the crew sang happy birthday to my daughter, best flight ever"]
BATCH_INDEPENDENCE = 1e-3  # a text's scores whatever else shares its batch


@pytest.mark.integration
def test_a_texts_scores_do_not_depend_on_its_batch_on_any_cpu_backend(tmp_path: Path) -> None:
    folder = tmp_path / "default"
    EarshotModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu").save_pretrained(folder)
    # bf16 is held to the bound of the bf16 test above (against fp32): its own roundings move scores by
    # more than 1e-3, the default's sharp pain-point scores most (docs/experiments.md, "Batch independence");
    # a padded or packed neighbour leaking into a text would move them by far more.
    for backend, tolerance in (("torch", BATCH_INDEPENDENCE), ("onnx-int8", BATCH_INDEPENDENCE),
                               ("bf16", BF16_TOLERANCE)):
        model = EarshotModel.from_pretrained(folder, backend=backend, device="cpu")
        together = model.predict_proba(BATCH_TEXTS)
        alone = [model.predict_proba([text]) for text in BATCH_TEXTS]
        for head in ("sentiment", "pain_points"):
            moved = np.abs(np.concatenate([p[head] for p in alone]) - together[head]).max()
            assert moved <= tolerance, f"{backend} {head}: a score moved by {moved:.2g} with the batch"
