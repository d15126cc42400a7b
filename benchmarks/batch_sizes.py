"""Throughput of `predict` at each batch size on one device, beside the naive pipeline there.

For the GPU path: the model runs in half precision on CUDA (as `earshot serve` and `earshot score`
run it), so the best batch size there is far above the CPU's. In one run, on the same texts, it
prints texts/s for each batch size (median of the repeats), the best one, the naive
`transformers` pipeline called one text at a time on the same device, and how often the
half-precision labels equal fp32 ones.

    python benchmarks/batch_sizes.py --device cuda --texts 8000 --batch-size 32 --batch-size 256
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inference import airline_texts, naive_pipeline, texts_per_second  # noqa: E402
from earshot.model import DEFAULT_MODEL_DIR, EarshotModel  # noqa: E402

DEFAULT_BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Sweep:
    """texts/s per batch size, and the batch size that gave the most."""

    texts_per_s: dict[int, float]

    @property
    def best_batch_size(self) -> int:
        return max(self.texts_per_s, key=self.texts_per_s.__getitem__)


def sweep_batch_sizes(model: EarshotModel, texts: list[str], batch_sizes: list[int], repeats: int) -> Sweep:
    """Median texts/s of ``model.predict_proba`` at each batch size, on the model's own device.

    Example:
        >>> sweep_batch_sizes(model, ["late again"] * 64, [8, 32], repeats=1).best_batch_size in (8, 32)
        True
    """
    speeds = {}
    for size in batch_sizes:
        speeds[size] = texts_per_second(lambda t, s=size: model.predict_proba(t, batch_size=s), texts, repeats)
    return Sweep(speeds)


def label_agreement(fast: EarshotModel, reference: EarshotModel, texts: list[str]) -> tuple[float, float]:
    """Share of texts with the same sentiment label, and the largest pain-point score difference."""
    a, b = fast.predict_proba(texts), reference.predict_proba(texts)
    same = float((a["sentiment"].argmax(1) == b["sentiment"].argmax(1)).mean())
    return same, float(np.abs(a["pain_points"] - b["pain_points"]).max(initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--device", default=None, help="cuda, cpu, mps (default: best available)")
    parser.add_argument("--texts", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-texts", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable (default: 16 to 1024)")
    args = parser.parse_args()
    texts = airline_texts(args.texts)
    texts = (texts * (args.texts // max(1, len(texts)) + 1))[: args.texts]  # the file may be shorter
    model = EarshotModel.from_pretrained(args.model, device=args.device)
    name = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else str(model.device)
    print(f"{len(texts)} airline tweets on {name}, weights {next(model.parameters()).dtype}")
    sweep = sweep_batch_sizes(model, texts, sorted(args.batch_size or DEFAULT_BATCH_SIZES), args.repeats)
    for size, speed in sweep.texts_per_s.items():
        print(f"batch size {size:>5}: {speed:9.1f} texts/s")
    best = sweep.texts_per_s[sweep.best_batch_size]
    naive = texts_per_second(naive_pipeline(model), texts[: args.naive_texts], 1)
    print(f"best: batch size {sweep.best_batch_size}, {best:.1f} texts/s; naive pipeline one text per call "
          f"{naive:.1f} texts/s -> x{best / naive:.1f}")
    if next(model.parameters()).dtype != torch.float32:
        reference = EarshotModel.from_pretrained(args.model, device="cpu")
        same, diff = label_agreement(model, reference, texts[:2000])
        print(f"{next(model.parameters()).dtype} on {model.device} vs fp32 on cpu: same sentiment label on "
              f"{same:.2%} of {min(2000, len(texts))} texts, max pain-point score difference {diff:.4f}")


if __name__ == "__main__":
    main()
