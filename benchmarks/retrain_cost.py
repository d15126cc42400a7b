"""What a loop retrain costs, from the base encoder (today's ``earshot retrain``) or from the current model
(``earshot retrain --from current``), and what each gives.

Per data set and seed: the file is cut into test rows (15 %), development rows (5 %, where the trainer
validates) and a pool; a team labels ``--per-label`` pool rows per label and trains the first model with
default flags; reviewers then answer ``--answers`` other pool rows (gold labels). Both retrains train on the
labelled rows plus the answers with default flags; ``--from`` also starts from the first model (``--fast``
tries other settings over it). One JSON line per set and seed: seconds and the test figure (the head's
headline metric, the one training stops on: macro-F1 for a single head, micro-F1 for a multi head) of the
first model and of each retrain.

    python benchmarks/retrain_cost.py --set banking77:../shared/data/banking77/train.csv:intent:single:category \\
        --set hint3:../shared/data/hint3/train.csv:intent:single:label --seed 1 --work /tmp/rc \\
        --fast fast={} --fast polish12='{"few_shot_epochs": 12}' > retrain.jsonl
    python benchmarks/retrain_cost.py ... --adamw-loop-baseline   # also the retrain as earshot ran it before
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import adamw_loop  # noqa: E402
from earshot.model import Head  # noqa: E402
from earshot.model.modeling import encoder_layer_count  # noqa: E402
from earshot.training import ColumnMapping, HeadColumn, TrainingConfig, read_examples, split_validation  # noqa: E402
from earshot.training.config import continue_settings  # noqa: E402
from earshot.training.data import Example, head_gold, sample_per_label  # noqa: E402


@dataclass(frozen=True)
class DataSet:
    """``name:path:head:kind:column``, a file and the one head it is scored on."""

    name: str
    path: Path
    head: HeadColumn

    @classmethod
    def parse(cls, spec: str) -> "DataSet":
        name, path, head, kind, column = spec.split(":")
        return cls(name, Path(path), HeadColumn(head, kind, column))


def headline(model_dir: Path, head: Head, test: Sequence[Example]) -> float:
    from earshot.model import EarshotModel

    model = EarshotModel.from_pretrained(model_dir, backend="torch")
    probabilities = model.predict_proba([e.text for e in test])[head.name]
    model_head = model.config.head(head.name)
    metrics = model_head.behaviour.metrics(model_head, head_gold(model_head, test), probabilities,
                                           model_head.thresholds or None)
    return float(metrics[model_head.behaviour.headline])


def train(output: Path, heads: list[Head], rows: list[Example], dev: list[Example], settings: dict[str, Any],
          base_model: str | None = None) -> float:
    """Seconds to train ``output`` as ``earshot train`` with these settings would."""
    from earshot.training.pipeline import TrainingSet, fit

    config = TrainingConfig.from_dict({**settings, "output_dir": str(output), "progress": False})
    started = time.monotonic()
    fit(config, TrainingSet(heads, rows, dev), base_model=base_model)
    return time.monotonic() - started


def cached(path: Path, compute) -> dict[str, Any]:  # noqa: ANN001 - a callable returning the figures
    """``compute()``'s figures, kept in ``path`` so that a rerun with the same --work reuses them."""
    if path.is_file():
        return json.loads(path.read_text())
    figures = compute()
    path.write_text(json.dumps(figures))
    return figures


def run(data: DataSet, seed: int, per_label: int, answers: int, work: Path,
        variants: dict[str, dict[str, Any]], loop_baseline: bool = False) -> dict[str, Any]:
    examples = read_examples(data.path, ColumnMapping(heads=(data.head,))).examples
    labels = sorted({label for e in examples for label in _labels(e.labels[data.head.name])})
    head = Head(data.head.name, data.head.kind, labels)
    rest, test = split_validation(examples, 0.15, 0)
    pool, dev = split_validation(rest, 0.05, 0)
    labelled = sample_per_label(pool, [head], per_label, seed)
    taken = {id(e) for e in labelled}
    others = [e for e in pool if id(e) not in taken]
    answered = random.Random(seed).sample(others, min(answers, len(others)))
    work.mkdir(parents=True, exist_ok=True)
    first, rows = work / "first", [*labelled, *answered]
    row: dict[str, Any] = {"set": data.name, "seed": seed, "labelled": len(labelled), "answers": len(answered),
                           "test_rows": len(test)}

    def trained(name: str, settings: dict[str, Any], training: list[Example], base: str | None = None
                ) -> dict[str, Any]:
        seconds = train(work / name, [head], training, dev, {**settings, "seed": seed}, base)
        return {f"{name}_seconds": seconds, name: headline(work / name, head, test)}

    row.update(cached(work / "first.json", lambda: trained("first", {}, labelled)))
    row.update(cached(work / "full.json", lambda: trained("full", {}, rows)))
    if loop_baseline:  # the retrain from the base as earshot ran it before AdamW's fused kernel
        with adamw_loop():
            row.update(cached(work / "full_loop.json", lambda: trained("full_loop", {}, rows)))
    for name, settings in variants.items():
        fast = continue_settings(len(answered), len(rows), encoder_layer_count(first))
        row.update(trained(name, {**fast, **settings}, rows, str(first)))
    return row


def _labels(value: Any) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else ([] if value is None else [value])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="sets", action="append", type=DataSet.parse, required=True,
                        metavar="NAME:PATH:HEAD:KIND:COLUMN")
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument("--per-label", type=int, default=8)
    parser.add_argument("--answers", type=int, default=150)
    parser.add_argument("--fast", action="append", default=[], metavar="NAME=JSON",
                        help="a retrain from the first model with these settings over --from's (repeatable); "
                             "default: fast={} (--from's settings as they are)")
    parser.add_argument("--adamw-loop-baseline", action="store_true",
                        help="also retrain from the base with AdamW's plain loop per tensor (full_loop), the "
                             "optimizer earshot trained with before its fused kernel")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep models here; a rerun reuses each set and seed's first model and full retrain")
    args = parser.parse_args(argv)
    variants = dict(_variant(spec) for spec in args.fast) or {"fast": {}}
    root = args.work or Path(tempfile.mkdtemp(prefix="retrain-cost-"))
    for data in args.sets:
        for seed in args.seed:
            row = run(data, seed, args.per_label, args.answers, root / f"{data.name}-{seed}", variants,
                      args.adamw_loop_baseline)
            print(json.dumps(row), flush=True)


def _variant(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, settings = spec.partition("=")
    return name, json.loads(settings or "{}")


if __name__ == "__main__":
    main()
