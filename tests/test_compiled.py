"""The compiled runner (``compiled=True``, ``--compile``): torch's answers, compiled once at load, refused
where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from earshot.model import EarshotModel

COMPILED_TOLERANCE = 1e-4  # the same graph, fused differently


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_compiled_runner_gives_torchs_answers_from_the_one_graph_compiled_at_load(saved_tiny: Path, packed: bool,
                                                                                  feedback_texts: list[str]) -> None:
    torch._dynamo.reset()
    reference = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    model = EarshotModel.from_pretrained(saved_tiny, device="cpu")
    if not packed:  # an encoder that packing does not know: padded passes
        model.position_offset = reference.position_offset = None
    model.compile_runner()
    compiled_at_load = _graphs()
    assert compiled_at_load >= 1 and model.backend == "torch compiled"
    texts = feedback_texts
    # Passes of many texts, one text and two texts: sizes of 1 and sizes that happen to be equal would
    # each compile another graph, unless the runner keeps them away from the compiler.
    for batch in (texts, texts[:1], texts[1:3], texts[:64]):
        mine, theirs = model.predict_proba(batch), reference.predict_proba(batch)
        for head in ("sentiment", "pain_points"):
            assert mine[head].shape == theirs[head].shape == (len(batch), len(model.config.head(head).labels))
            np.testing.assert_allclose(mine[head], theirs[head], atol=COMPILED_TOLERANCE)
    np.testing.assert_allclose(model.embed(texts[:5]), reference.embed(texts[:5]), atol=COMPILED_TOLERANCE)
    assert _graphs() == compiled_at_load


def test_compile_is_refused_for_onnx_backends_and_a_failed_compile_says_so(saved_tiny: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="compile works with the torch backends .* but backend 'onnx-int8'"):
        EarshotModel.from_pretrained(saved_tiny, backend="onnx-int8", compiled=True)
    monkeypatch.setattr("earshot.model.runners.bf16_matrix_units", lambda: False)
    with pytest.raises(ValueError, match="backend auto chose 'onnx-int8' on this machine: pass --backend torch"):
        EarshotModel.from_pretrained(saved_tiny, backend="auto", compiled=True)

    def no_compiler(function, **options):
        def compiled(*args, **kwargs):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error")  # as inductor reports it
        return compiled

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.raises(RuntimeError, match="torch.compile could not compile this model .*C\\+\\+ compile error.* "
                                           "needs a C\\+\\+ compiler"):
        EarshotModel.from_pretrained(saved_tiny, backend="torch", compiled=True)


def test_score_and_serve_take_compile(feedback_texts: list[str], saved_tiny: Path, tmp_path: Path, monkeypatch) -> None:
    from earshot.cli import main
    from earshot.service.settings import Settings

    texts = feedback_texts[:20]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--model", str(saved_tiny),
                 "--backend", "torch", "--compile", "--no-progress"]) == 0
    scored = pd.read_csv(tmp_path / "out.csv")
    expected = [p["sentiment"].labels[0].score for p in EarshotModel.from_pretrained(saved_tiny).predict(texts)]
    np.testing.assert_allclose(scored["sentiment_score"], expected, atol=COMPILED_TOLERANCE)
    assert main(["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out2.csv"), "--model", str(saved_tiny),
                 "--backend", "onnx-int8", "--compile", "--no-progress"]) == 2  # refused, named
    assert not (tmp_path / "out2.csv").exists()
    assert Settings.from_env({"EARSHOT_COMPILE": "1"}).compile and not Settings.from_env({}).compile

    # `earshot serve --compile` hands the setting to the service's processes.
    calls = []
    monkeypatch.setattr("os.execve", lambda path, argv, env: calls.append(env))
    main(["serve", "--model", str(saved_tiny), "--compile"])
    assert calls and calls[0]["EARSHOT_COMPILE"] == "1"
