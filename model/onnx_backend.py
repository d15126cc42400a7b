"""ONNX Runtime backends for CPU inference: fp32 and int8 (per-token quantisation, ``model/int8.py``).

The export is cached beside the model in ``<model>/onnx/`` together with a fingerprint of the
weights it came from; a missing or stale export is rebuilt when the folder is writable, and reported
clearly when it is not. Only the encoder and heads run in ONNX Runtime: tokenising, length sorting,
batching and thresholds stay in :meth:`EarshotModel.predict`, so every backend gives the same kind of
answer.

Example:
    >>> model = EarshotModel.from_pretrained("model/default", backend="onnx-int8")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .modeling import EarshotModel

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
_FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
# 4: int8 quantises each token's activations on its own (model/int8.py), not each pass's.
# 5: packed rows as inputs (model/packing.py).
_EXPORT_VERSION = 5


class ExportError(RuntimeError):
    """An ONNX export is missing or stale and cannot be (re)built."""


def weights_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_status(folder: Path, backend: str) -> str | None:
    """None when ``backend``'s export in ``folder`` is present and matches the weights, else why not."""
    target = folder / "onnx" / _FILES[backend]
    manifest = folder / "onnx" / "export.json"
    if not target.is_file() or not manifest.is_file():
        return f"no {backend} export in {folder / 'onnx'}"
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    if recorded.get("weights") != weights_fingerprint(folder) or recorded.get("version") != _EXPORT_VERSION:
        return f"the {backend} export in {folder / 'onnx'} was made from other weights (stale)"
    return None


def export_onnx(model: "EarshotModel", folder: Path) -> dict[str, Path]:
    """Export ``model`` (saved in ``folder``) to fp32 ONNX, optimise it and quantise it to int8.

    Example:
        >>> export_onnx(EarshotModel.from_pretrained("runs/airline"), Path("runs/airline"))
    """
    from .int8 import quantise_per_token
    from .modeling import atomic_path

    out = folder / "onnx"
    out.mkdir(exist_ok=True)
    fp32, int8 = out / _FILES["onnx"], out / _FILES["onnx-int8"]
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        raw = Path(tmp) / "raw.onnx"
        _export_graph(model, raw)
        optimised = Path(tmp) / "optimised.onnx"
        _optimise(raw, optimised, model)
        quantised = Path(tmp) / "int8.onnx"
        # int8 from the unfused graph, where the projections are plain MatMuls (the fused graph hides
        # them in Attention ops; measured 336 vs 300 texts/s).
        quantise_per_token(raw, quantised)
        os.replace(optimised, fp32)
        os.replace(quantised, int8)
    manifest = {"version": _EXPORT_VERSION, "weights": weights_fingerprint(folder), "torch": torch.__version__}
    # Written last and atomically: workers starting together may export at once, and a reader must
    # never see half a manifest.
    with atomic_path(out / "export.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return {"onnx": fp32, "onnx-int8": int8}


def _export_graph(model: "EarshotModel", target: Path) -> None:
    """The network as an fp32 ONNX graph with the inputs ``predict`` feeds it: packed rows when the
    encoder packs (model/packing.py), padded rows otherwise."""
    example = model.encode(["an example text for the exporter", "short", "a third"]).input_ids
    inputs = {name: torch.from_numpy(array) for name, array in model.pass_inputs(example).items()}
    if model.position_offset is not None:
        axes = {"input_ids": {0: "rows", 1: "tokens"}, "position_ids": {0: "rows", 1: "tokens"},
                "attention_mask": {0: "rows", 2: "tokens", 3: "tokens"}, "pooling": {0: "texts", 1: "cells"}}
    else:
        axes = {"input_ids": {0: "texts", 1: "tokens"}, "attention_mask": {0: "texts", 1: "tokens"}}
    with torch.inference_mode():
        torch.onnx.export(_Logits(model).eval(), tuple(inputs.values()), str(target), input_names=list(inputs),
                          output_names=["sentiment", "pain_points"], opset_version=17, dynamo=False,
                          dynamic_axes={**axes, "sentiment": {0: "texts"}, "pain_points": {0: "texts"}})


def _optimise(source: Path, target: Path, model: "EarshotModel") -> None:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU): fewer, larger kernels."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.encoder.config
    optimised = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1, use_gpu=False)
    optimised.save_model_to_file(str(target))


class _Logits(torch.nn.Module):
    """The model's forward (packed or padded) without dropout, as a plain module for the exporter."""

    def __init__(self, model: "EarshotModel") -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model.position_offset is not None:
            return self.model.forward_packed(*inputs)
        return self.model(*inputs)


class OnnxRunner:
    """An ONNX Runtime session that maps ``predict``'s inputs (packed or padded rows) to both heads' logits."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        sentiment, pain_points = self.session.run(None, feed)
        return sentiment, pain_points


def load_runner(model: "EarshotModel", folder: Path, backend: str, rebuild: bool = True) -> OnnxRunner:
    """The runner for ``backend``, exporting first when the cache is missing or stale."""
    problem = export_status(folder, backend)
    if problem is not None:
        if not rebuild or not os.access(folder, os.W_OK):
            raise ExportError(f"{problem}; run `earshot export --model {folder}` (the folder must be writable)")
        logger.info("%s: exporting now", problem)
        export_onnx(model, folder)
    return OnnxRunner(folder / "onnx" / _FILES[backend])
