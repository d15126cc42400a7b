"""Deliveries through a real `earshot serve --routes`: counts and latency, with a receiver that fails
and a service killed with kill -9, then with nothing failing.

1. A receiver that answers 500 for its first 20 s; ``--texts`` airline tweets through /classify
   (ten per request, each with an id); the service killed with kill -9 eight seconds later and
   restarted on the same store. Counted: answers that matched the rule (the rule applied to the
   answers the client got), deliveries received (unique, repeats), any delivery of an answer that
   did not match; latency from each answer to its first delivery.
2. The same number of new texts with the receiver answering at once: delivery latency.

The rule (``--rule-labels``, default negative sentiment) and the delivery policy are the defaults a
routes file gets.

    python benchmarks/routes.py [--model DIR] [--texts 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import TARGET, Server, load_texts  # noqa: E402
from benchmarks.receiver import Receiver  # noqa: E402


def start(env: dict[str, str]) -> Server:
    """`earshot`'s service under ``bentoml serve`` with ``env``, ready (load.py's server)."""
    return Server(TARGET, env).__enter__()


def kill(process: subprocess.Popen, signal_number: int) -> None:
    """Signal the server and every worker it started (BentoML gives each worker a session of its own)."""
    import psutil

    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in family if signal_number == 9 else family[:1]:
        try:
            member.send_signal(signal_number)
        except psutil.NoSuchProcess:
            pass  # already gone
    process.wait(timeout=60)
    psutil.wait_procs(family, timeout=60)


def classify(base: str, texts: list[str], first: int) -> dict[str, dict]:
    """Every text with id ``t{n}``, ten per request from 8 clients: each answer and when it came."""
    answers: dict[str, dict] = {}

    def post(start: int) -> None:
        items = [{"id": f"t{first + n}", "text": texts[n]} for n in range(start, min(start + 10, len(texts)))]
        response = httpx.post(f"{base}/classify", json={"items": items}, timeout=60)
        response.raise_for_status()
        now = time.time()
        for item, answer in zip(items, response.json()):
            answers[item["id"]] = {"heads": answer["heads"], "answered_at": now}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(0, len(texts), 10)))
    return answers


def first_arrivals(receiver: Receiver) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    for (_, body), at in zip(list(receiver.received), list(receiver.arrived)):
        arrivals.setdefault(body["item"]["id"], at)
    return arrivals


def figures(answers: dict[str, dict], book, receiver: Receiver, wait: float) -> dict[str, float]:
    expected = {key for key, seen in answers.items() if book.matching(seen["heads"], None)}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not expected <= set(first_arrivals(receiver)):
        time.sleep(0.5)
    arrivals = first_arrivals(receiver)
    ours = [body["item"]["id"] for _, body in receiver.received if body["item"]["id"] in answers]
    latency = sorted(arrivals[key] - answers[key]["answered_at"] for key in expected if key in arrivals)

    def pct(p: float) -> float:
        return latency[min(len(latency) - 1, int(p * len(latency)))] if latency else float("nan")

    return {"texts": len(answers), "matched": len(expected), "delivered": len(expected & set(arrivals)),
            "missing": len(expected - set(arrivals)), "not_matching_delivered": len(set(ours) - expected),
            "repeats": len(ours) - len(set(ours)), "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95),
            "latency_max_s": latency[-1] if latency else float("nan"),
            "latency_median_s": statistics.median(latency) if latency else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--rule-labels", default="sentiment: [negative]", help="the rule's `when` conditions")
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for the deliveries of each phase")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from earshot.model import DEFAULT_MODEL_DIR, read_config
    from earshot.routing.rules import read_rules

    texts = load_texts(2 * args.texts)
    folder = Path(tempfile.mkdtemp(prefix="earshot-routes-"))
    with Receiver(fail_for=1e9) as receiver:
        routes = folder / "routes.yaml"
        routes.write_text(f"routes:\n  - name: bench\n    when: {{{args.rule_labels}}}\n"
                          f"    send: {{webhook: {receiver.url}}}\n")
        book = read_rules(routes, read_config(args.model or DEFAULT_MODEL_DIR).heads)
        env = {"EARSHOT_FEEDBACK_DB": str(folder / "feedback.db"), "EARSHOT_ROUTES": str(routes),
               **({"EARSHOT_MODEL": str(args.model.resolve())} if args.model else {})}
        server = start(env)
        receiver.fail_until = time.monotonic() + 20
        answers = classify(server.url, texts[: args.texts], 0)
        time.sleep(8)
        kill(server.process, 9)
        received_before_kill = len(receiver.received)
        restarted = time.time()
        server = start(env)
        results = {"failing_receiver_and_kill_9": {**figures(answers, book, receiver, args.wait),
                                                    "received_before_kill": received_before_kill,
                                                    "restart_s": time.time() - restarted}}
        results["nothing_failing"] = figures(classify(server.url, texts[args.texts:], args.texts), book, receiver,
                                             args.wait)
        kill(server.process, 15)
    for phase, numbers in results.items():
        print(f"{phase}: {numbers['texts']} texts, {numbers['matched']} matched the rule, {numbers['delivered']} "
              f"delivered ({numbers['missing']} missing, {numbers['repeats']} repeats, "
              f"{numbers['not_matching_delivered']} not matching); answer to delivery p50 {numbers['latency_p50_s']:.2f} s, "
              f"p95 {numbers['latency_p95_s']:.2f} s, max {numbers['latency_max_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
