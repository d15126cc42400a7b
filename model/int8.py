"""Per-token int8 quantisation of an exported encoder: each text's answer depends on that text alone.

ONNX Runtime's dynamic quantisation gives all activations of a pass one scale, so a text's scores
moved with the other texts in its batch, labels included (docs/experiments.md). Static quantisation fixes
that but needs calibration texts at export time. Here every token's activation row gets its own
scale (its largest absolute value / 127) and every weight column its own; the integer product is
exact, so the result for a token does not depend on any other row of the pass. The fp32 attention
between the projections does, by its last bit, on where a text sits in a packed row, and a rounding to
int8 can turn that bit into a visible change: the ONNX runners put every text at an aligned cell
(``model.packing.aligned``), which removes that. As accurate as fp32, a little slower than per-pass
int8 (docs/experiments.md, "Figures behind the code").

Example:
    >>> quantise_per_token(Path("raw.onnx"), Path("model-int8.onnx"))  # doctest: +SKIP
    36
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Only the transformer blocks' projections: the heads are tiny and their outputs are the answer.
ENCODER_SCOPE = "/encoder/layer."
_ZERO_POINT = 128  # activations are stored as uint8 around 128: ONNX Runtime's fast u8 x s8 kernel


def quantise_per_token(source: Path, target: Path, scope: str = ENCODER_SCOPE) -> int:
    """Rewrite every weight MatMul under ``scope`` of the graph ``source`` as an int8 one, into ``target``.

    Returns how many MatMuls were quantised. MatMuls of two activations (attention scores) stay fp32.
    """
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes, constants = [], _shared_constants()
    quantised_rows: dict[str, tuple[str, str]] = {}  # one activation quantised once for Q, K and V
    count = 0
    for node in graph.node:
        if not (node.op_type == "MatMul" and node.input[1] in weights and scope in node.name):
            nodes.append(node)
            continue
        activation = node.input[0]
        if activation not in quantised_rows:
            prefix = node.name.replace("/", "_") + "_rows"
            quantised_rows[activation] = (f"{prefix}_u8", f"{prefix}_scale")
            nodes += _quantise_rows(activation, prefix)
        rows_u8, row_scale = quantised_rows[activation]
        prefix = node.name.replace("/", "_")
        weight_i8, column_scale = quantise_columns(onnx.numpy_helper.to_array(weights[node.input[1]]))
        constants += [onnx.numpy_helper.from_array(weight_i8, f"{prefix}_w_i8"),
                      onnx.numpy_helper.from_array(column_scale, f"{prefix}_w_scale")]
        nodes += [
            onnx.helper.make_node("MatMulInteger", [rows_u8, f"{prefix}_w_i8", "int8_zero_point"], [f"{prefix}_i32"]),
            onnx.helper.make_node("Cast", [f"{prefix}_i32"], [f"{prefix}_f32"], to=onnx.TensorProto.FLOAT),
            onnx.helper.make_node("Mul", [f"{prefix}_f32", row_scale], [f"{prefix}_rows_scaled"]),
            onnx.helper.make_node("Mul", [f"{prefix}_rows_scaled", f"{prefix}_w_scale"], [node.output[0]]),
        ]
        count += 1
    used = {name for node in nodes for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + constants)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return count


def quantise_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column: ``weight ~= weight_i8 * scale``, scale of shape ``(columns,)``.

    Example:
        >>> q, s = quantise_columns(np.array([[1.0, -0.5], [-2.0, 0.25]], dtype=np.float32))
        >>> q.tolist(), s.tolist()
        ([[64, -127], [-127, 64]], [0.015748031437397003, 0.003937007859349251])
    """
    weight = weight.astype(np.float32)
    scale = (np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127).astype(np.float32)
    return np.clip(np.round(weight / scale), -127, 127).astype(np.int8), scale


def _shared_constants() -> list:
    import onnx

    return [onnx.numpy_helper.from_array(np.array(1 / 127, dtype=np.float32), "int8_inverse_range"),
            onnx.numpy_helper.from_array(np.array(1e-8, dtype=np.float32), "int8_smallest_scale"),
            onnx.numpy_helper.from_array(np.array(_ZERO_POINT, dtype=np.float32), "int8_zero_point_f32"),
            onnx.numpy_helper.from_array(np.array(_ZERO_POINT, dtype=np.uint8), "int8_zero_point")]


def _quantise_rows(activation: str, prefix: str) -> list:
    """Nodes that write ``{prefix}_u8`` (uint8 around 128) and ``{prefix}_scale`` (one per token row)."""
    from onnx.helper import make_node
    from onnx import TensorProto

    return [
        make_node("Abs", [activation], [f"{prefix}_abs"]),
        make_node("ReduceMax", [f"{prefix}_abs"], [f"{prefix}_max"], axes=[-1], keepdims=1),
        # an all-zero row would divide by zero; any tiny scale quantises it to zeros
        make_node("Max", [f"{prefix}_max", "int8_smallest_scale"], [f"{prefix}_max_safe"]),
        make_node("Mul", [f"{prefix}_max_safe", "int8_inverse_range"], [f"{prefix}_scale"]),
        make_node("Div", [activation, f"{prefix}_scale"], [f"{prefix}_units"]),
        make_node("Round", [f"{prefix}_units"], [f"{prefix}_rounded"]),
        make_node("Add", [f"{prefix}_rounded", "int8_zero_point_f32"], [f"{prefix}_shifted"]),
        make_node("Cast", [f"{prefix}_shifted"], [f"{prefix}_u8"], to=TensorProto.UINT8),
    ]
