"""HTTP load benchmark of `earshot serve`, all figures from one run on this machine.

1. 32 concurrent clients, one text per request: texts/s and p50/p95/p99 latency;
2. the same server, one client sending 32 texts per request: texts/s;
3. a naive per-request `transformers` pipeline behind BentoML, under load 1.

Prints the ratios 1/2 (target >= 0.75) and 1/3 (target >= 3), and p99 of 1 (target <= 1 s).
With ``--scale`` (for a GPU server), also 256 clients × 1 text and 32 clients × 32 texts, the
clients spread over ``--processes`` load processes. With ``--capture``, 1 and 2 on pairs of servers
without and with a feedback store (review capture on, every answer kept by its id: the most the
store is asked to write), in alternating order: the median of the pairs' throughput with capture
over without (target >= 0.9). With ``--routes FILE``, a feedback store on both sides and the routes
file on one, both servers up at once and the loads alternating between them (``routes_rounds``; its
webhooks go to a receiver in its own process: write the URL as RECEIVER in the file).

    python benchmarks/load.py [--requests-per-client 40] [--model DIR] [--backend auto --backend torch] [--capture]
                              [--routes benchmarks/routes-load.yaml]
                              [--api-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGET = "earshot.service.service:Earshot"
AIRLINE = ROOT.parent / "shared" / "data" / "airline" / "train.csv"
FALLBACK_TEXTS = ["@airline my flight was delayed three hours and nobody told us why",
                  "@airline thanks for the great service today!", "@airline where is my bag?",
                  "@airline the agent at the gate was rude and unhelpful", "@airline can I change my seat online?"]


def load_texts(limit: int) -> list[str]:
    """Real tweets when the shared data is there (their length mix matters), else fixed examples."""
    if AIRLINE.is_file():
        with open(AIRLINE, encoding="utf-8") as handle:
            return [row["text"] for row, _ in zip(csv.DictReader(handle), range(limit))]
    return [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] for i in range(limit)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `bentoml serve` process on a free port, stopped on exit."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", target, "--working-dir", str(ROOT), "--port", str(self.port)],
            env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited:\n{self.log.read()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server not ready after 300 s")

    def __exit__(self, *_: object) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(timeout=60)


async def concurrent_load(url: str, texts: list[str], clients: int, per_client: int,
                          texts_per_request: int = 1, id_prefix: str = "") -> dict[str, float]:
    """`clients` clients, each sending `per_client` requests of `texts_per_request` texts back to back.
    Item ids start with ``id_prefix``: a server with routes records one delivery per id and text.

    The load generator shares this machine's cores with the server, so the share of CPU it used is
    measured and returned too (aiohttp: 2-3 % in benchmarks/load.py runs).
    """
    import aiohttp

    latencies: list[float] = []
    failures = 0
    mismatched = 0

    async def client(number: int, http: aiohttp.ClientSession) -> None:
        nonlocal failures, mismatched
        for request in range(per_client):
            first = (number * per_client + request) * texts_per_request
            item_id = f"{id_prefix}{number}-{request}"
            body = json.dumps({"items": [{"id": f"{item_id}-{i}" if i else item_id, "text": texts[(first + i) % len(texts)]}
                                         for i in range(texts_per_request)]})
            started = time.perf_counter()
            async with http.post("/classify", data=body, headers={"content-type": "application/json"}) as response:
                answer = await response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                failures += 1
            elif json.loads(answer)[0]["id"] != item_id:
                mismatched += 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as http:
        cpu_started, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed, client_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    # Only answered texts count: a 503 (the batching queue's latency ceiling) is not throughput.
    return {"texts_per_s": (len(latencies) - failures) * texts_per_request / elapsed, "p50_ms": pct(0.50) * 1000, "p95_ms": pct(0.95) * 1000,
            "p99_ms": pct(0.99) * 1000, "failures": failures, "mismatched_ids": mismatched,
            "requests": len(latencies), "client_cpu_share": client_cpu / elapsed / (os.cpu_count() or 1)}


def _load_process(url: str, texts: list[str], clients: int, per_client: int, texts_per_request: int,
                  start: Any, results: Any) -> None:
    start.wait()
    results.put(asyncio.run(concurrent_load(url, texts, clients, per_client, texts_per_request)))


def process_load(url: str, texts: list[str], clients: int, per_client: int, texts_per_request: int,
                 processes: int) -> dict[str, float]:
    """`concurrent_load` split over `processes` client processes started together (one Python process
    cannot generate enough load for a GPU server); texts/s over the slowest process's time."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    workers = [context.Process(target=_load_process, args=(url, texts, share, per_client, texts_per_request, start,
                                                           results)) for share in shares if share]
    for worker in workers:
        worker.start()
    time.sleep(2.0)  # the processes import and connect before the clock starts
    started = time.perf_counter()
    start.set()
    parts = [results.get(timeout=600) for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    requests, failures = sum(part["requests"] for part in parts), sum(part["failures"] for part in parts)
    return {"texts_per_s": (requests - failures) * texts_per_request / elapsed, "requests": requests,
            "failures": failures,
            "mismatched_ids": sum(part["mismatched_ids"] for part in parts),
            "p99_ms": max(part["p99_ms"] for part in parts), "processes": len(workers)}


def batched_load(url: str, texts: list[str], batch: int, total: int, id_prefix: str = "") -> dict[str, float]:
    """One client sending `batch` texts per request, back to back, `total` texts in all, their ids
    starting with ``id_prefix``."""
    with httpx.Client(base_url=url, timeout=120) as http:
        started = time.perf_counter()
        sent = 0
        while sent < total:
            chunk = [{"id": f"{id_prefix}{sent + i}", "text": texts[(sent + i) % len(texts)]} for i in range(batch)]
            response = http.post("/classify", json={"items": chunk})
            response.raise_for_status()
            sent += batch
        elapsed = time.perf_counter() - started
    return {"texts_per_s": sent / elapsed}


def naive_model_dir(model_dir: Path | None) -> Path:
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import plain_classifier_folder
    from earshot.model import EarshotModel

    return plain_classifier_folder(EarshotModel.from_pretrained(model_dir, device="cpu"))


def measure_earshot(env: dict[str, str], texts: list[str], clients: int, per_client: int,
                    scale_processes: int = 0) -> dict[str, object]:
    """Concurrent and batched load on one `earshot` server, and its adaptive-batching counters; with
    ``scale_processes``, also 256 x 1 and 32 x 32 from that many load processes."""
    scale = {}
    with Server(TARGET, env) as server:
        asyncio.run(concurrent_load(server.url, texts, clients, 5))  # warm-up
        concurrent = asyncio.run(concurrent_load(server.url, texts, clients, per_client))
        batched = batched_load(server.url, texts, clients, clients * per_client)
        if scale_processes:
            for many, each in ((256, 1), (32, 32)):
                scale[f"{many}x{each}"] = process_load(server.url, texts, many, per_client, each, scale_processes)
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        served = httpx.get(f"{server.url}/model", timeout=10).json()["backend"]
    batch_lines = [line for line in metrics.splitlines() if line.startswith("bentoml_service_adaptive_batch_size_")
                   and ("classify" in line or "forward" in line) and ("_sum" in line or "_count" in line)]
    batching = "; ".join(line.split("{")[0].rsplit("_", 1)[1] + "=" + line.rsplit(" ", 1)[1] for line in batch_lines)
    return {"concurrent": concurrent, "batched": batched, "adaptive_batching": batching, "served_backend": served,
            "scale": scale}


def paired_rounds(env: dict[str, str], texts: list[str], clients: int, per_client: int, rounds: int,
                  off: dict[str, str], on: dict[str, str]) -> list[dict]:
    """Pairs of servers with the settings ``off`` and ``on`` (each with a fresh feedback store where it
    names ``EARSHOT_FEEDBACK_DB=STORE``), the order alternating from pair to pair, so that the machine's
    drift (large on a shared machine) falls on both sides."""
    pairs = []
    for number in range(rounds):
        pair: dict = {}
        for side in (("off", "on") if number % 2 == 0 else ("on", "off")):
            with tempfile.TemporaryDirectory() as folder:
                store = Path(folder) / "feedback.db"
                extra = {key: str(store) if value == "STORE" else value
                         for key, value in (on if side == "on" else off).items()}
                pair[side] = measure_earshot({**env, **extra}, texts, clients, per_client)
                if "EARSHOT_FEEDBACK_DB" in extra:
                    pair[f"stored_{side}"] = stored_counts(store)
        pairs.append(pair)
    return pairs


def routes_rounds(env: dict[str, str], texts: list[str], args: argparse.Namespace) -> list[dict]:
    """Throughput without and with the routes file, each server with a feedback store of its own.

    Both servers run at once, idle but for the one under load, and the loads alternate between them,
    ``args.capture_rounds`` pairs of loads a few seconds apart: on this shared machine the speed drifts
    by half within minutes, and pairs of servers started one after the other (``paired_rounds``) put
    a minute of drift between the two sides of a pair. Each load's item ids are new, so that every
    matching answer is a new delivery. After each load of the server with routes, the benchmark waits
    until its outbox has sent everything, so that its sending falls in its own load's time (or after
    it, as after the last load of a server) and never in the other server's.

    The webhooks go to a receiver in a process of its own (write its URL as RECEIVER in the file),
    under the SCHED_IDLE policy: it stands for the receiver's own host, and takes only the CPU the
    servers leave.
    """
    sys.path.insert(0, str(ROOT))
    from benchmarks.receiver import ReceiverProcess

    with ReceiverProcess(idle=True) as receiver, tempfile.TemporaryDirectory() as folder:
        routes = Path(folder) / "routes.yaml"
        routes.write_text(args.routes.read_text().replace("RECEIVER", receiver.url))
        stores = {side: Path(folder) / f"{side}.db" for side in ("off", "on")}
        settings = {"off": {**env, "EARSHOT_FEEDBACK_DB": str(stores["off"])},
                    "on": {**env, "EARSHOT_FEEDBACK_DB": str(stores["on"]), "EARSHOT_ROUTES": str(routes)}}
        pairs = []
        with Server(TARGET, settings["off"]) as off, Server(TARGET, settings["on"]) as on:
            servers = {"off": off, "on": on}
            for server in servers.values():  # warm-up
                asyncio.run(concurrent_load(server.url, texts, args.clients, 5, id_prefix="warm-"))
                batched_load(server.url, texts, args.clients, args.clients * 5, id_prefix="warm-")
            for number in range(args.capture_rounds):
                pair: dict = {}
                for side in (("off", "on") if number % 2 == 0 else ("on", "off")):
                    url = servers[side].url
                    concurrent = asyncio.run(concurrent_load(url, texts, args.clients, args.requests_per_client,
                                                             id_prefix=f"c{number}-"))
                    batched = batched_load(url, texts, args.clients, args.clients * args.requests_per_client,
                                           id_prefix=f"b{number}-")
                    pair[side] = {"concurrent": concurrent, "batched": batched}
                    if side == "on":
                        pair["drain_s"] = wait_until_sent(stores["on"])
                pairs.append(pair)
        pairs[-1]["stored_on"] = stored_counts(stores["on"])
        pairs[-1]["received"] = receiver.count()
    return pairs


def wait_until_sent(store: Path, limit_s: float = 60.0) -> float:
    """Seconds until the store's outbox has nothing pending, retries included (at most ``limit_s``)."""
    import sqlite3

    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        with sqlite3.connect(store) as connection:
            waiting = connection.execute("SELECT COUNT(*) FROM earshot_deliveries WHERE state = 'pending'").fetchone()[0]
        if not waiting:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def stored_counts(store: Path) -> dict[str, int]:
    """What the server wrote: review items by state and deliveries by state (SQLite, read after it stopped)."""
    import sqlite3

    with sqlite3.connect(store) as connection:
        counts = dict(connection.execute("SELECT state, COUNT(*) FROM earshot_items GROUP BY state").fetchall())
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "earshot_deliveries" in tables:
            counts.update({f"deliveries_{state}": count for state, count in connection.execute(
                "SELECT state, COUNT(*) FROM earshot_deliveries GROUP BY state").fetchall()})
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=40)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", action="append", choices=["auto", "torch", "bf16", "onnx", "onnx-int8"],
                        help="EARSHOT_BACKEND of the server under test (repeatable; default: auto, the service's)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--scale", action="store_true",
                        help="also 256 clients x 1 text and 32 clients x 32 texts from several load processes")
    parser.add_argument("--processes", type=int, default=4, help="load processes for --scale")
    parser.add_argument("--capture", action="store_true",
                        help="also measure each backend with and without a feedback store (review capture on)")
    parser.add_argument("--capture-rounds", type=int, default=4, help="alternating pairs for --capture and --routes "
                        "(--routes: pairs of loads, a few seconds each; 12 or more)")
    parser.add_argument("--routes", type=Path, default=None,
                        help="also measure each backend with a feedback store, without and with this routes file "
                             "(its webhooks: a receiver in this process, at the URL RECEIVER)")
    parser.add_argument("--api-workers", type=int, default=0, metavar="N",
                        help="serve split: N API workers in front of the model worker (EARSHOT_API_WORKERS)")
    parser.add_argument("--compile", action="store_true", help="serve with --compile (EARSHOT_COMPILE=1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    texts = load_texts(4000)
    base_env = {"EARSHOT_MODEL": str(args.model.resolve())} if args.model else {}
    if args.api_workers:
        base_env["EARSHOT_API_WORKERS"] = str(args.api_workers)
    if args.compile:
        base_env["EARSHOT_COMPILE"] = "1"
    results: dict[str, dict] = {}
    for backend in args.backend or ["auto"]:
        results[backend] = measure_earshot({**base_env, "EARSHOT_BACKEND": backend}, texts, args.clients,
                                           args.requests_per_client, scale_processes=args.processes if args.scale else 0)
        if args.capture:
            results[f"{backend}+capture"] = paired_rounds(
                {**base_env, "EARSHOT_BACKEND": backend}, texts, args.clients, args.requests_per_client,
                args.capture_rounds, off={}, on={"EARSHOT_FEEDBACK_DB": "STORE"})
        if args.routes:
            results[f"{backend}+routes"] = routes_rounds({**base_env, "EARSHOT_BACKEND": backend}, texts, args)
    if not args.skip_naive:
        folder = naive_model_dir(args.model)
        with Server("benchmarks.naive_service:Naive", {"NAIVE_MODEL_DIR": str(folder)}) as server:
            asyncio.run(concurrent_load(server.url, texts, args.clients, 2))
            results["naive"] = {"concurrent": asyncio.run(concurrent_load(
                server.url, texts, args.clients, max(5, args.requests_per_client // 4)))}
    print(f"texts: {len(texts)} real airline tweets" if AIRLINE.is_file() else "texts: fixed examples")
    for name in args.backend or ["auto"]:
        concurrent, batched = results[name]["concurrent"], results[name]["batched"]
        backend = f"{name} -> {results[name]['served_backend']}" if name == "auto" else name
        if args.api_workers:
            backend += f", split: {args.api_workers} API workers"
        print(f"earshot [{backend}], {args.clients} clients x 1 text/request: {concurrent['texts_per_s']:.1f} texts/s, "
              f"p50 {concurrent['p50_ms']:.0f} ms, p95 {concurrent['p95_ms']:.0f} ms, "
              f"p99 {concurrent['p99_ms']:.0f} ms, {concurrent['failures']} failures and "
              f"{concurrent['mismatched_ids']} wrong ids of {concurrent['requests']}; the load client used "
              f"{concurrent['client_cpu_share']:.0%} of the machine's CPU")
        print(f"earshot [{backend}], 1 client x {args.clients} texts/request: {batched['texts_per_s']:.1f} texts/s")
        print(f"earshot [{backend}]: ratio concurrent / batched {concurrent['texts_per_s'] / batched['texts_per_s']:.2f} "
              f"(target >= 0.75); p99 {concurrent['p99_ms'] / 1000:.2f} s (target <= 1 s); "
              f"adaptive batching {results[name]['adaptive_batching']}")
        if "naive" in results:
            naive = results["naive"]["concurrent"]
            print(f"earshot [{backend}]: ratio to naive {concurrent['texts_per_s'] / naive['texts_per_s']:.2f} "
                  "(target >= 3)")
        for shape, figures in results[name]["scale"].items():
            print(f"earshot [{backend}], {shape.replace('x', ' clients x ')} texts/request from {figures['processes']} "
                  f"load processes: {figures['texts_per_s']:.1f} texts/s, p99 {figures['p99_ms']:.0f} ms, "
                  f"{figures['failures']} failures and {figures['mismatched_ids']} wrong ids of {figures['requests']}")
        for extra, what in (("capture", "capture on / off"), ("routes", "routes on / off")):
            rounds = results.get(f"{name}+{extra}")
            if rounds is None:
                continue
            for kind, label in (("concurrent", f"{args.clients} x 1"), ("batched", f"1 x {args.clients}")):
                ratios = sorted(r["on"][kind]["texts_per_s"] / r["off"][kind]["texts_per_s"] for r in rounds)
                print(f"earshot [{backend}] {what}, {label}: median {statistics.median(ratios):.2f} over "
                      f"{len(rounds)} alternating pairs ({', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.9)")
            print(f"earshot [{backend}] {extra}, last round: store holds {rounds[-1]['stored_on']}"
                  + (f"; the receiver kept {rounds[-1]['received']} deliveries" if "received" in rounds[-1] else ""))
    if "naive" in results:
        naive = results["naive"]["concurrent"]
        print(f"naive pipeline, {args.clients} clients x 1 text/request: {naive['texts_per_s']:.1f} texts/s, "
              f"p99 {naive['p99_ms']:.0f} ms, load client {naive['client_cpu_share']:.0%} of the CPU")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
