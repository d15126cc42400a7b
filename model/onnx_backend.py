"""ONNX Runtime runners for CPU inference: fp32 and int8 (per-token quantisation, ``model/int8.py``).

The export is cached beside the model in ``<model>/onnx/`` together with the model's version id; a
missing or stale export is rebuilt when the folder is writable, and reported clearly when it is not.
Only the encoder and heads run in ONNX Runtime: tokenising, length sorting, batching and thresholds
stay in ``EarshotModel.predict``, so every backend gives the same kind of answer. Packed passes run with
each text at an aligned cell (``model.packing.aligned``), so a text's answer does not depend on the
texts packed beside it.

This module knows the model only as a torch module with ``pass_inputs``, ``encode``, ``forward``,
``forward_packed``, ``config.heads`` and ``tokenizer``; it imports nothing from ``model.modeling``.

Example:
    >>> model = EarshotModel.from_pretrained("model/default", backend="onnx-int8")
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earshot.files import atomic_path, write_text_atomic

from .packing import aligned

logger = logging.getLogger(__name__)

_FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
# 4: int8 quantises each token's activations on its own (model/int8.py), not each pass's.
# 5: packed rows as inputs (model/packing.py).
# 6: one output per head, by name, plus the pooled embedding; keyed by the model's version id.
_EXPORT_VERSION = 6
_MANIFEST = "export.json"


class ExportError(RuntimeError):
    """An ONNX export is missing or stale and cannot be (re)built."""


def export_status(folder: Path, version: str, backend: str) -> str | None:
    """None when ``backend``'s export in ``folder`` is present and made from model ``version``, else why not."""
    target = folder / "onnx" / _FILES[backend]
    manifest = folder / "onnx" / _MANIFEST
    if not target.is_file() or not manifest.is_file():
        return f"no {backend} export in {folder / 'onnx'}"
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    if recorded.get("model_version") != version or recorded.get("export_version") != _EXPORT_VERSION:
        return f"the {backend} export in {folder / 'onnx'} was made from another model version (stale)"
    return None


def export_onnx(model: torch.nn.Module, folder: Path, version: str) -> dict[str, Path]:
    """Export ``model`` (saved in ``folder`` as ``version``) to fp32 ONNX, optimise it and quantise it to int8.

    Example:
        >>> export_onnx(model, Path("runs/airline"), model.version)
    """
    from .int8 import quantise_per_token

    out = folder / "onnx"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        raw = Path(tmp) / "raw.onnx"
        _export_graph(model, raw)
        with atomic_path(out / _FILES["onnx"]) as optimised:
            _optimise(raw, optimised, model)
        with atomic_path(out / _FILES["onnx-int8"]) as quantised:
            # int8 from the unfused graph, where the projections are plain MatMuls (the fused graph hides
            # them in Attention ops, and ran slower: docs/experiments.md).
            quantise_per_token(raw, quantised)
    # Written last and atomically: workers starting together may export at once, and a reader must
    # never see half a manifest.
    write_text_atomic(out / _MANIFEST, json.dumps({"export_version": _EXPORT_VERSION, "model_version": version,
                                                   "torch": torch.__version__}, indent=2))
    return {"onnx": out / _FILES["onnx"], "onnx-int8": out / _FILES["onnx-int8"]}


def output_names(model: torch.nn.Module) -> list[str]:
    """The graph's outputs: the pooled embedding, then each head's logits, in the config's order."""
    return ["embedding", *[head.name for head in model.config.heads]]


def _export_graph(model: Any, target: Path) -> None:
    """The network as an fp32 ONNX graph with the inputs ``predict`` feeds it: packed rows when the
    encoder packs (model/packing.py), padded rows otherwise."""
    example = model.encode(["an example text for the exporter", "short", "a third"]).input_ids
    inputs = {name: torch.from_numpy(array) for name, array in model.pass_inputs(example).items()}
    if model.position_offset is not None:
        axes = {"input_ids": {0: "rows", 1: "tokens"}, "position_ids": {0: "rows", 1: "tokens"},
                "attention_mask": {0: "rows", 2: "tokens", 3: "tokens"}, "pooling": {0: "texts", 1: "cells"}}
    else:
        axes = {"input_ids": {0: "texts", 1: "tokens"}, "attention_mask": {0: "texts", 1: "tokens"}}
    names = output_names(model)
    with torch.inference_mode():
        torch.onnx.export(_Outputs(model, names).eval(), tuple(inputs.values()), str(target),
                          input_names=list(inputs), output_names=names, opset_version=17, dynamo=False,
                          dynamic_axes={**axes, **{name: {0: "texts"} for name in names}})


def _optimise(source: Path, target: Path, model: Any) -> None:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU): fewer, larger kernels."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.encoder.config
    optimised = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1, use_gpu=False)
    optimised.save_model_to_file(str(target))


class _Outputs(torch.nn.Module):
    """The model's forward (packed or padded) as a tuple in ``names`` order, for the exporter."""

    def __init__(self, model: Any, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model.forward_packed(*inputs) if self.model.position_offset is not None else self.model(*inputs)
        return tuple(outputs[name] for name in self.names)


class OnnxRunner:
    """An ONNX Runtime session that maps a pass's inputs (packed or padded rows) to the named outputs.

    Packed rows run re-laid with each text at an aligned cell (``packing.aligned``, ``pad_id`` between
    texts): why: where a text sat in its row changed its softmax sums by a last bit that int8 rounding amplified.
    """

    device = torch.device("cpu")

    def __init__(self, path: Path, name: str, threads: int | None = None, pad_id: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.name = name
        self.pad_id = pad_id
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [output.name for output in self.session.get_outputs()]

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "pooling" in feed:  # packed rows (model/packing.py)
            feed = aligned(feed, pad_id=self.pad_id)
        return dict(zip(self.outputs, self.session.run(None, feed)))


def load_onnx_runner(model: torch.nn.Module, folder: Path, version: str, backend: str,
                     rebuild: bool = True) -> OnnxRunner:
    """The runner for ``backend`` ("onnx" or "onnx-int8"), exporting first when the cache is missing or stale."""
    problem = export_status(folder, version, backend)
    if problem is not None:
        if not rebuild or not os.access(folder, os.W_OK):
            raise ExportError(f"{problem}; run `earshot export --model {folder}` (the folder must be writable)")
        logger.info("%s: exporting now", problem)
        export_onnx(model, folder, version)
    return OnnxRunner(folder / "onnx" / _FILES[backend], backend, pad_id=model.tokenizer.pad_token_id or 0)
