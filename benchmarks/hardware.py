"""What this machine can do at best, to judge an inference speed against.

An encoder's work is almost all matrix products of ``(tokens, hidden) x (hidden, n)`` shape. Timing
one such product alone, in fp32 and bfloat16 (torch) and int8 (ONNX Runtime's integer kernel, the
one the int8 backend runs), gives the ceiling no backend can pass; dividing a backend's useful work by its time
says how close it came.

    python benchmarks/hardware.py
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Ceilings:
    """Best measured throughput of one model-shaped matrix product, in 1e9 multiply-adds x 2 per second."""

    fp32_gflops: float
    int8_gops: float
    bf16_gflops: float = float("nan")

    @property
    def int8_over_fp32(self) -> float:
        return self.int8_gops / self.fp32_gflops


def _best_rate(run: Callable[[], object], work: float, repeats: int = 7, inner: int = 10) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            run()
        times.append((time.perf_counter() - started) / inner)
    return work / statistics.median(times) / 1e9


def measure_ceilings(tokens: int = 2048, hidden: int = 384, inner: int = 1536, threads: int | None = None) -> Ceilings:
    """fp32, bfloat16 and int8 throughput of a ``(tokens, hidden) x (hidden, inner)`` product, the FFN's shape.

    Example:
        >>> measure_ceilings().int8_over_fp32   # about 2 on an AVX2 CPU without VNNI
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    threads = threads or torch.get_num_threads()
    work = 2.0 * tokens * hidden * inner
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, inner)
    fp32 = _best_rate(lambda: torch.mm(a, b), work)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = _best_rate(lambda: torch.mm(a16, b16), work)

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (hidden, inner), dtype=np.int8)
    activations = rng.integers(0, 256, (tokens, hidden), dtype=np.uint8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])], "int8_gemm",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [tokens, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [tokens, inner])],
        [numpy_helper.from_array(weight, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9  # onnx writes IR 14 by default; the onnxruntime here reads at most 13
    onnx.checker.check_model(proto)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    int8 = _best_rate(lambda: session.run(None, {"x": activations}), work)
    return Ceilings(fp32_gflops=fp32, int8_gops=int8, bf16_gflops=bf16)


def encoder_flops(config, token_counts: Sequence[int]) -> float:
    """Multiply-adds x 2 that a BERT-style encoder spends on texts of these token counts (no padding).

    Per layer and token: Q, K, V and output projections (4 h^2), the feed-forward pair (2 h i) and
    attention over the text's own tokens (2 n h). Heads and embeddings are negligible.

    Example:
        >>> encoder_flops(model.encoder.config, [30]) / 1e6   # MiniLM-L6, one 30-token tweet
        645.3...
    """
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    counts = np.asarray(token_counts, dtype=np.float64)
    per_token = 4 * hidden * hidden + 2 * hidden * inner
    multiply_adds = layers * (counts * per_token + 2 * counts * counts * hidden)
    return float(2.0 * multiply_adds.sum())


if __name__ == "__main__":
    ceilings = measure_ceilings()
    print(f"fp32 GEMM {ceilings.fp32_gflops:.0f} GFLOP/s, bf16 GEMM {ceilings.bf16_gflops:.0f} GFLOP/s, int8 GEMM "
          f"{ceilings.int8_gops:.0f} GOP/s (x{ceilings.int8_over_fp32:.2f}), torch threads {torch.get_num_threads()}")
