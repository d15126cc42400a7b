"""Does the review loop pay? A team on Banking77 with 10 labels per intent, simulated end to end.

For each seed: the data file is split once (``--split-seed``) into test rows (reported), development
rows (the trainer validates there) and a pool. From the pool: ``--per-label`` rows per intent (the
team's labels) and ``--stream`` other texts (the traffic). Then, with the real commands and a real
server:

1. ``earshot train`` on the labelled rows; ``earshot promote --force`` into a fresh registry.
2. ``earshot serve --registry --feedback-db``, and the stream through ``POST /classify``.
   The service's capture rule ``EARSHOT_CAPTURE_TOP`` is set to ``--pool`` times ``--answers`` /
   ``--stream``: a team queues twice the reviews it can do, so that the queue's order (uncertainty,
   with near-duplicates sent behind: ``EARSHOT_REVIEW_SIMILAR``) has some to choose from.
3. A scripted reviewer answers ``--answers`` items with their gold labels through ``POST /corrections``:
   ``queue``: the first items of ``GET /review/queue``; ``random``: items drawn at random from the
   stream (corrected by the id they were classified with).
4. ``earshot retrain`` on all the answers (``--holdout-fraction 0``: the comparison runs on the test
   rows, so a correction held out would be a review thrown away), ``earshot compare`` on the test rows,
   ``earshot promote`` (the server must then report the new version at ``GET /model``), ``earshot
   rollback`` for the next strategy.

One JSON line per seed and strategy: top-1 on the test rows before and after, the compare report's
interval, the queue's size and reasons, seconds per step.

    python benchmarks/closed_loop.py --data ../shared/data/banking77/train.csv --seed 1 2 3 > loop.jsonl
    python benchmarks/closed_loop.py --summarise loop.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import Head  # noqa: E402
from earshot.training import ColumnMapping, HeadColumn, read_examples, split_validation  # noqa: E402
from earshot.training.data import Example, sample_per_label  # noqa: E402

HEAD = "intent"


@dataclass(frozen=True)
class LoopSplit:
    """Banking77 cut once into test rows, development rows and a pool; per seed, the team's labelled
    rows and the traffic come from the pool."""

    examples: list[Example]
    pool: list[Example]
    dev: list[Example]
    test: list[Example]
    head: Head

    @classmethod
    def read(cls, data: Path, test_fraction: float = 0.15, dev_fraction: float = 0.05,
             split_seed: int = 0) -> "LoopSplit":
        examples = read_examples(data, ColumnMapping(heads=(HeadColumn(HEAD, "single", "category"),))).examples
        rest, test = split_validation(examples, test_fraction, split_seed)
        pool, dev = split_validation(rest, dev_fraction, split_seed)
        return cls(examples, pool, dev, test, Head(HEAD, "single", sorted({e.labels[HEAD] for e in examples})))

    def team(self, seed: int, per_label: int, stream: int) -> tuple[list[Example], list[Example]]:
        """The team's labelled rows (``per_label`` per intent) and ``stream`` other texts, in order."""
        labelled = sample_per_label(self.pool, [self.head], per_label, seed)
        taken = {e.row for e in labelled}
        return labelled, random.Random(seed).sample([e for e in self.pool if e.row not in taken], stream)


def earshot(*args: str, log: Path) -> None:
    """Run an earshot command; its output goes to ``log``; a failure stops the benchmark with that output."""
    with open(log, "a") as out:
        out.write(f"\n$ earshot {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([sys.executable, "-m", "earshot.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"earshot {args[0]} failed ({done.returncode}); see {log}")


def write_rows(rows: Sequence[Example], path: Path) -> Path:
    pd.DataFrame({"text": [e.text for e in rows], "category": [e.labels[HEAD] for e in rows]}).to_csv(path, index=False)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``earshot serve`` in its own process group, ready when /readyz says so."""

    def __init__(self, registry: Path, store: Path, log: Path, top_share: float, similar: float | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}, "EARSHOT_RELOAD_SECONDS": "1",
               "EARSHOT_CAPTURE_TOP": str(top_share),
               **({"EARSHOT_REVIEW_SIMILAR": str(similar)} if similar is not None else {})}
        self.log = open(log, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "earshot.cli", "serve", "--registry", str(registry), "--feedback-db", str(store),
             "--port", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"earshot serve exited with {self.process.returncode}; see {log}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"earshot serve was not ready in 300 s; see {log}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, timeout=120)
    if response.status_code != 200:
        raise SystemExit(f"POST {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def wait_for_version(client: httpx.Client, version: str, timeout: float = 120) -> float:
    """Seconds until GET /model reports ``version``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.get("/model", timeout=10).json()["version"] == version:
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the server did not swap to {version} in {timeout} s")


def settled_counts(client: httpx.Client) -> dict[str, int]:
    """The store's counts once the capture writer has caught up (two equal readings in a row)."""
    last = None
    while True:
        counts = client.get("/review/stats", timeout=30).json()
        now = (counts["waiting"], counts["reviewed"], counts["answered"])
        if now == last:
            return counts
        last = now
        time.sleep(1.0)


def run_strategy(strategy: str, seed: int, work: Path, files: dict[str, Path], stream: list[Example],
                 gold: dict[str, str], answers: int, pool: float, before_version: str, log: Path,
                 similar: float | None = None, holdout: float = 0.0) -> dict[str, Any]:
    timings: dict[str, float] = {}
    registry, store = work / "registry", work / f"feedback-{strategy}.db"
    for leftover in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        leftover.unlink(missing_ok=True)  # a rerun in the same --work starts from an empty store
    started = time.monotonic()
    top_share = round(min(1.0, pool * answers / len(stream)), 4)
    server = Server(registry, store, log, top_share, similar)
    timings["serve_ready"] = time.monotonic() - started
    try:
        with httpx.Client(base_url=server.base) as client:
            started = time.monotonic()
            for i in range(0, len(stream), 32):
                post(client, "/classify", {"items": [{"id": f"s{i + j}", "text": e.text}
                                                     for j, e in enumerate(stream[i:i + 32])]})
            timings["classify"] = time.monotonic() - started
            counts = settled_counts(client)
            queue = client.get(f"/review/queue?limit={answers}", timeout=60).json()["items"]
            reasons = collections.Counter(r.split(":")[0] for item in queue for r in item["reasons"])
            if strategy == "queue":
                chosen = [{"id": item["id"], "text": item["text"], "labels": {HEAD: gold[item["text"]]}}
                          for item in queue]
            else:
                picks = random.Random(seed).sample(range(len(stream)), answers)
                chosen = [{"id": f"s{i}", "labels": {HEAD: stream[i].labels[HEAD]}} for i in picks]
            started = time.monotonic()
            for i in range(0, len(chosen), 50):
                post(client, "/corrections", {"items": chosen[i:i + 50], "reviewer": f"benchmark-{strategy}"})
            timings["corrections"] = time.monotonic() - started
            changed = sum(1 for item in queue[:answers] if item["answer"][HEAD]["labels"][0]["label"]
                          != gold[item["text"]]) if strategy == "queue" else None

            candidate = work / f"candidate-{strategy}"
            shutil.rmtree(candidate, ignore_errors=True)
            started = time.monotonic()
            earshot("retrain", "--data", str(files["train"]), "--validation", str(files["dev"]), "--feedback-db",
                    str(store), "--head", f"{HEAD}:single:category", "--output", str(candidate), "--registry",
                    str(registry), "--seed", str(seed), "--holdout-fraction", str(holdout), "--no-progress", log=log)
            timings["retrain"] = time.monotonic() - started
            report_file = work / f"compare-{strategy}.json"
            started = time.monotonic()
            earshot("compare", str(candidate), "--registry", str(registry), "--data", str(files["test"]), "--head",
                    f"{HEAD}:single:category", "-o", str(report_file), log=log)
            timings["compare"] = time.monotonic() - started
            report = json.loads(report_file.read_text())
            earshot("promote", report["candidate"], "--registry", str(registry), "--report", str(report_file), log=log)
            timings["swap"] = wait_for_version(client, report["candidate"])
            earshot("rollback", "--registry", str(registry), log=log)
            wait_for_version(client, before_version)
    finally:
        server.stop()
    accuracy = report["heads"][HEAD]["accuracy"]
    return {"strategy": strategy, "seed": seed, "answers": len(chosen), "queue_waiting": counts["waiting"],
            "capture_top_share": top_share, "review_similar": similar, "holdout_fraction": holdout,
            "stream": len(stream), "queue_reasons": dict(reasons), "queue_model_wrong": changed,
            "before": round(accuracy["current"], 4), "after": round(accuracy["candidate"], 4),
            "delta": round(accuracy["delta"], 4), "interval": [round(accuracy["low"], 4), round(accuracy["high"], 4)],
            "test_rows": report["rows"], "seconds": {k: round(v, 1) for k, v in timings.items()}}


def summarise(paths: Sequence[Path]) -> None:
    runs = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict]] = collections.defaultdict(list)
    for run in runs:
        by[run["strategy"]].append(run)
    print("| strategy | seeds | top-1 before | top-1 after | gain |")
    print("|---|---|---|---|---|")
    for strategy, rows in by.items():
        mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("before", "after", "delta")}
        each = ", ".join(f"{r['delta']:+.3f}" for r in sorted(rows, key=lambda r: r["seed"]))
        print(f"| {strategy} | {len(rows)} | {mean['before']:.3f} | {mean['after']:.3f} | {mean['delta']:+.3f} "
              f"({each}) |")
    if "queue" in by and "random" in by:
        seeds = sorted({r["seed"] for r in by["queue"]} & {r["seed"] for r in by["random"]})
        after = {s: {r["strategy"]: r["after"] for r in runs if r["seed"] == s} for s in seeds}
        gaps = [after[s]["queue"] - after[s]["random"] for s in seeds]
        print(f"\nqueue minus random, top-1 after retraining: {sum(gaps) / len(gaps):+.4f} "
              f"(seeds {seeds}: {', '.join(f'{g:+.4f}' for g in gaps)})")


def main() -> None:
    if sys.argv[1:2] == ["--summarise"]:
        return summarise([Path(p) for p in sys.argv[2:]])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Banking77's train.csv (text, category)")
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--strategy", nargs="+", default=["queue", "random"], choices=["queue", "random"])
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--answers", type=int, default=500)
    parser.add_argument("--pool", type=float, default=2.0,
                        help="the capture's top share is this many times --answers / --stream")
    parser.add_argument("--similar", type=float, default=None,
                        help="the service's EARSHOT_REVIEW_SIMILAR (unset: the service's default)")
    parser.add_argument("--holdout-fraction", type=float, default=0.0,
                        help="retrain's share of corrections held out (default 0: compare runs on the test rows)")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--dev-fraction", type=float, default=0.05)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep models, stores and logs here")
    args = parser.parse_args()
    split = LoopSplit.read(args.data, args.test_fraction, args.dev_fraction, args.split_seed)
    gold = {e.text: e.labels[HEAD] for e in split.examples}
    dev, test = split.dev, split.test
    root = args.work or Path(tempfile.mkdtemp(prefix="earshot-loop-"))
    for seed in args.seed:
        work = root / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        log = work / "commands.log"
        labelled, stream = split.team(seed, args.per_label, args.stream)
        files = {"train": write_rows(labelled, work / "train.csv"), "dev": write_rows(dev, work / "dev.csv"),
                 "test": write_rows(test, work / "test.csv")}
        started = time.monotonic()
        # Training is deterministic: a rerun in the same --work reuses the first model of this seed.
        if not (work / "initial" / "model.safetensors").is_file():
            earshot("train", "--data", str(files["train"]), "--validation", str(files["dev"]), "--head",
                    f"{HEAD}:single:category", "--output", str(work / "initial"), "--seed", str(seed), "--no-progress",
                    log=log)
        train_seconds = time.monotonic() - started
        shutil.rmtree(work / "registry", ignore_errors=True)
        earshot("promote", str(work / "initial"), "--registry", str(work / "registry"), "--force", log=log)
        before_version = (work / "registry" / "current").read_text().strip()
        for strategy in args.strategy:
            result = run_strategy(strategy, seed, work, files, stream, gold, args.answers, args.pool, before_version,
                                  log, args.similar, args.holdout_fraction)
            result["seconds"]["initial_train"] = round(train_seconds, 1)
            result["labelled_rows"] = len(labelled)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
