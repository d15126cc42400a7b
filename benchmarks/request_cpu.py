"""The server's own CPU time per request, with a model whose forward pass costs next to nothing.

On a GPU the forward pass of a whole batch takes a few milliseconds; what bounds a served GPU is the
CPU work around it: HTTP, parsing and validating the body, tokenizing, batching, building and
encoding the answer. This benchmark isolates that work on any machine: it serves a near-free model
(one 32-wide layer, with the default model's tokenizer and heads, so tokenizing and the answers'
size are real) and measures the CPU seconds that the server's processes (BentoML's arbiter and
workers) spend per request and per text, for 32 clients × 1 text and for 1 client × 32 texts: once
with OpenTelemetry's middleware on (``EARSHOT_TRACING=1``, what every request paid before it became
optional), once with the service's defaults.

    python benchmarks/request_cpu.py [--requests-per-client 100] [--backend torch]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import Server, batched_load, concurrent_load, load_texts  # noqa: E402


def near_free_model(folder: Path) -> Path:
    """The default model's tokenizer and heads on a one-layer, 32-wide encoder."""
    import torch
    from transformers import BertConfig, BertModel

    from earshot.model import DEFAULT_MODEL_DIR, EarshotModel

    default = EarshotModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=default.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=512))
    config = type(default.config).from_dict({**default.config.to_dict(), "provenance": {}, "metrics": {},
                                             "label": "near-free (benchmarks/request_cpu.py)"})
    EarshotModel(encoder, default.tokenizer, config).save_pretrained(folder)
    return folder


def server_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the server's process tree (workers run in sessions of their own, but
    are still the arbiter's children)."""
    total = 0.0
    process = psutil.Process(root)
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(server: Server, texts: list[str], clients: int, per_client: int) -> dict[str, dict[str, float]]:
    asyncio.run(concurrent_load(server.url, texts, clients, 5))  # warm-up
    batched_load(server.url, texts, clients, clients * 5)
    results = {}
    before = server_cpu_seconds(server.process.pid)
    concurrent = asyncio.run(concurrent_load(server.url, texts, clients, per_client))
    used = server_cpu_seconds(server.process.pid) - before
    results["concurrent"] = {"requests": concurrent["requests"], "texts": concurrent["requests"],
                             "texts_per_s": concurrent["texts_per_s"], "server_cpu_s": used,
                             "failures": concurrent["failures"]}
    before = server_cpu_seconds(server.process.pid)
    batched = batched_load(server.url, texts, clients, clients * per_client)
    used = server_cpu_seconds(server.process.pid) - before
    results["batched"] = {"requests": per_client, "texts": clients * per_client,
                          "texts_per_s": batched["texts_per_s"], "server_cpu_s": used, "failures": 0}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=100)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8", "auto"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    texts = load_texts(4000)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = near_free_model(Path(folder) / "near-free")
        for name, extra in (("tracing on", {"EARSHOT_TRACING": "1"}), ("defaults", {})):
            env = {"EARSHOT_MODEL": str(model), "EARSHOT_BACKEND": args.backend, **extra}
            with Server("earshot.service.service:Earshot", env) as server:
                results[name] = measure(server, texts, args.clients, args.requests_per_client)
    for name, figures in results.items():
        for kind, label in (("concurrent", f"{args.clients} clients x 1 text"),
                            ("batched", f"1 client x {args.clients} texts")):
            r = figures[kind]
            print(f"{name}, {label}: {r['texts_per_s']:.0f} texts/s; server CPU "
                  f"{1000 * r['server_cpu_s'] / r['requests']:.2f} ms per request, "
                  f"{1000 * r['server_cpu_s'] / r['texts']:.3f} ms per text ({r['requests']} requests, "
                  f"{r['failures']} failures)")
    for kind in ("concurrent", "batched"):
        before, after = (results[name][kind]["server_cpu_s"] / results[name][kind]["requests"]
                         for name in ("tracing on", "defaults"))
        print(f"{kind}: server CPU per request, defaults / tracing on: {after / before:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
