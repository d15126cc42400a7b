"""Training steps in fp32 against bfloat16 autocast, the precision `earshot train` takes on a CPU with AMX.

Times the step the trainer takes (a packed forward pass of a batch of airline tweets under autocast,
a cross-entropy and a binary cross-entropy loss on the two heads, backward, AdamW) for a base
encoder, the two precisions in turns: each round runs --steps steps of each, after one warm-up step.
Prints each round's seconds per step, then the medians and the median of the per-round ratios.

    python benchmarks/training_precision.py --base-model sentence-transformers/all-MiniLM-L6-v2
    python benchmarks/training_precision.py --base-model sentence-transformers/all-mpnet-base-v2 --steps 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inference import airline_texts  # noqa: E402
from earshot.model import EarshotModel, Head  # noqa: E402
from earshot.model.device import bf16_matrix_units  # noqa: E402

PRECISIONS = {"fp32": None, "bf16 autocast": torch.bfloat16}


def step_seconds(model: EarshotModel, optimizer: torch.optim.Optimizer, batches: list[list[list[int]]],
                 dtype: torch.dtype | None) -> float:
    """Median seconds of one training step over ``batches``, forward passes under autocast to ``dtype``."""
    times = []
    for rows in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            outputs = model.forward_rows(rows)
        sentiment = outputs["sentiment"].float()
        pain = outputs["pain_points"].float()
        loss = (F.cross_entropy(sentiment, torch.zeros(len(rows), dtype=torch.long))
                + F.binary_cross_entropy_with_logits(pain, torch.zeros_like(pain)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps of each precision per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    heads = [Head("sentiment", "single", ["negative", "neutral", "positive"]),
             Head("pain_points", "multi", [f"reason {i}" for i in range(9)])]
    torch.manual_seed(0)
    model = EarshotModel.from_base(args.base_model, heads)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # a small rate: the weights barely move
    rows = model.encode(airline_texts(args.batch_size * (args.steps + 1))).input_ids
    batches = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    print(f"{args.base_model}: batches of {args.batch_size} tweets, {args.steps} steps per precision per round, "
          f"{torch.get_num_threads()} threads, AMX bfloat16 units: {bf16_matrix_units()}")
    seconds: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for dtype in PRECISIONS.values():
        step_seconds(model, optimizer, batches[-1:], dtype)  # warm-up
    for round_number in range(1, args.rounds + 1):
        for name, dtype in PRECISIONS.items():
            seconds[name].append(step_seconds(model, optimizer, batches[:-1], dtype))
        print(f"round {round_number}: " + ", ".join(f"{name} {s[-1]:.3f} s/step" for name, s in seconds.items()))
    ratios = [a / b for a, b in zip(seconds["fp32"], seconds["bf16 autocast"])]
    print("medians: " + ", ".join(f"{name} {statistics.median(s):.3f} s/step" for name, s in seconds.items())
          + f"; fp32 / bf16 autocast {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
