"""CPU per webhook POST of the sender's HTTP client against httpx (what the sender used before).

Both POST the same body and headers to a receiver in a process of its own (benchmarks/receiver.py),
8 threads at a time in claims of 32, as the sender does; the figure is this process's CPU seconds
(user + system) per POST, which is what sending takes from the service's cores. Rounds alternate
the clients; the median of the rounds is printed.

    python benchmarks/post_cost.py [--posts 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.receiver import ReceiverProcess  # noqa: E402
from earshot.routing.http_post import KeepAliveClient  # noqa: E402

BODY = json.dumps({"delivery_id": "0" * 32, "route": "negative-to-receiver",
                   "item": {"id": "ticket-1", "text": "my flight was delayed three hours and nobody told us why " * 2,
                            "heads": {"sentiment": {"labels": [{"label": "negative", "score": 0.93}]}}}}).encode()
HEADERS = {"Content-Type": "application/json", "Idempotency-Key": "0" * 32, "X-Earshot-Delivery": "0" * 32,
           "X-Earshot-Rule": "negative-to-receiver", "X-Earshot-Timestamp": "1800000000",
           "User-Agent": "earshot-webhooks"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_ms_per_post(post: Callable[[], int], posts: int) -> float:
    pool = ThreadPoolExecutor(max_workers=8)
    started = cpu_seconds()
    for _ in range(0, posts, 32):
        statuses = list(pool.map(lambda _: post(), range(32)))
        if any(status != 200 for status in statuses):
            raise RuntimeError(f"the receiver answered {sorted(set(statuses))}")
    used = cpu_seconds() - started
    pool.shutdown()
    return 1000 * used / (posts - posts % 32 or 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import httpx

    figures: dict[str, list[float]] = {"httpx": [], "earshot": []}
    with ReceiverProcess() as receiver:
        for _ in range(args.rounds):
            with httpx.Client(timeout=10, follow_redirects=False) as client:
                figures["httpx"].append(cpu_ms_per_post(
                    lambda: client.post(receiver.url, content=BODY, headers=HEADERS).status_code, args.posts))
            keep_alive = KeepAliveClient(timeout=10)
            figures["earshot"].append(cpu_ms_per_post(lambda: keep_alive.post(receiver.url, BODY, HEADERS), args.posts))
            keep_alive.close()
            time.sleep(0.5)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        print(f"{name}: {medians[name]:.3f} ms CPU per POST (rounds {', '.join(f'{v:.3f}' for v in values)})")
    print(f"earshot / httpx: {medians['earshot'] / medians['httpx']:.2f}")


if __name__ == "__main__":
    main()
