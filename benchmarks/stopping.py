"""When should fine-tuning stop? One run per data set, every epoch scored, stopping rules replayed on it.

``record``: trains exactly as ``earshot train`` with the same flags would (same data, config, seed, schedule),
and after each epoch also scores a test file the trainer never sees, with that epoch's thresholds (tuned on
the validation rows, as the trainer keeps them). Writes one JSON file: per epoch the validation score, the
test score (mean of the heads' headline metrics, as the validation score) and the seconds of training so far
(test scoring excluded).

``replay``: for each stopping rule (a margin an epoch must beat the best by to reset the patience, and a
patience), walks the recorded epochs as the trainer would and reports where it stops, the epoch it keeps,
that epoch's test score and the time, against the run's own rule. A rule needing epochs past the recorded
run is marked so: the replay is exact only inside it (same seed, same schedule: a run that stops earlier
has trained the same epochs).

    python benchmarks/stopping.py record --data T.csv --validation V.csv --test TEST.csv --output /tmp/m \\
        --sentiment-column sentiment --history semeval.json
    python benchmarks/stopping.py record ... --adamw-loop   # the optimizer earshot used before its fused kernel
    python benchmarks/stopping.py replay semeval.json mams.json --margin 0 0.002 0.005 0.01 --patience 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import adamw_loop  # noqa: E402


def record(args: argparse.Namespace) -> None:
    import torch

    from earshot.flags import column_mapping, data_sources, training_config
    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel
    from earshot.training.data import head_gold, read_examples
    from earshot.training.pipeline import load_training_set
    from earshot.training.trainer import Trainer, validation_score

    config = training_config(args)
    training = load_training_set(data_sources(args), config.seed)
    known = {head.name: head.labels for head in training.heads}
    test = read_examples(args.test, column_mapping(args), known_labels=known).examples
    epochs: list[dict[str, Any]] = []

    class Recording(Trainer):
        """The trainer, scoring the test rows after each epoch with the thresholds that epoch tuned."""

        def evaluate_validation(self):  # noqa: ANN202 - the parent's signature
            metrics, thresholds = super().evaluate_validation()
            self.last_thresholds = thresholds
            return metrics, thresholds

        def _end_epoch(self, epoch, train_loss, state):  # noqa: ANN001, ANN202
            super()._end_epoch(epoch, train_loss, state)
            started = time.monotonic()
            probabilities = self.model.predict_proba([e.text for e in test])
            metrics = {}
            for head in self.model.config.heads:
                gold = head_gold(head, test)
                metrics[head.name] = head.behaviour.metrics(head, gold, probabilities[head.name],
                                                            self.last_thresholds.get(head.name))
            self.test_seconds += time.monotonic() - started
            epochs.append({"epoch": epoch, "validation": state.history[-1]["validation_score"],
                           "test": validation_score(metrics, self.model.config.heads),
                           "test_metrics": {h: {k: v for k, v in m.items() if isinstance(v, float)}
                                            for h, m in metrics.items()},
                           "seconds": time.monotonic() - self.started - self.test_seconds})
            Path(args.history).write_text(json.dumps(self.summary(state.best_epoch), indent=1))

        def summary(self, best_epoch: int) -> dict[str, Any]:
            return {"data": str(args.data), "train_rows": len(self.train_examples), "recipe": self.recipe(),
                    "patience": self.patience, "planned_epochs": self.planned, "best_epoch": best_epoch,
                    "epochs": epochs}

        def train(self, resume: bool = False):  # noqa: ANN202
            self.started, self.test_seconds = time.monotonic(), 0.0
            steps = -(-len(self.train_examples) // self.config.batch_size)
            self.planned = self.config.planned_epochs(steps, self.recipe() == "few-shot")
            return super().train(resume)

    torch.manual_seed(config.seed)
    model = EarshotModel.from_base(args.base_model or DEFAULT_BASE_MODEL, training.heads)
    trainer = Recording(model, training.train, training.validation, config)
    with adamw_loop() if args.adamw_loop else nullcontext():  # the optimizer before its fused kernel
        result = trainer.train()
    summary = trainer.summary(result.best_epoch)
    summary["total_seconds"] = result.seconds - trainer.test_seconds
    Path(args.history).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "epochs"}))


@dataclass(frozen=True)
class Outcome:
    stopped: int       # the last epoch trained
    kept: int          # the epoch whose model is kept
    test: float
    seconds: float
    complete: bool     # False: the rule needed epochs past the recorded run


def replay_rule(epochs: Sequence[dict[str, Any]], margin: float, patience: int, planned: int) -> Outcome:
    """Walk the recorded epochs as ``Trainer`` does: an epoch better than the best keeps its model; it
    resets the patience only when better by more than ``margin``."""
    best, reference, bad, kept = -1.0, -1.0, 0, epochs[0]
    for row in epochs:
        score = row["validation"]
        improved = score > best
        if improved:
            best, kept = score, row
        if improved and score > reference + margin:
            reference, bad = score, 0
        else:
            bad += 1
        if (patience > 0 and bad >= patience) or row["epoch"] >= planned:
            return Outcome(row["epoch"], kept["epoch"], kept["test"], row["seconds"], True)
    last = epochs[-1]
    return Outcome(last["epoch"], kept["epoch"], kept["test"], last["seconds"], False)


def replay(args: argparse.Namespace) -> None:
    for path in args.histories:
        run = json.loads(Path(path).read_text())
        epochs, planned = run["epochs"], run["planned_epochs"]
        today = replay_rule(epochs, 0.0, run["patience"], planned)
        print(f"\n{path}: {run['train_rows']} rows, {run['recipe']}, planned {planned} epochs, patience "
              f"{run['patience']}; recorded {len(epochs)} epochs, best {run['best_epoch']}")
        print(f"  run's own rule: stops {today.stopped}, keeps {today.kept}, test {today.test:.4f}, "
              f"{today.seconds:.0f} s")
        for margin in args.margin:
            for patience in args.patience:
                outcome = replay_rule(epochs, margin, patience, planned)
                note = "" if outcome.complete else " (past the recorded run)"
                print(f"  margin {margin:<6} patience {patience}: stops {outcome.stopped:>2}, keeps {outcome.kept:>2}, "
                      f"test {outcome.test:.4f} ({100 * (outcome.test - today.test):+.2f} points), time "
                      f"{outcome.seconds / today.seconds:.2f} of the run's{note}")


def main(argv: Sequence[str] | None = None) -> None:
    from earshot.flags import add_column_flags, add_training_flags

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="train once, scoring a test file after every epoch")
    add_training_flags(rec)
    add_column_flags(rec)
    rec.add_argument("--test", type=Path, required=True)
    rec.add_argument("--history", type=Path, required=True, help="JSON file to write")
    rec.add_argument("--adamw-loop", action="store_true",
                     help="AdamW's per-tensor loop instead of its fused kernel (to time what fusing saves)")
    rec.set_defaults(handler=record)
    rep = commands.add_parser("replay", help="replay stopping rules on recorded runs")
    rep.add_argument("histories", nargs="+", type=Path)
    rep.add_argument("--margin", type=float, nargs="+", default=[0.0, 0.002, 0.005, 0.01])
    rep.add_argument("--patience", type=int, nargs="+", default=[2, 3, 4])
    rep.set_defaults(handler=replay)
    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
