"""Which review-queue order pays? The closed loop's selection step in minutes instead of hours.

``benchmarks/closed_loop.py`` retrains a model for every strategy and seed (five to fifteen minutes
each on two cores). This benchmark keeps everything up to the reviewer real and replaces only the
retrain: per seed, the loop's first model (``--work/seedN/initial``, from a closed_loop.py run with the
same ``--work``) answers the same 3,000 texts; the service's own capture policy decides, in traffic
order, what is queued (``EARSHOT_CAPTURE_TOP`` = pool x answers / stream); the feedback store orders
the queue (``similar_above``, i.e. ``EARSHOT_REVIEW_SIMILAR``); the first ``--answers`` items are
"reviewed". Then a logistic-regression head is fitted on the first model's frozen text vectors of the
labelled rows plus the reviewed texts, and scored on the test rows, beside the same for random texts
(mean of five draws). The proxy's top-1 tracked the real loop's within about a point on these seeds
(docs/review-loop.md).

    python benchmarks/queue_order.py --data ../shared/data/banking77/train.csv --work /tmp/loop/work \\
        --seed 1 2 3 --pool 1 2 --similar 1.0 0.85
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.closed_loop import HEAD, LoopSplit  # noqa: E402
from earshot.loop.capture import CapturePolicy  # noqa: E402
from earshot.loop.store import SIMILAR_ABOVE, FeedbackStore, QueuedItem  # noqa: E402
from earshot.model import EarshotModel, Prediction  # noqa: E402
from earshot.training.few_shot import fit_logistic  # noqa: E402


def top1(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, labels: int) -> float:
    """Test top-1 of the L2-regularised logistic regression (the few-shot recipe's head fit) on vectors."""
    weight, bias = fit_logistic(torch.from_numpy(train_x), torch.from_numpy(train_y), "single", labels, 10.0)
    logits = torch.from_numpy(test_x).double() @ weight.double().T + bias.double()
    return float((logits.argmax(1).numpy() == test_y).mean())


def queued(model: EarshotModel, texts: list[str], predictions: list[Prediction], share: float, similar: float,
           answers: int, seed: int) -> list[int]:
    """Indices of the texts a reviewer answers: capture in traffic order, then the store's queue order."""
    policy = CapturePolicy(top_share=share, seed=seed)
    thresholds = {head.name: head.thresholds for head in model.config.heads}
    with tempfile.TemporaryDirectory() as folder:
        store = FeedbackStore.open(Path(folder) / "queue.db", similar_above=similar)
        items = []
        for i, (text, prediction) in enumerate(zip(texts, predictions)):
            reasons = policy.reasons(prediction, thresholds)
            if reasons:
                items.append(QueuedItem(text=text, model_version=model.version or "", answer={}, reasons=reasons,
                                        priority=policy.uncertainty(prediction, thresholds), caller_id=str(i),
                                        created_at=float(i), vector=prediction.vector))
        store.add_items(items)
        chosen = [int(item.caller_id) for item in store.queue(answers) if item.caller_id is not None]
        store.close()
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Banking77's train.csv (text, category)")
    parser.add_argument("--work", type=Path, required=True, help="closed_loop.py's --work, with seedN/initial")
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--pool", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--similar", type=float, nargs="+", default=[1.0, SIMILAR_ABOVE])
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--answers", type=int, default=500)
    args = parser.parse_args()
    split = LoopSplit.read(args.data)
    labels = {label: i for i, label in enumerate(split.head.labels)}
    gains: dict[tuple[float, float], list[float]] = {}
    for seed in args.seed:
        folder = args.work / f"seed{seed}" / "initial"
        if not (folder / "model.safetensors").is_file():
            raise SystemExit(f"{folder} has no model: run benchmarks/closed_loop.py --work {args.work} --seed {seed}")
        model = EarshotModel.from_pretrained(folder, device="cpu")
        labelled, stream = split.team(seed, args.per_label, args.stream)
        texts = [e.text for e in stream]
        predictions = model.predict(texts)
        # The stream's vectors come with its predictions (one pass); the other rows need a pass of their own.
        vectors = {"stream": np.stack([p.vector for p in predictions]),
                   **{name: model.embed([e.text for e in rows]) for name, rows in
                      (("labelled", labelled), ("test", split.test))}}
        gold = {name: np.array([labels[e.labels[HEAD]] for e in rows]) for name, rows in
                (("labelled", labelled), ("stream", stream), ("test", split.test))}

        def score(chosen: list[int]) -> float:
            return top1(np.concatenate([vectors["labelled"], vectors["stream"][chosen]]),
                        np.concatenate([gold["labelled"], gold["stream"][chosen]]), vectors["test"], gold["test"],
                        len(labels))

        randomly = float(np.mean([score(random.Random(seed * 100 + k).sample(range(len(stream)), args.answers))
                                  for k in range(5)]))
        line = [f"seed {seed}: none {score([]):.4f}, random {randomly:.4f}"]
        for pool in args.pool:
            share = min(1.0, pool * args.answers / len(stream))
            for similar in args.similar:
                chosen = queued(model, texts, predictions, share, similar, args.answers, seed)
                accuracy = score(chosen)
                gains.setdefault((pool, similar), []).append(accuracy - randomly)
                wrong = sum(predictions[i][HEAD].label != stream[i].labels[HEAD] for i in chosen)
                line.append(f"pool {pool:g} similar {similar:g}: {accuracy:.4f} ({len(chosen)} answered, {wrong} wrong)")
        print("; ".join(line), flush=True)
    for (pool, similar), values in gains.items():
        print(f"pool {pool:g}, similar {similar:g}: queue - random {100 * np.mean(values):+.2f} points "
              f"(per seed {', '.join(f'{100 * v:+.1f}' for v in values)})")


if __name__ == "__main__":
    main()
