"""Perturbed copies of a file's texts, for a teacher to label as extra distillation rows (``earshot
distill --unlabelled``), as in TinyBERT's data augmentation for small students.

Each text gets ``--copies`` variants, alternating between

- word dropout (each word kept with probability 0.85, at least one kept) and one swap of neighbours;
- a splice: the first third to two thirds of the text joined to the tail of another, random text, so
  that the teacher's answer on it is a mixture the gold labels never show.

Seeded, so the same input gives the same file. On the airline fast tier it did not help
(docs/experiments.md).

    python benchmarks/augment_texts.py runs/fast/train.csv runs/fast/augmented.csv --copies 2
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.files import atomic_path  # noqa: E402
from earshot.training.data import read_texts  # noqa: E402


def dropout_and_swap(words: list[str], rng: random.Random) -> list[str]:
    """``words`` with each kept at probability 0.85 (at least the first), then two neighbours swapped."""
    kept = [word for word in words if rng.random() > 0.15] or words[:1]
    if len(kept) > 3:
        i = rng.randrange(1, len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept


def splice(words: list[str], other: list[str], rng: random.Random) -> list[str]:
    """The first third to two thirds of ``words``, then ``other`` from a third to two thirds on."""
    head = words[: max(1, rng.randint(len(words) // 3, max(1, 2 * len(words) // 3)))]
    return head + other[rng.randint(len(other) // 3, max(len(other) // 3, 2 * len(other) // 3)):]


def augment(texts: list[str], copies: int, seed: int = 7) -> list[str]:
    """``copies`` perturbed variants of every text, in input order.

    Example:
        >>> len(augment(["late again, third time this week", "great crew"], copies=2))
        4
    """
    rng = random.Random(seed)
    out = []
    for text in texts:
        words = text.split()
        for k in range(copies):
            new = dropout_and_swap(words, rng) if k % 2 == 0 else splice(words, rng.choice(texts).split(), rng)
            out.append(" ".join(new))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a table with the texts (CSV, JSONL, Parquet)")
    parser.add_argument("output", type=Path, help="CSV written with one column, text")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    texts = [example.text for example in read_texts(args.data, args.text_column)]
    with atomic_path(args.output) as tmp:
        pd.DataFrame({"text": augment(texts, args.copies, args.seed)}).to_csv(tmp, index=False)
    print(f"{args.output}: {len(texts) * args.copies} texts")


if __name__ == "__main__":
    main()
