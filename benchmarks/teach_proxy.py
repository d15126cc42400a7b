"""Which review order teaches the next model most, across data shapes? A proxy of the review loop.

Per set and seed: the rows are split into test rows (at most ``--test`` rows) and a pool; from the pool
``--per-label`` labelled rows per label (the cold start) and a stream of ``--stream`` other texts.
"The model" is a logistic regression on frozen all-MiniLM-L6-v2 vectors of the labelled rows (one per
label for multi-label sets, threshold 0.5); its probabilities on the stream give each text's
uncertainty. Each policy picks ``budget`` stream texts, their gold labels join the labelled rows, the
regression is fitted again and scored on the test rows (top-1; micro-F1 for multi-label sets). Random
is the mean of five draws. Each policy draws from its own generator (seeded by the seed, the budget and
the policy's name), so adding a policy moves no other policy's figures. The real loop
(``benchmarks/closed_loop.py``) fine-tunes the encoder and takes hours per set; this proxy keeps its
selection problem and replaces the retrain.

Policies: ``random``; ``uncertainty`` (the fix purpose's order); ``density`` (uncertainty times the mean
cosine to the 20 nearest stream texts); ``mix`` (half uncertainty, half random); ``teach``
(``earshot.loop.teach.teach_order``: k-means, each cluster's most typical text, the one nearest its
centre); ``cluster_unsure`` (k-means, each cluster's least sure text: the teach order before);
``cover_unsure`` (the two alternating over clusters); ``badge``
(k-means++ seeding over the regression's gradient embeddings, Ash et al. 2020); ``badge_lite`` (the
same seeding over text vectors scaled by their uncertainty, which needs no class scores); ``teach_typical``
(k-means as ``teach``, from each cluster the least sure of its more central half: a cluster's outliers are
where labels are least reliable).

    python benchmarks/teach_proxy.py --data ../shared/data --seed 1 2 3 4 5 --budget 150 500 --capture-top 2 \
        [--policies ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.loop.teach import kmeans, teach_order  # noqa: E402
from earshot.training.metrics import tune_thresholds  # noqa: E402


@dataclass(frozen=True)
class Shape:
    files: tuple[str, ...]
    label_column: str
    multi: bool


SETS = {
    "hint3": Shape(("hint3/train.csv",), "label", False),
    "clinc150": Shape(("clinc150/train.csv",), "intent", False),
    "nlupp": Shape(("nlupp/train.csv",), "intents", True),
    "mams": Shape(("mams/train.csv", "mams/validation.csv"), "pain_points", True),
    "banking77": Shape(("banking77/train.csv",), "category", False),
}
POLICIES = ("random", "uncertainty", "density", "mix", "teach", "cluster_unsure", "cover_unsure", "badge", "badge_lite",
            "teach_typical")
DRAWS = 5  # draws averaged for the policies that choose partly at random


def load(data: Path, shape: Shape, limit: int) -> tuple[list[str], list[list[str]]]:
    frame = pd.concat([pd.read_csv(data / name, keep_default_na=False) for name in shape.files], ignore_index=True)
    frame = frame.sample(n=min(limit, len(frame)), random_state=0).reset_index(drop=True)
    labels = [[x for x in str(cell).split(";") if x] if shape.multi else [str(cell)] for cell in frame[shape.label_column]]
    return frame["text"].astype(str).tolist(), labels


def embed(texts: list[str], cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    from earshot.training.audit import embed_texts

    vectors = embed_texts("sentence-transformers/all-MiniLM-L6-v2", texts)
    np.save(cache, vectors)
    return vectors


def matrix(labels: list[list[str]], names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=int)
    for row, found in enumerate(labels):
        for name in found:
            out[row, index[name]] = 1
    return out


class Proxy:
    """The logistic-regression stand-in for a trained model, single- or multi-label."""

    def __init__(self, x: np.ndarray, y: np.ndarray, multi: bool) -> None:
        from sklearn.linear_model import LogisticRegression

        self.multi = multi
        self.thresholds = np.full(y.shape[1], 0.5)
        if multi:
            self.models = [LogisticRegression(C=3.0, max_iter=1000).fit(x, y[:, j]) if 0 < y[:, j].sum() < len(y)
                           else float(y[:, j].mean()) for j in range(y.shape[1])]
        else:
            self.model = LogisticRegression(C=3.0, max_iter=1000).fit(x, y.argmax(axis=1))
            self.columns = y.shape[1]

    def proba(self, x: np.ndarray) -> np.ndarray:
        if self.multi:
            return np.stack([m.predict_proba(x)[:, 1] if not isinstance(m, float) else np.full(len(x), m)
                             for m in self.models], axis=1)
        out = np.zeros((len(x), self.columns))
        out[:, self.model.classes_] = self.model.predict_proba(x)
        return out

    def uncertainty(self, x: np.ndarray) -> np.ndarray:
        p = self.proba(x)
        if self.multi:  # as earshot's multi heads: the label nearest its threshold
            return np.clip(1.0 - 2.0 * np.abs(p - self.thresholds).min(axis=1), 0.0, 1.0)
        top = np.sort(p, axis=1)
        return 1.0 - (top[:, -1] - top[:, -2])

    def tune(self, x: np.ndarray, y: np.ndarray) -> "Proxy":
        """Multi-label: each label's threshold tuned on the development rows ``x``, ``y``, as earshot's
        trainer tunes them on its validation rows."""
        if self.multi and len(x):
            self.thresholds = tune_thresholds(y, self.proba(x))
        return self

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        p = self.proba(x)
        if not self.multi:
            return float((p.argmax(axis=1) == y.argmax(axis=1)).mean())
        predicted = p >= self.thresholds
        tp = (predicted & (y == 1)).sum()
        return float(2 * tp / max(predicted.sum() + y.sum(), 1))


def cold_start(y: np.ndarray, pool: np.ndarray, per_label: int, rng: np.random.Generator) -> np.ndarray:
    chosen: list[int] = []
    for j in range(y.shape[1]):
        having = [i for i in pool[rng.permutation(len(pool))] if y[i, j] and i not in chosen]
        chosen += having[:per_label]
    return np.array(sorted(set(chosen)))


def kmeans_pp(gram_of: Callable[[int], np.ndarray], norms: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding by a kernel: ``gram_of(i)`` is row i's inner products with every row, ``norms``
    the rows' squared lengths; the first pick is the longest row (BADGE)."""
    chosen = [int(norms.argmax())]
    nearest = norms + norms[chosen[0]] - 2 * gram_of(chosen[0])
    for _ in range(1, budget):
        weights = np.maximum(nearest, 0)
        weights[chosen] = 0
        total = weights.sum()
        nxt = int(rng.choice(len(norms), p=weights / total)) if total > 0 else int(rng.integers(len(norms)))
        chosen.append(nxt)
        nearest = np.minimum(nearest, norms + norms[nxt] - 2 * gram_of(nxt))
    return np.array(chosen)


def badge(x: np.ndarray, probabilities: np.ndarray, multi: bool, budget: int, rng: np.random.Generator) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ over the last layer's gradient embeddings ``(p - y_hat) x``,
    with the model's own answer as ``y_hat``; their inner products are ``<a_i, a_j> <x_i, x_j>``."""
    if multi:
        answer = (probabilities >= 0.5).astype(float)
    else:
        answer = np.eye(probabilities.shape[1])[probabilities.argmax(axis=1)]
    a = probabilities - answer
    norms = (a * a).sum(axis=1) * (x * x).sum(axis=1)
    return kmeans_pp(lambda i: (a @ a[i]) * (x @ x[i]), norms, budget, rng)


def pick(policy: str, x: np.ndarray, uncertainty: np.ndarray, budget: int, rng: np.random.Generator,
         probabilities: np.ndarray | None = None, multi: bool = False) -> np.ndarray:
    if policy == "badge":
        return badge(x, probabilities, multi, budget, rng)
    if policy == "badge_lite":  # the same seeding over uncertainty-scaled text vectors: no class scores needed
        scaled = x * uncertainty[:, None]
        return kmeans_pp(lambda i: scaled @ scaled[i], (scaled * scaled).sum(axis=1), budget, rng)
    if policy == "random":
        return rng.choice(len(x), size=budget, replace=False)
    if policy == "uncertainty":
        return np.argsort(-uncertainty, kind="stable")[:budget]
    if policy == "density":
        similarity = x @ x.T
        density = np.sort(similarity, axis=1)[:, -21:-1].mean(axis=1)
        return np.argsort(-(uncertainty * density), kind="stable")[:budget]
    if policy == "mix":
        first = np.argsort(-uncertainty, kind="stable")[: budget // 2]
        rest = np.setdiff1d(np.arange(len(x)), first)
        return np.concatenate([first, rng.choice(rest, size=budget - len(first), replace=False)])
    if policy == "teach":
        return np.array(teach_order(x, uncertainty, budget, seed=int(rng.integers(1 << 30))))
    # cluster_unsure: each k-means cluster's least sure text; cover_unsure: the text nearest the centre
    # (teach's pick) for half the clusters, the least sure for the other half; teach_typical: the least
    # sure of the central half
    assigned = kmeans(x, budget, seed=int(rng.integers(1 << 30)))
    chosen = []
    for number, cluster in enumerate(np.unique(assigned)):
        members = np.flatnonzero(assigned == cluster)
        centre = x[members].mean(axis=0)
        if policy == "teach_typical":
            closeness = x[members] @ centre
            central = members[closeness >= np.median(closeness)]
            chosen.append(central[uncertainty[central].argmax()])
        elif policy == "cluster_unsure" or (policy == "cover_unsure" and number % 2):
            chosen.append(members[uncertainty[members].argmax()])
        else:
            chosen.append(members[(x[members] @ centre).argmax()])
    taken = set(chosen)
    rest = [i for i in np.argsort(-uncertainty, kind="stable") if i not in taken]  # clusters that ended empty
    return np.array(chosen + rest[: budget - len(chosen)])


def captured_positions(uncertainty: np.ndarray, budget: int, top: float, sample: float,
                       rng: np.random.Generator) -> np.ndarray:
    """The stream texts a policy other than random chooses from: all of them when ``top`` is 0, else, as
    the service's capture stores them, the ``top`` x ``budget`` most uncertain and ``sample`` x
    ``budget`` others drawn at random."""
    if not top:
        return np.arange(len(uncertainty))
    ranked = np.argsort(-uncertainty, kind="stable")
    uncertain, rest = ranked[: int(top * budget)], ranked[int(top * budget):]
    sampled = rng.choice(rest, size=min(len(rest), int(sample * budget)), replace=False)
    return np.sort(np.concatenate([uncertain, sampled]))


def run_set(name: str, shape: Shape, data: Path, seeds: list[int], budgets: list[int], args: argparse.Namespace
            ) -> list[dict]:
    texts, labels = load(data, shape, args.rows)
    names = sorted({label for found in labels for label in found})
    x = embed(texts, Path(args.cache) / f"{name}-{len(texts)}.npy")
    y = matrix(labels, names)
    results = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(texts))
        test, pool = order[: min(args.test, len(texts) // 4)], order[min(args.test, len(texts) // 4):]
        dev, pool = pool[: int(args.dev_fraction * len(texts))], pool[int(args.dev_fraction * len(texts)):]
        start = cold_start(y, pool, args.per_label, rng)
        stream = np.setdiff1d(pool, start)
        stream = stream[rng.permutation(len(stream))][: args.stream]
        model = Proxy(x[start], y[start], shape.multi).tune(x[dev], y[dev])
        before = model.score(x[test], y[test])
        uncertainty = model.uncertainty(x[stream])
        probabilities = model.proba(x[stream])
        wrong = (probabilities.argmax(axis=1) != y[stream].argmax(axis=1)) if not shape.multi else \
            ((probabilities >= model.thresholds) != (y[stream] == 1)).any(axis=1)
        for budget in budgets:
            if budget > 0.8 * len(stream):  # too few texts left to choose from: every policy takes nearly all
                print(f"{name} seed {seed}: budget {budget} skipped, the stream has {len(stream)} texts", flush=True)
                continue
            captured = captured_positions(uncertainty, budget, args.capture_top, args.capture_sample,
                                          np.random.default_rng([seed, budget]))
            row = {"set": name, "seed": seed, "budget": budget, "before": before, "labelled": len(start),
                   "stream": len(stream), "captured": len(captured)}
            for policy in args.policies:
                draws = DRAWS if policy in ("random", "mix") else 1
                policy_rng = np.random.default_rng([seed, budget, zlib.crc32(policy.encode())])
                among = np.arange(len(stream)) if policy == "random" else captured
                scores, wrong_share = [], []
                for _ in range(draws):
                    positions = among[pick(policy, x[stream[among]], uncertainty[among], budget, policy_rng,
                                           probabilities[among], shape.multi)]
                    both = np.concatenate([start, stream[positions]])
                    scores.append(Proxy(x[both], y[both], shape.multi).tune(x[dev], y[dev]).score(x[test], y[test]))
                    wrong_share.append(float(wrong[positions].mean()))
                row[policy] = statistics.mean(scores)
                row[f"{policy}_wrong"] = statistics.mean(wrong_share)
            results.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--budget", type=int, nargs="+", default=[150, 500])
    parser.add_argument("--per-label", type=int, default=8)
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1500)
    parser.add_argument("--dev-fraction", type=float, default=0.05,
                        help="share of the rows kept to tune multi-label thresholds on (closed_loop.py's default)")
    parser.add_argument("--rows", type=int, default=8000, help="rows read per set (a seeded sample)")
    parser.add_argument("--cache", default="/tmp/teach-proxy", help="folder for the sets' vectors")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES,
                        help="the orders compared (random is always run: the others are points over it)")
    parser.add_argument("--capture-top", type=float, default=0.0, metavar="K",
                        help="as the service's queue: the policies other than random choose among the K x budget "
                             "most uncertain stream texts (0: among all of them)")
    parser.add_argument("--capture-sample", type=float, default=0.0, metavar="K",
                        help="with --capture-top: and among K x budget other stream texts drawn at random")
    args = parser.parse_args()
    args.policies = ["random"] + [p for p in args.policies if p != "random"]
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    results = [row for name in args.sets for row in run_set(name, SETS[name], args.data, args.seed, args.budget, args)]
    print("\nmean over seeds, points over random (top-1; micro-F1 for nlupp and mams):")
    for name in args.sets:
        for budget in args.budget:
            rows = [r for r in results if r["set"] == name and r["budget"] == budget]
            if not rows:
                continue
            gaps = {p: 100 * statistics.mean(r[p] - r["random"] for r in rows) for p in args.policies if p != "random"}
            print(f"{name:10s} {budget:4d}: random {statistics.mean(r['random'] for r in rows):.3f}; "
                  + ", ".join(f"{p} {g:+.1f}" for p, g in gaps.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
