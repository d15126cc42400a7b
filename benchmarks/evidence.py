"""How faithful and how costly the evidence spans are (ERASER's comprehensiveness).

On negative airline tweets whose labelled reason maps onto a pain point and to which the model gives
a pain point: the model's best pain point, its evidence (at most three spans), and that label's score
on the tweet with the evidence deleted, against the tweet with as many random words deleted (the mean
of ``--random-draws`` draws). Cost: the time of explaining a text (its answer included) over the time
of answering it, medians of alternating rounds, and the texts scored per explained text.

    python benchmarks/evidence.py --airline ../shared/data/airline/train.csv [--model DIR] [--texts 200]
        [--backend auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.general import airline_rows  # noqa: E402
from earshot.model import EarshotModel  # noqa: E402
from earshot.model.explain import Explainer, without, word_spans  # noqa: E402


def chosen_tweets(model: EarshotModel, airline: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` negative tweets with a mapped pain point that the model answers a pain point for:
    (text, the model's best pain point)."""
    rows = airline_rows(airline)
    rows = rows[(rows.sentiment == "negative") & (rows.pain_points != "")]
    order = np.random.default_rng(seed).permutation(len(rows))
    picked: list[tuple[str, str]] = []
    for start in range(0, len(order), 256):
        texts = rows.text.iloc[order[start:start + 256]].tolist()
        for text, prediction in zip(texts, model.predict(texts)):
            labels = prediction["pain_points"].labels if "pain_points" in prediction.heads else []
            if labels and word_spans(text):
                picked.append((text, labels[0].label))
            if len(picked) == count:
                return picked
    return picked


def comprehensiveness(model: EarshotModel, tweets: list[tuple[str, str]], draws: int, seed: int) -> dict[str, float]:
    explainer = Explainer(model)
    found = explainer.explain([text for text, _ in tweets])
    column = {label: i for i, label in enumerate(model.config.head("pain_points").labels)}
    rng = np.random.default_rng(seed)
    whole, erased, randomised, spans_used = [], [], [], []
    for (text, label), evidence in zip(tweets, found):
        spans = [(e.start, e.end) for e in evidence["pain_points"].get(label, [])]
        words = word_spans(text)
        variants = [text, without(text, spans)]
        for _ in range(draws):
            picked = rng.choice(len(words), size=min(len(spans), len(words)), replace=False)
            variants.append(without(text, [words[i] for i in picked]))
        scores = model.predict_proba(variants)["pain_points"][:, column[label]]
        whole.append(scores[0])
        erased.append(scores[0] - scores[1])
        randomised.append(float(np.mean(scores[0] - scores[2:])))
        spans_used.append(len(spans))
    return {"texts": len(tweets), "mean_score": float(np.mean(whole)), "evidence_drop": float(np.mean(erased)),
            "random_drop": float(np.mean(randomised)),
            "ratio": float(np.mean(erased) / np.mean(randomised)) if np.mean(randomised) > 0 else float("inf"),
            "mean_spans": float(np.mean(spans_used)), "no_evidence": int(sum(n == 0 for n in spans_used))}


def cost(model: EarshotModel, texts: list[str], rounds: int) -> dict[str, float]:
    """Explained over plain time per text (alternating rounds, median ratio), and texts scored per text."""
    explainer = Explainer(model)
    model.predict(texts[:16])  # warm-up
    ratios = []
    for _ in range(rounds):
        started = time.perf_counter()
        model.predict(texts)
        plain = time.perf_counter() - started
        started = time.perf_counter()
        explainer.explain(texts)
        ratios.append((time.perf_counter() - started) / plain)
    return {"k_median": statistics.median(ratios), "k_rounds": ratios,
            "scored_per_text": 1 + float(np.mean([len(word_spans(t)) for t in texts]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airline", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = EarshotModel.from_pretrained(args.model, backend=args.backend)
    tweets = chosen_tweets(model, args.airline, args.texts, args.seed)
    result = {"backend": model.backend, **comprehensiveness(model, tweets, args.random_draws, args.seed),
              **cost(model, [text for text, _ in tweets], args.rounds)}
    print(f"{result['texts']} negative airline tweets with a pain point ({result['backend']}): deleting the evidence "
          f"(mean {result['mean_spans']:.2f} spans; {result['no_evidence']} texts without) lowers the best pain "
          f"point's score (mean {result['mean_score']:.3f}) by {result['evidence_drop']:.3f}; deleting as many random "
          f"words by {result['random_drop']:.3f} ({result['ratio']:.1f}x)")
    print(f"cost: an explained text takes {result['k_median']:.1f}x the time of a plain one (median of "
          f"{args.rounds} rounds: {', '.join(f'{r:.1f}' for r in result['k_rounds'])}); "
          f"{result['scored_per_text']:.1f} texts scored per explained text")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
