r"""Does the review loop pay? A team with 10 labelled rows per label (Banking77, or any data set with one
head, ``--head NAME:KIND:COLUMN``, single or multi), simulated end to end.

For each seed: the data file is split once (``--split-seed``) into test rows (reported), development
rows (the trainer validates there) and a pool. From the pool: ``--per-label`` rows per label (the
team's labels) and ``--stream`` other texts (the traffic). Then, with the real commands and a real
server:

1. ``earshot train`` on the labelled rows; ``earshot promote --force`` into a fresh registry.
2. ``earshot serve --registry --feedback-db``, and the stream through ``POST /classify``.
   The service's capture rule ``EARSHOT_CAPTURE_TOP`` is set to ``--pool`` times ``--answers`` /
   ``--stream``: a team queues twice the reviews it can do, so that the queue's order has some to
   choose from. ``--capture-margin`` sets ``EARSHOT_CAPTURE_MARGIN`` (0: the margin rule queues
   nothing, so a multi head's queue holds the top share and the random sample only).
3. A scripted reviewer answers ``--answers`` items with their gold labels through ``POST /corrections``
   (a label for a single head, a list for a multi head). ``fix``: the first items of ``GET
   /review/queue?purpose=fix`` (uncertainty; ``--similar`` sends near-duplicates behind: ``EARSHOT_REVIEW_SIMILAR``);
   ``teach``: of ``GET /review/queue?purpose=teach`` (one item per k-means cluster of the waiting texts,
   ``earshot.loop.teach``); ``random``: items drawn at random from the stream (corrected by the id they
   were classified with). ``queue`` is the old name of ``fix`` (result files written before keep it).
4. ``earshot retrain`` on all the answers (``--holdout-fraction 0``: the comparison runs on the test
   rows, so a correction held out would be a review thrown away), from the served model (``--from
   current``, the loop's retrain in the README) or, with ``--retrain-from none``, from the base encoder;
   ``earshot compare`` on the test rows, ``earshot promote`` (the server must then report the new
   version at ``GET /model``), ``earshot rollback`` for the next strategy.

One JSON line per seed and strategy, with ``set`` (``--name``, default the data file's folder): the
headline metric on the test rows before and after (accuracy for a single head, micro-F1 for a multi
head) with the compare report's interval, macro-F1 before and after, the share of the answered items
the model had answered wrong (``wrong_rate``; multi: the set of labels it gave differs from the gold
set), the queue's size, the reasons of the picks (none for random answers, which use no queue),
seconds per step. ``--summarise`` prints, per set and strategy, the means over seeds, and per set
teach - random and fix - random after retraining.

    python benchmarks/closed_loop.py --data ../shared/data/banking77/train.csv --seed 1 2 3 > loop.jsonl
    python benchmarks/closed_loop.py --data ../shared/data/goemotions/train.csv --head sentiment:multi:sentiment \
        --strategy teach random --retrain-from none --seed 1 2 3 >> loop.jsonl
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

DEFAULT_HEAD = "intent:single:category"  # Banking77's intents
STRATEGIES = ("fix", "teach", "random")
OLD_NAMES = {"queue": "fix"}  # result lines written before the queue had two purposes
QUEUE_LIMIT = 1000  # GET /review/queue's largest limit (service.review.MAX_QUEUE_LIMIT)

Gold = str | tuple[str, ...]


@dataclass(frozen=True)
class LoopSplit:
    """A data set cut once into test rows, development rows and a pool; per seed, the team's labelled
    rows and the traffic come from the pool. Rows without a label of a single head are left out."""

    examples: list[Example]
    pool: list[Example]
    dev: list[Example]
    test: list[Example]
    head: Head

    @classmethod
    def read(cls, data: Path, column: HeadColumn, test_fraction: float = 0.15, dev_fraction: float = 0.05,
             split_seed: int = 0, text_column: str = "text", none_labels: Sequence[str] = ()) -> "LoopSplit":
        mapping = ColumnMapping(text=text_column, heads=(column,), none_labels=tuple(none_labels))
        examples = [e for e in read_examples(data, mapping).examples if e.labels[column.name] is not None]
        rest, test = split_validation(examples, test_fraction, split_seed)
        pool, dev = split_validation(rest, dev_fraction, split_seed)
        labels = sorted({label for e in examples for label in label_set(e.labels[column.name])})
        return cls(examples, pool, dev, test, Head(column.name, column.kind, labels))

    def team(self, seed: int, per_label: int, stream: int) -> tuple[list[Example], list[Example]]:
        """The team's labelled rows (``per_label`` per label) and ``stream`` other texts, in order."""
        labelled = sample_per_label(self.pool, [self.head], per_label, seed)
        taken = {e.row for e in labelled}
        return labelled, random.Random(seed).sample([e for e in self.pool if e.row not in taken], stream)


def label_set(value: str | Sequence[str] | None) -> frozenset[str]:
    """A single head's label or a multi head's labels as a set (None: empty)."""
    if value is None:
        return frozenset()
    return frozenset([value]) if isinstance(value, str) else frozenset(value)


def answer_wrong(answer: dict[str, Any] | None, gold: Gold) -> bool:
    """Whether a head's answer (``{"labels": [{"label", "score"}, ...]}``, as /classify and the queue give
    it) differs from the gold: single, its one label; multi, the labels it gave (those at or over their
    thresholds; the answer lists only those) against the gold set."""
    given = [entry["label"] for entry in (answer or {}).get("labels", [])]
    if isinstance(gold, str):
        return given[:1] != [gold]
    return set(given) != set(gold)


def correction_value(gold: Gold) -> str | list[str]:
    """The value /corrections takes for a head: a label (single) or a list of labels (multi)."""
    return gold if isinstance(gold, str) else list(gold)


def earshot(*args: str, log: Path) -> None:
    """Run an earshot command; its output goes to ``log``; a failure stops the benchmark with that output."""
    with open(log, "a") as out:
        out.write(f"\n$ earshot {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([sys.executable, "-m", "earshot.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"earshot {args[0]} failed ({done.returncode}); see {log}")


def cell(value: str | tuple[str, ...] | None) -> str:
    """A label cell as training reads it: one label; a multi head's labels joined with ';' (a JSON list
    where a label holds ';' or the cell would start with '['); empty = none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    joined = ";".join(value)
    if any(";" in label for label in value) or joined.startswith("["):
        return json.dumps(list(value), ensure_ascii=False)
    return joined


def write_rows(rows: Sequence[Example], head: HeadColumn, path: Path) -> Path:
    """The rows as ``text`` and the head's column, as ``head_flag(head)`` tells the commands to read them."""
    pd.DataFrame({"text": [e.text for e in rows], head.column: [cell(e.labels[head.name]) for e in rows]}
                 ).to_csv(path, index=False)
    return path


def head_flag(head: HeadColumn) -> str:
    """``--head``'s value for the files of ``write_rows``."""
    return f"{head.name}:{head.kind}:{head.column}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``earshot serve`` in its own process group, ready when /readyz says so."""

    def __init__(self, registry: Path, store: Path, log: Path, top_share: float, similar: float | None = None,
                 margin: float | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}, "EARSHOT_RELOAD_SECONDS": "1",
               "EARSHOT_CAPTURE_TOP": str(top_share),
               **({"EARSHOT_REVIEW_SIMILAR": str(similar)} if similar is not None else {}),
               **({"EARSHOT_CAPTURE_MARGIN": str(margin)} if margin is not None else {})}
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


def settled_counts(client: httpx.Client, served: int, timeout: float = 300.0) -> dict[str, int]:
    """The store's counts once the capture writer has stored all ``served`` answers: each was sent with
    an id, so each is a row (waiting, reviewed or answered). Two equal readings a second apart were taken
    as caught up before, which a writer stalled on a busy CPU can also give."""
    deadline = time.monotonic() + timeout
    while True:
        counts = client.get("/review/stats", timeout=30).json()
        stored = counts["waiting"] + counts["reviewed"] + counts["answered"]
        if stored >= served:
            return counts
        if time.monotonic() > deadline:
            raise SystemExit(f"the review store holds {stored} of the {served} answers served after {timeout:.0f} s: "
                             "the capture dropped or lost some (the server log says which)")
        time.sleep(0.5)


def run_strategy(strategy: str, seed: int, work: Path, files: dict[str, Path], stream: list[Example],
                 gold: dict[str, Gold], answers: int, pool: float, before_version: str, log: Path,
                 head: HeadColumn, similar: float | None = None, holdout: float = 0.0,
                 retrain_from: str = "current", queue_only: bool = False,
                 capture_margin: float | None = None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    registry, store = work / "registry", work / f"feedback-{strategy}.db"
    for leftover in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        leftover.unlink(missing_ok=True)  # a rerun in the same --work starts from an empty store
    started = time.monotonic()
    top_share = round(min(1.0, pool * answers / len(stream)), 4)
    server = Server(registry, store, log, top_share, similar, capture_margin)
    timings["serve_ready"] = time.monotonic() - started
    name = head.name
    try:
        with httpx.Client(base_url=server.base) as client:
            started = time.monotonic()
            given: dict[str, dict[str, Any] | None] = {}  # each stream item's answer of the head, by id
            for i in range(0, len(stream), 32):
                for answer in post(client, "/classify", {"items": [{"id": f"s{i + j}", "text": e.text}
                                                                   for j, e in enumerate(stream[i:i + 32])]}):
                    given[answer["id"]] = answer["heads"].get(name)
            timings["classify"] = time.monotonic() - started
            counts = settled_counts(client, len(stream))
            reasons: dict[str, int] | None = None  # random answers no queue, so it has no reasons
            if strategy in ("fix", "teach"):
                queue = client.get(f"/review/queue?limit={min(answers, QUEUE_LIMIT)}&purpose={strategy}",
                                   timeout=60).json()["items"]
                reasons = dict(collections.Counter(r.split(":")[0] for item in queue for r in item["reasons"]))
                chosen = [{"id": item["id"], "text": item["text"],
                           "labels": {name: correction_value(gold[item["text"]])}} for item in queue[:answers]]
                wrong = sum(answer_wrong(item["answer"].get(name), gold[item["text"]]) for item in queue[:answers])
            else:
                picks = random.Random(seed).sample(range(len(stream)), answers)
                chosen = [{"id": f"s{i}", "labels": {name: correction_value(stream[i].labels[name])}} for i in picks]
                wrong = sum(answer_wrong(given.get(f"s{i}"), stream[i].labels[name]) for i in picks)
            if queue_only:
                return queue_result(strategy, seed, head, retrain_from, chosen, wrong, counts, top_share, similar,
                                    len(stream), reasons, timings, capture_margin)
            started = time.monotonic()
            for i in range(0, len(chosen), 50):
                post(client, "/corrections", {"items": chosen[i:i + 50], "reviewer": f"benchmark-{strategy}"})
            timings["corrections"] = time.monotonic() - started

            candidate = work / f"candidate-{strategy}"
            shutil.rmtree(candidate, ignore_errors=True)
            started = time.monotonic()
            earshot("retrain", "--data", str(files["train"]), "--validation", str(files["dev"]), "--feedback-db",
                    str(store), "--head", head_flag(head), "--output", str(candidate), "--registry",
                    str(registry), "--seed", str(seed), "--holdout-fraction", str(holdout), "--no-progress",
                    *(["--from", "current"] if retrain_from == "current" else []), log=log)
            timings["retrain"] = time.monotonic() - started
            report_file = work / f"compare-{strategy}.json"
            started = time.monotonic()
            earshot("compare", str(candidate), "--registry", str(registry), "--data", str(files["test"]), "--head",
                    head_flag(head), "-o", str(report_file), log=log)
            timings["compare"] = time.monotonic() - started
            report = json.loads(report_file.read_text())
            earshot("promote", report["candidate"], "--registry", str(registry), "--report", str(report_file), log=log)
            timings["swap"] = wait_for_version(client, report["candidate"])
            earshot("rollback", "--registry", str(registry), log=log)
            wait_for_version(client, before_version)
    finally:
        server.stop()
    scores = report["heads"][name]
    metric = "accuracy" if head.kind == "single" else "micro_f1"  # the headline of this benchmark
    headline = scores[metric]
    macro = scores.get("macro_f1")
    return {"strategy": strategy, "seed": seed, "head": head_flag(head), "metric": metric,
            "retrain_from": retrain_from, "answers": len(chosen), "model_wrong": wrong,
            "wrong_rate": round(wrong / len(chosen), 4) if chosen else None, "queue_waiting": counts["waiting"],
            "capture_top_share": top_share, "capture_margin": capture_margin, "review_similar": similar,
            "holdout_fraction": holdout,
            "stream": len(stream), "queue_reasons": reasons,
            "before": round(headline["current"], 4), "after": round(headline["candidate"], 4),
            "delta": round(headline["delta"], 4), "interval": [round(headline["low"], 4), round(headline["high"], 4)],
            "before_macro_f1": round(macro["current"], 4) if macro else None,
            "after_macro_f1": round(macro["candidate"], 4) if macro else None,
            "test_rows": report["rows"], "seconds": {k: round(v, 1) for k, v in timings.items()}}


def queue_result(strategy: str, seed: int, head: HeadColumn, retrain_from: str, chosen: list, wrong: int,
                 counts: dict[str, int], top_share: float, similar: float | None, stream: int,
                 reasons: dict[str, int] | None, timings: dict[str, float],
                 capture_margin: float | None = None) -> dict[str, Any]:
    """A ``--queue-only`` line: which answers the strategy picked and how many the model had wrong, no retrain."""
    return {"strategy": strategy, "seed": seed, "head": head_flag(head), "retrain_from": retrain_from,
            "queue_only": True, "answers": len(chosen), "model_wrong": wrong,
            "wrong_rate": round(wrong / len(chosen), 4) if chosen else None, "queue_waiting": counts["waiting"],
            "capture_top_share": top_share, "capture_margin": capture_margin, "review_similar": similar,
            "stream": stream,
            "queue_reasons": reasons, "seconds": {k: round(v, 1) for k, v in timings.items()}}


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _shown(value: float | None, sign: bool = False) -> str:
    return "–" if value is None else f"{value:+.3f}" if sign else f"{value:.3f}"


def summarise(paths: Sequence[Path]) -> None:
    """Per set (and retrain start) and strategy, the means over seeds; then teach - random and fix - random."""
    runs = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], dict[str, list[dict]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for run in runs:
        run["strategy"] = OLD_NAMES.get(run["strategy"], run["strategy"])
        if run.get("wrong_rate") is None and run.get("queue_model_wrong") is not None and run.get("answers"):
            run["wrong_rate"] = run["queue_model_wrong"] / run["answers"]  # a line written before wrong_rate
        start = "queue only" if run.get("queue_only") else run.get("retrain_from", "none")
        if run.get("review_similar") is not None:
            start += f", similar {run['review_similar']}"
        if run.get("capture_margin") is not None:
            start += f", capture margin {run['capture_margin']}"
        by[(run.get("set", "-"), start)][run["strategy"]].append(run)
    print("| set | from | strategy | seeds | metric | before | after | gain (per seed) | macro-F1 before "
          "| macro-F1 after | model wrong |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, start), strategies in by.items():
        for strategy, rows in strategies.items():
            rows = sorted(rows, key=lambda r: r["seed"])
            mean = {key: _mean([r.get(key) for r in rows])
                    for key in ("before", "after", "delta", "before_macro_f1", "after_macro_f1", "wrong_rate")}
            each = ", ".join(f"{r['delta']:+.3f}" for r in rows if r.get("delta") is not None)
            gain = f"{_shown(mean['delta'], True)} ({each})" if each else "–"
            metrics = "/".join(sorted({r.get("metric", "accuracy") for r in rows}))
            print(f"| {name} | {start} | {strategy} | {len(rows)} | {metrics} | {_shown(mean['before'])} "
                  f"| {_shown(mean['after'])} | {gain} "
                  f"| {_shown(mean['before_macro_f1'])} | {_shown(mean['after_macro_f1'])} "
                  f"| {_shown(mean['wrong_rate'])} |")
    gaps = []
    for (name, start), strategies in by.items():
        for other in ("teach", "fix"):
            if other not in strategies or "random" not in strategies:
                continue
            after = {s: {r["seed"]: r["after"] for r in strategies[s] if r.get("after") is not None}
                     for s in (other, "random")}
            seeds = sorted(set(after[other]) & set(after["random"]))
            if seeds:
                each = [after[other][s] - after["random"][s] for s in seeds]
                gaps.append(f"| {name} | {start} | {other} − random | {sum(each) / len(each):+.4f} | "
                            + ", ".join(f"{s}: {g:+.4f}" for s, g in zip(seeds, each)) + " |")
    if gaps:
        print("\nHeadline metric after retraining (accuracy for a single head, micro-F1 for a multi head):\n")
        print("| set | from | difference | mean | per seed |")
        print("|---|---|---|---|---|")
        print("\n".join(gaps))


def main() -> None:
    if sys.argv[1:2] == ["--summarise"]:
        return summarise([Path(p) for p in sys.argv[2:]])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True,
                        help="a labelled table with a text column, e.g. Banking77's train.csv (text, category)")
    parser.add_argument("--head", default=DEFAULT_HEAD, metavar="NAME:KIND:COLUMN",
                        help=f"the head to train and its column; KIND single or multi (default {DEFAULT_HEAD}); "
                             "a multi cell is 'a;b', a JSON list, or one label; empty = none")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--none-label", action="append", default=[], metavar="LABEL",
                        help="a value of a multi head's column that means 'no label' (repeatable)")
    parser.add_argument("--name", default=None, help="the set's name in the results (default: the data's folder)")
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--strategy", nargs="+", default=list(STRATEGIES), choices=STRATEGIES,
                        help="fix / teach: the first items of the review queue with that purpose; random: "
                             "items drawn from the stream")
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--answers", type=int, default=500)
    parser.add_argument("--pool", type=float, default=2.0,
                        help="the capture's top share is this many times --answers / --stream")
    parser.add_argument("--similar", type=float, default=None,
                        help="the service's EARSHOT_REVIEW_SIMILAR (unset: the service's default)")
    parser.add_argument("--capture-margin", type=float, default=None,
                        help="the service's EARSHOT_CAPTURE_MARGIN (unset: the service's default); with 0 a multi "
                             "head's answers are queued by the top share and the random sample alone")
    parser.add_argument("--holdout-fraction", type=float, default=0.0,
                        help="retrain's share of corrections held out (default 0: compare runs on the test rows)")
    # current by default: the loop's retrain after answers. From the base, on a few crowd-labelled rows,
    # which rows a retrain gets moves it by more than the order of the reviews does (docs/experiments.md,
    # "The review loop on airline complaint reasons").
    parser.add_argument("--retrain-from", choices=["none", "current"], default="current",
                        help="current (default): retrain from the served model (earshot retrain --from current); "
                             "none: from the base encoder")
    parser.add_argument("--queue-only", action="store_true",
                        help="stop once each strategy has picked its answers: report how many the model had wrong "
                             "(the fix purpose's measure), without the retrain")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--dev-fraction", type=float, default=0.05)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep models, stores and logs here (one folder per data set and head: a seed's first "
                             "model is reused)")
    args = parser.parse_args()
    try:
        head = HeadColumn.parse(args.head)
    except ValueError as error:
        parser.error(str(error))
    if head.kind not in ("single", "multi"):
        parser.error(f"--head {args.head}: KIND must be single or multi")
    if head.column == "text":
        parser.error("--head: the label column cannot be called 'text' (the rows are written with a 'text' column)")
    if args.answers > QUEUE_LIMIT and {"fix", "teach"} & set(args.strategy):
        parser.error(f"--answers: the review queue lists at most {QUEUE_LIMIT} items")
    name = args.name or args.data.resolve().parent.name
    split = LoopSplit.read(args.data, head, args.test_fraction, args.dev_fraction, args.split_seed,
                           args.text_column, args.none_label)
    gold = {e.text: e.labels[head.name] for e in split.examples}
    dev, test = split.dev, split.test
    root = args.work or Path(tempfile.mkdtemp(prefix="earshot-loop-"))
    for seed in args.seed:
        work = root / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        log = work / "commands.log"
        labelled, stream = split.team(seed, args.per_label, args.stream)
        files = {"train": write_rows(labelled, head, work / "train.csv"),
                 "dev": write_rows(dev, head, work / "dev.csv"), "test": write_rows(test, head, work / "test.csv")}
        started = time.monotonic()
        # Training is deterministic: a rerun in the same --work reuses the first model of this seed.
        if not (work / "initial" / "model.safetensors").is_file():
            earshot("train", "--data", str(files["train"]), "--validation", str(files["dev"]), "--head",
                    head_flag(head), "--output", str(work / "initial"), "--seed", str(seed), "--no-progress",
                    log=log)
        train_seconds = time.monotonic() - started
        shutil.rmtree(work / "registry", ignore_errors=True)
        earshot("promote", str(work / "initial"), "--registry", str(work / "registry"), "--force", log=log)
        before_version = (work / "registry" / "current").read_text().strip()
        for strategy in args.strategy:
            result = run_strategy(strategy, seed, work, files, stream, gold, args.answers, args.pool, before_version,
                                  log, head, args.similar, args.holdout_fraction, args.retrain_from, args.queue_only,
                                  args.capture_margin)
            result["seconds"]["initial_train"] = round(train_seconds, 1)
            result["labelled_rows"] = len(labelled)
            print(json.dumps({"set": name, **result}), flush=True)


if __name__ == "__main__":
    main()
