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

from benchmarks.load import TARGET, Server, batched_load, concurrent_load, load_texts  # noqa: E402


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


def server_cpu_seconds(root: int) -> dict[str, float]:
    """User + system CPU seconds of the server's process tree, by BentoML service (the workers' ``--service-name``:
    ``earshot``, and ``earshot-model`` when split; ``arbiter`` for the rest). Workers run in sessions of their
    own, but are still the arbiter's children."""
    totals: dict[str, float] = {}
    process = psutil.Process(root)
    for member in [process, *process.children(recursive=True)]:
        try:
            command, times = member.cmdline(), member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        role = command[command.index("--service-name") + 1] if "--service-name" in command else "arbiter"
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def used_since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before.get(role, 0.0) for role in after}


def measure(server: Server, texts: list[str], clients: int, per_client: int) -> dict[str, dict]:
    asyncio.run(concurrent_load(server.url, texts, clients, 5))  # warm-up
    batched_load(server.url, texts, clients, clients * 5)
    results = {}
    before = server_cpu_seconds(server.process.pid)
    concurrent = asyncio.run(concurrent_load(server.url, texts, clients, per_client))
    used = used_since(before, server_cpu_seconds(server.process.pid))
    results["concurrent"] = {"requests": concurrent["requests"], "texts": concurrent["requests"],
                             "texts_per_s": concurrent["texts_per_s"], "server_cpu_s": sum(used.values()),
                             "by_service_cpu_s": used, "failures": concurrent["failures"]}
    before = server_cpu_seconds(server.process.pid)
    batched = batched_load(server.url, texts, clients, clients * per_client)
    used = used_since(before, server_cpu_seconds(server.process.pid))
    results["batched"] = {"requests": per_client, "texts": clients * per_client, "texts_per_s": batched["texts_per_s"],
                          "server_cpu_s": sum(used.values()), "by_service_cpu_s": used, "failures": 0}
    return results


def model_process_ms(figures: dict) -> float:
    """CPU ms per request of the processes that run the network: the model worker when split, else the
    single service's worker."""
    used = figures["by_service_cpu_s"]
    return 1000 * used.get("earshot-model", used.get("earshot", 0.0)) / figures["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=100)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8", "auto"])
    parser.add_argument("--split", type=int, nargs="*", default=[2], metavar="N",
                        help="also measure the split service with N API workers (none: --split)")
    parser.add_argument("--skip-tracing", action="store_true", help="leave out the tracing-on server")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    texts = load_texts(4000)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = near_free_model(Path(folder) / "near-free")
        configurations = [*([] if args.skip_tracing else [("tracing on", {"EARSHOT_TRACING": "1"})]),
                          ("defaults", {}),
                          *((f"split, {n} API workers", {"EARSHOT_API_WORKERS": str(n)}) for n in args.split)]
        for name, extra in configurations:
            env = {"EARSHOT_MODEL": str(model), "EARSHOT_BACKEND": args.backend, **extra}
            with Server(TARGET, env) as server:
                results[name] = measure(server, texts, args.clients, args.requests_per_client)
    for name, figures in results.items():
        for kind, label in (("concurrent", f"{args.clients} clients x 1 text"),
                            ("batched", f"1 client x {args.clients} texts")):
            r = figures[kind]
            print(f"{name}, {label}: {r['texts_per_s']:.0f} texts/s; server CPU "
                  f"{1000 * r['server_cpu_s'] / r['requests']:.2f} ms per request, "
                  f"{1000 * r['server_cpu_s'] / r['texts']:.3f} ms per text, of which the process running the "
                  f"network {model_process_ms(r):.2f} ms per request ({r['requests']} requests, {r['failures']} failures)")
    for kind in ("concurrent", "batched"):
        per_request = {name: r[kind]["server_cpu_s"] / r[kind]["requests"] for name, r in results.items()}
        if "tracing on" in results:
            print(f"{kind}: server CPU per request, defaults / tracing on: "
                  f"{per_request['defaults'] / per_request['tracing on']:.2f}")
        for n in args.split:
            name = f"split, {n} API workers"
            split, single = results[name][kind], results["defaults"][kind]
            print(f"{kind}: {name} / defaults: texts/s {split['texts_per_s'] / single['texts_per_s']:.2f}, "
                  f"server CPU per request {per_request[name] / per_request['defaults']:.2f}, CPU per request of the "
                  f"process running the network {model_process_ms(split) / model_process_ms(single):.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
