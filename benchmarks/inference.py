"""Inference speed of every backend on the same texts, in one run, plus their quality.

Prints texts/s for: a naive `transformers` text-classification pipeline called one text at a time,
fp32 torch `predict`, bfloat16 torch (eager and compiled: ``compiled=True``) and each ONNX backend; the
ratios against fp32 torch (target for the best CPU backend: >= 2.5x) and against the naive pipeline
(>= 8x). With `--quality-data`, also the sentiment accuracy and pain-point micro-F1 of each backend
(target: within 0.5 points of fp32).

The backends take turns: each of ``--repeats`` rounds times every one of them once, so that this
machine's drift (its speed moves by half within minutes) falls on all alike; a speed is the median of
its rounds and a ratio the median of its per-round ratios.

It also measures the machine's ceilings (benchmarks/hardware.py: one model-shaped matrix product in
fp32 and in int8) and each backend's useful work per second, so that a ratio can be read against
what the hardware allows: no int8 backend can pass int8-ceiling / work-per-text texts/s.

With ``--fast DIR`` (a smaller model, e.g. a distilled student), the same for that model's fp32 torch,
bf16 (eager and compiled) and int8 backends, taking turns with the main model's fp32 torch, its texts/s
against that (target for the fast tier: >= 2.5x), and its quality beside the main model's (target:
within 1.0 point).

    python benchmarks/inference.py --texts 2000 --quality-data /tmp/airline/validation.csv [--fast runs/fast/student-3 ...]
    python benchmarks/inference.py --backends torch onnx-int8 --against OLD_MODEL   # a new model against an old one
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.model import DEFAULT_MODEL_DIR, EarshotModel  # noqa: E402

AIRLINE = ROOT.parent / "shared" / "data" / "airline" / "train.csv"
BACKENDS = ("torch", "bf16", "bf16 compiled", "onnx", "onnx-int8")  # "bf16 compiled": compiled=True


def airline_texts(limit: int) -> list[str]:
    with open(AIRLINE, encoding="utf-8") as handle:
        return [row["text"] for row, _ in zip(csv.DictReader(handle), range(limit))]


def texts_per_second(run, texts: list[str], repeats: int) -> float:
    """Median over ``repeats`` timed runs (after one warm-up on a slice)."""
    return statistics.median(taking_turns({"run": run}, texts, repeats)["run"])


def taking_turns(runs: dict[str, Callable[[list[str]], object]], texts: list[str], repeats: int) -> dict[str, list[float]]:
    """Each run's texts/s in each of ``repeats`` rounds, the runs timed in turn within a round (after one
    warm-up each on a slice)."""
    for run in runs.values():
        run(texts[:64])
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(texts)
            speeds[name].append(len(texts) / (time.perf_counter() - started))
    return speeds


def ratio(rounds: dict[str, list[float]], name: str, base: str) -> float:
    """The median over rounds of ``name``'s speed over ``base``'s in the same round."""
    return statistics.median(a / b for a, b in zip(rounds[name], rounds[base]))


def load_backends(folder: Path, backends: Sequence[str]) -> dict[str, EarshotModel]:
    """``folder``'s model on each backend; "bf16 compiled" is bf16 through torch.compile (compiled here)."""
    return {backend: EarshotModel.from_pretrained(folder, device="cpu", backend=backend.split()[0],
                                                  compiled=backend.endswith("compiled"))
            for backend in backends}


def naive_pipeline(model: EarshotModel):
    """transformers' pipeline on a same-size classifier (the model's encoder), one text per call, on the
    model's device and in its precision."""
    from transformers import pipeline

    from benchmarks.common import plain_classifier_folder

    pipe = pipeline("text-classification", model=str(plain_classifier_folder(model)), device=model.device,
                    dtype=next(model.parameters()).dtype)
    return lambda texts: [pipe(text) for text in texts]


def quality(model: EarshotModel, path: Path) -> dict[str, float]:
    from benchmarks.common import AIRLINE_MAPPING
    from earshot.training import read_examples
    from earshot.training.evaluation import evaluate

    data = read_examples(path, AIRLINE_MAPPING, known_labels={h.name: h.labels for h in model.config.heads})
    heads = evaluate(model, data, AIRLINE_MAPPING)["heads"]
    return {"sentiment_accuracy": heads["sentiment"]["accuracy"], "pain_point_micro_f1": heads["pain_points"]["micro_f1"]}


def report_ceilings(model: EarshotModel, texts: list[str], speeds: dict[str, float]) -> None:
    """Each backend's useful GFLOP/s against the machine's, and the fastest any int8 backend could be."""
    from benchmarks.hardware import encoder_flops, measure_ceilings

    ceilings = measure_ceilings()
    per_text = encoder_flops(model.encoder.config, [len(ids) for ids in model.encode(texts).input_ids]) / len(texts)
    print(f"machine: fp32 GEMM {ceilings.fp32_gflops:.0f} GFLOP/s, bf16 GEMM {ceilings.bf16_gflops:.0f} GFLOP/s, "
          f"int8 GEMM {ceilings.int8_gops:.0f} GOP/s (x{ceilings.int8_over_fp32:.2f}); encoder work "
          f"{per_text / 1e6:.0f} MFLOP per text")
    for name in (name for name in BACKENDS if name in speeds):
        ceiling = {"onnx-int8": ceilings.int8_gops}.get(name, ceilings.bf16_gflops if "bf16" in name
                                                        else ceilings.fp32_gflops)
        achieved = speeds[name] * per_text / 1e9
        print(f"{name:>15}: {achieved:6.0f} G(FL)OP/s useful = {achieved / ceiling:.0%} of its ceiling")
    bound = ceilings.int8_gops * 1e9 / per_text
    print(f"fastest possible int8 at 100% of the int8 ceiling: {bound:.0f} texts/s = "
          f"x{bound / speeds['torch']:.2f} fp32 torch, x{bound / speeds['naive pipeline']:.1f} naive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the backends take turns in each")
    parser.add_argument("--naive-texts", type=int, default=300, help="the naive pipeline is slow: fewer texts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quality-data", type=Path, default=None, help="labelled airline file for quality")
    parser.add_argument("--fast", type=Path, nargs="+", default=[], help="smaller models to set beside --model")
    parser.add_argument("--against", type=Path, default=None,
                        help="another model of the same size: each of its backends takes turns with --model's, "
                             "and each speed is given as a ratio to the other model's on the same backend")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="the main model's backends to time (fp32 torch, the baseline, always)")
    args = parser.parse_args()
    backends = ["torch", *(b for b in args.backends if b != "torch")]
    texts = airline_texts(args.texts)
    print(f"{len(texts)} airline tweets, torch threads {torch.get_num_threads()}")
    models = load_backends(args.model, backends)
    naive = texts_per_second(naive_pipeline(models["torch"]), texts[: args.naive_texts], 1)
    rounds = taking_turns({backend: lambda t, m=model: m.predict_proba(t, batch_size=args.batch_size)
                           for backend, model in models.items()}, texts, args.repeats)
    speeds = {"naive pipeline": naive, **{name: statistics.median(values) for name, values in rounds.items()}}
    for name, speed in speeds.items():
        times_torch = ratio(rounds, name, "torch") if name in rounds else speed / speeds["torch"]
        print(f"{name:>15}: {speed:8.1f} texts/s   x{times_torch:.2f} fp32 torch   x{speed / naive:.1f} naive")
    print("rounds (texts/s): " + "; ".join(f"{name} {', '.join(f'{v:.0f}' for v in values)}"
                                           for name, values in rounds.items()))
    report_ceilings(models["torch"], texts, speeds)
    reference = models["torch"].predict_proba(texts[:500])
    for backend in backends[1:]:
        other = models[backend].predict_proba(texts[:500])
        same = (other["sentiment"].argmax(1) == reference["sentiment"].argmax(1)).mean()
        print(f"{backend}: same sentiment label as torch on {same:.1%} of 500 texts; max |score diff| "
              f"{np.abs(other['sentiment'] - reference['sentiment']).max():.4f}")
    if args.quality_data:
        for backend, model in models.items():
            q = quality(model, args.quality_data)
            print(f"quality {backend:>13}: sentiment accuracy {q['sentiment_accuracy']:.4f}, "
                  f"pain-point micro-F1 {q['pain_point_micro_f1']:.4f}")
    for folder in args.fast:
        report_fast(args, folder, texts, models["torch"])
    if args.against:
        report_against(args, backends, texts, models)


def report_against(args: argparse.Namespace, backends: list[str], texts: list[str],
                   models: dict[str, EarshotModel]) -> None:
    """--model's speed on each backend against --against's on the same backend, the two taking turns in every
    round, so that the machine's drift falls on both alike (the check that a new model keeps an old one's speed)."""
    others = load_backends(args.against, backends)
    runs = {}
    for backend in backends:
        runs[f"model {backend}"] = lambda t, m=models[backend]: m.predict_proba(t, batch_size=args.batch_size)
        runs[f"against {backend}"] = lambda t, m=others[backend]: m.predict_proba(t, batch_size=args.batch_size)
    rounds = taking_turns(runs, texts, args.repeats)
    for backend in backends:
        print(f"{backend:>13}: {args.model} {statistics.median(rounds[f'model {backend}']):.1f} texts/s, "
              f"{args.against} {statistics.median(rounds[f'against {backend}']):.1f}; ratio "
              f"x{ratio(rounds, f'model {backend}', f'against {backend}'):.3f} (median of {args.repeats} rounds)")


def report_fast(args: argparse.Namespace, folder: Path, texts: list[str], main_model: EarshotModel) -> None:
    """A fast model's speed against the main model's fp32 torch (taking turns with it), and its quality
    beside the main model's."""
    fast = load_backends(folder, ("torch", "bf16", "bf16 compiled", "onnx-int8"))
    layers = fast["torch"].encoder.config.num_hidden_layers
    runs = {"main torch": main_model, **fast}
    rounds = taking_turns({name: lambda t, m=model: m.predict_proba(t, batch_size=args.batch_size)
                           for name, model in runs.items()}, texts, args.repeats)
    for backend in fast:
        print(f"{folder.name} ({layers} layers) {backend:>13}: {statistics.median(rounds[backend]):8.1f} texts/s   "
              f"x{ratio(rounds, backend, 'main torch'):.2f} the main model's fp32 torch (target for the fast tier: "
              ">= 2.5)")
    if args.quality_data:
        reference = quality(main_model, args.quality_data)
        for backend, model in fast.items():
            q = quality(model, args.quality_data)
            print(f"{folder.name} {backend:>13}: sentiment accuracy {q['sentiment_accuracy']:.4f} "
                  f"({100 * (q['sentiment_accuracy'] - reference['sentiment_accuracy']):+.1f} points), pain-point "
                  f"micro-F1 {q['pain_point_micro_f1']:.4f} "
                  f"({100 * (q['pain_point_micro_f1'] - reference['pain_point_micro_f1']):+.1f} points) against the "
                  "main model's fp32 torch (target: within 1.0)")


if __name__ == "__main__":
    main()
