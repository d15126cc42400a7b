"""A learning curve: k labelled examples per label, earshot's recipes beside TF-IDF on the same samples.

The data file is split once (``--split-seed``) into a test part (reported), a development part (what
the trainer validates on: its epoch choice, multi heads' thresholds; TF-IDF chooses C there) and
the pool that each k-shot sample is drawn from (``--seed``: one sample per seed). One JSON line per
run: recipe, shots, seed, training rows, seconds, metrics on the test part.

Recipes: ``default`` (TrainingConfig's defaults, what ``earshot train`` does without flags),
``fine-tune`` (the recipe earshot had before few-shot training: 4 epochs, patience 2, no contrastive
stage), ``few-shot`` and ``tfidf``.

    python benchmarks/few_shot.py --data ../shared/data/banking77/train.csv --head intent:single:category \\
        --shots 8 16 32 64 --seed 1 2 3 > runs.jsonl
    python benchmarks/few_shot.py --summarise runs.jsonl [--metric macro_f1]   # a markdown table

Needs scikit-learn (`pip install 'earshot[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tfidf import head_metric, tfidf_baseline  # noqa: E402

from earshot.flags import add_column_flags, column_mapping  # noqa: E402
from earshot.model import DEFAULT_BASE_MODEL, SINGLE, EarshotModel, Head  # noqa: E402
from earshot.training import Trainer, TrainingConfig, read_examples, split_validation  # noqa: E402
from earshot.training.data import Example, head_gold, sample_per_label  # noqa: E402
from earshot.training.taxonomy import read_taxonomy  # noqa: E402

RECIPES = {
    "default": {},
    "fine-tune": {"recipe": "fine-tune", "epochs": 4, "patience": 2},
    "few-shot": {"recipe": "few-shot"},
}


def earshot_run(recipe: str, heads: Sequence[Head], train: list[Example], dev: list[Example], test: list[Example],
                seed: int, base_model: str, **settings: object) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    torch.manual_seed(seed)
    model = EarshotModel.from_base(base_model, [Head(h.name, h.kind, h.labels) for h in heads])
    with tempfile.TemporaryDirectory() as folder:
        config = TrainingConfig(output_dir=folder, seed=seed, progress=False, **{**RECIPES[recipe], **settings})
        result = Trainer(model, train, dev, config).train()
    probabilities = model.predict_proba([e.text for e in test])
    metrics = {}
    for head in model.config.heads:
        thresholds = None if head.kind == SINGLE else np.array([head.thresholds[label] for label in head.labels])
        metrics[head.name] = head_metric(head, head_gold(head, test), probabilities[head.name], thresholds)
    run = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
           "dev_scores": [round(entry["validation_score"], 4) for entry in result.history]}
    return metrics, run


def tfidf_run(heads: Sequence[Head], train: list[Example], dev: list[Example], test: list[Example]) -> dict[str, dict[str, float]]:
    parts = {"train": train, "validation": dev, "test": test}
    texts = {name: [e.text for e in part] for name, part in parts.items()}
    metrics = {}
    for head in heads:
        gold = {name: head_gold(head, part) for name, part in parts.items()}
        metrics[head.name], c = tfidf_baseline(head, texts, gold)
        metrics[head.name]["c"] = c
    return metrics, {}


def summarise(paths: Sequence[Path], metric: str) -> None:
    """A markdown table of saved runs: per recipe and shots, the mean ``metric`` over seeds and its range."""
    runs = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    cells: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        name = run["recipe"] + (" + taxonomy" if run.get("taxonomy") else "")
        for head in run["metrics"].values():
            cells.setdefault((name, run["shots"]), []).append(head[metric])
    shots = sorted({s for _, s in cells})
    print("| recipe | " + " | ".join(f"{s} per label" for s in shots) + " |")
    print("|---|" + "---|" * len(shots))
    for name in dict.fromkeys(n for n, _ in cells):
        row = []
        for s in shots:
            values = cells.get((name, s))
            row.append("" if not values else f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f}, n={len(values)})"
                       if len(values) > 1 else f"{values[0]:.3f} (n=1)")
        print(f"| {name} | " + " | ".join(row) + " |")


def main() -> None:
    if sys.argv[1:2] == ["--summarise"]:
        summary = argparse.ArgumentParser(description="a table of saved runs")
        summary.add_argument("--summarise", type=Path, nargs="+", required=True)
        summary.add_argument("--metric", default="accuracy")
        options = summary.parse_args()
        return summarise(options.summarise, options.metric)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--recipe", nargs="+", default=["tfidf", "fine-tune", "default"],
                        choices=["tfidf", *RECIPES])
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--dev-fraction", type=float, default=0.05, help="of what the test part leaves")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--taxonomy", type=Path, help="add its descriptions and examples to each sample (as "
                        "`earshot train --taxonomy` does); with --shots 0 they are all the earshot recipes get, "
                        "and no development rows either (nothing labelled)")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainingConfig setting for the earshot recipes (repeatable), e.g. contrastive_steps=300")
    add_column_flags(parser)
    args = parser.parse_args()
    mapping = column_mapping(args)
    data = read_examples(args.data, mapping)
    heads = data.heads(mapping)
    described: list[Example] = []
    if args.taxonomy is not None:
        taxonomy = read_taxonomy(args.taxonomy)
        heads = [taxonomy.head(h.name).head() for h in heads]
        described = taxonomy.examples()
    settings = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    rest, test = split_validation(data.examples, args.test_fraction, args.split_seed)
    pool, dev = split_validation(rest, args.dev_fraction, args.split_seed)
    for shots in args.shots:
        for seed in args.seed:
            train = sample_per_label(pool, heads, shots, seed) if shots else []
            for recipe in args.recipe:
                if recipe == "tfidf" and not train:
                    continue
                started = time.monotonic()
                if recipe == "tfidf":
                    metrics, run = tfidf_run(heads, train, dev, test)
                else:
                    metrics, run = earshot_run(recipe, heads, [*train, *described], dev if train else [], test, seed,
                                               args.base_model, **settings)
                print(json.dumps({"recipe": recipe, "shots": shots, "seed": seed, "train_rows": len(train),
                                  **({"taxonomy": args.taxonomy.name} if described and recipe != "tfidf" else {}),
                                  **({"settings": settings} if settings and recipe != "tfidf" else {}), **run,
                                  "dev_rows": len(dev), "test_rows": len(test),
                                  "seconds": round(time.monotonic() - started, 1),
                                  "metrics": {h: {k: round(v, 4) for k, v in m.items()} for h, m in metrics.items()}}),
                      flush=True)


if __name__ == "__main__":
    main()
