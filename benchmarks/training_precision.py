"""What one training step costs: fp32 against bfloat16 autocast, or AdamW's per-tensor loop against
its fused kernel (the optimizer `earshot train` takes).

Times the step the trainer takes (a packed forward pass of a batch of texts, a cross-entropy and a
binary cross-entropy loss on two heads, backward, gradient clipping, AdamW) for a base encoder, the
variants in turns: each round runs --steps steps of each, after one warm-up step. Prints each round's
seconds per step, then the medians and the median of the per-round ratios (first variant / second).

    python benchmarks/training_precision.py --base-model sentence-transformers/all-MiniLM-L6-v2
    python benchmarks/training_precision.py --base-model sentence-transformers/all-mpnet-base-v2 --steps 6
    python benchmarks/training_precision.py --compare optimizer --texts ../shared/data/banking77/train.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inference import airline_texts  # noqa: E402
from earshot.model import EarshotModel, Head  # noqa: E402
from earshot.model.device import bf16_matrix_units  # noqa: E402
from earshot.training.optimizer import adamw  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """One way to take a step: the autocast dtype (None: fp32) and whether AdamW is fused."""

    dtype: torch.dtype | None
    fused: bool


COMPARISONS = {
    "precision": {"fp32": Variant(None, True), "bf16 autocast": Variant(torch.bfloat16, True)},
    "optimizer": {"AdamW loop": Variant(None, False), "AdamW fused": Variant(None, True)},
}


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
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_texts(path: str | None, column: str, limit: int, seed: int = 13) -> list[str]:
    """``limit`` texts: a seeded sample of ``path``'s ``column``, or the first airline tweets."""
    if path is None:
        return airline_texts(limit)
    with open(path, encoding="utf-8") as handle:
        texts = [row[column] for row in csv.DictReader(handle)]
    return random.Random(seed).sample(texts, min(limit, len(texts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="precision")
    parser.add_argument("--texts", help="a CSV file to take the texts from (default: the airline tweets)")
    parser.add_argument("--column", default="text")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps of each variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    heads = [Head("sentiment", "single", ["negative", "neutral", "positive"]),
             Head("pain_points", "multi", [f"reason {i}" for i in range(9)])]
    torch.manual_seed(0)
    model = EarshotModel.from_base(args.base_model, heads)
    model.train()
    variants = COMPARISONS[args.compare]
    # A small rate: the weights barely move. Each variant keeps its own optimizer state.
    optimizers = {name: adamw(model.parameters(), lr=1e-6) if v.fused
                  else torch.optim.AdamW(model.parameters(), lr=1e-6, foreach=False, fused=False)
                  for name, v in variants.items()}
    rows = model.encode(read_texts(args.texts, args.column, args.batch_size * (args.steps + 1))).input_ids
    batches = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    tokens = statistics.median(len(row) for row in rows)
    print(f"{args.base_model}: batches of {args.batch_size} texts ({args.texts or 'airline tweets'}, median "
          f"{tokens:.0f} tokens), {args.steps} steps per variant per round, {torch.get_num_threads()} threads, "
          f"AMX bfloat16 units: {bf16_matrix_units()}")
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for name, variant in variants.items():
        step_seconds(model, optimizers[name], batches[-1:], variant.dtype)  # warm-up
    for round_number in range(1, args.rounds + 1):
        for name, variant in variants.items():
            seconds[name].append(step_seconds(model, optimizers[name], batches[:-1], variant.dtype))
        print(f"round {round_number}: " + ", ".join(f"{name} {s[-1]:.3f} s/step" for name, s in seconds.items()))
    first, second = seconds.values()
    ratios = [a / b for a, b in zip(first, second)]
    print("medians: " + ", ".join(f"{name} {statistics.median(s):.3f} s/step" for name, s in seconds.items())
          + f"; {' / '.join(variants)} {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
