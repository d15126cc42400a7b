"""Batch scoring benchmark, all figures from one run.

1. rows/s of `earshot score` (read, predict, write) on N rows against the model's raw batch
   `predict` on the same texts (target ratio >= 0.9), in ``--rounds`` alternating pairs (median), and
   the share of `earshot score`'s own time spent in `predict`: the same ratio without the machine's
   drift between two runs (a third from minute to minute on the shared 2-core machine);
2. peak memory (max RSS of a fresh process) scoring N1 and N2 rows (target: no growth with rows).

Texts are real airline tweets, repeated to the row count. Scoring a million rows with the real model
takes about an hour on 2 cores, so the memory part can use a tiny random model with the real
tokenizer (`--memory-model tiny`): memory that grows with rows comes from reading, holding and
writing tables, which is the same whatever the network.

    python benchmarks/scoring.py --rows 100000 --memory-rows 100000 1000000 --memory-model tiny
    python benchmarks/scoring.py --rows 10000 --memory-rows 1000 2000 --rounds 7 --compile    (`earshot score --compile`)
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRLINE = ROOT.parent / "shared" / "data" / "airline" / "train.csv"


def write_rows(path: Path, rows: int) -> None:
    with open(AIRLINE, encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "text", "channel"])
        for i in range(rows):
            writer.writerow([i, texts[i % len(texts)], ("email", "chat", "twitter")[i % 3]])


def tiny_model_dir(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, random weights: fast, real tokenising."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    sys.path.insert(0, str(ROOT))
    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel, Head, resolve_base_model

    base = resolve_base_model(DEFAULT_BASE_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64))
    encoder.save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    model = EarshotModel.from_base(str(folder / "base"), [Head("sentiment", "single", ["negative", "neutral", "positive"]),
                                                          Head("pain_points", "multi", ["late", "lost", "rude"])],
                                   max_length=64)
    model.save_pretrained(folder / "tiny")
    return folder / "tiny"


def measure_throughput(model_dir: str | None, source: Path, rows: int, output: Path,
                       backend: str = "auto", rounds: int = 3, compiled: bool = False) -> dict[str, object]:
    """Raw ``predict`` and ``score_file`` on the same rows, ``rounds`` times in alternating order (this
    machine drifts by a third between minutes): each round's rates and ratio, and the median ratio."""
    sys.path.insert(0, str(ROOT))
    from earshot.scoring import score_file
    from earshot.tables import read_chunks
    from earshot.model import EarshotModel

    model = EarshotModel.from_pretrained(model_dir, device="cpu", backend=backend, compiled=compiled)
    texts = [t for chunk in read_chunks(source, 100_000) for t in chunk["text"]]
    model.predict(texts[:512])  # warm-up

    def raw() -> float:
        started = time.perf_counter()
        model.predict(texts)
        return rows / (time.perf_counter() - started)

    predict, inside = model.predict, []

    def timed_predict(*args, **kwargs):  # what score_file spends in predict, to tell its own cost from drift
        started = time.perf_counter()
        answer = predict(*args, **kwargs)
        inside[-1] += time.perf_counter() - started
        return answer

    def scored(number: int) -> float:  # a new output each round: an existing one would be resumed
        inside.append(0.0)
        model.predict = timed_predict
        try:
            seconds = score_file(model, source, output.with_name(f"{number}-{output.name}"), progress=False).seconds
        finally:
            model.predict = predict
        shares.append(inside[-1] / seconds)
        return rows / seconds

    per_round, shares = [], []
    for number in range(rounds):
        if number % 2:
            score_rate = scored(number)
            raw_rate = raw()
        else:
            raw_rate = raw()
            score_rate = scored(number)
        per_round.append({"raw_predict_rows_per_s": raw_rate, "score_rows_per_s": score_rate,
                          "ratio": score_rate / raw_rate, "predict_share": shares[-1]})
    return {"backend": model.backend, "rounds": per_round,
            "median_ratio": statistics.median(r["ratio"] for r in per_round),
            "median_predict_share": statistics.median(shares)}


def peak_memory(model_dir: str, source: Path, output: Path) -> float:
    """Peak RSS in MiB of a fresh `earshot score` process."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[4]);"
            "from earshot.model import EarshotModel; from earshot.scoring import score_file;"
            "score_file(EarshotModel.from_pretrained(sys.argv[1], device='cpu'), Path(sys.argv[2]), Path(sys.argv[3]),"
            " progress=False)")
    return child_peak_mib(code, model_dir, str(source), str(output), str(ROOT))


def child_peak_mib(code: str, *args: str) -> float:
    """Peak RSS in MiB of a fresh Python process running ``code`` with ``args``.

    Read from the child's VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child
    forked from this (large) process reported this process's size (1,473-1,673 MiB against 607-624
    MiB for the same scoring run).
    """
    report = "\nprint(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    result = subprocess.run([sys.executable, "-c", code + report, *args], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default=None, help="model folder for the throughput part (default: shipped)")
    parser.add_argument("--memory-rows", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--memory-model", default="tiny", help="'tiny' or a model folder")
    parser.add_argument("--backend", default="auto", help="as `earshot score --backend` (default: auto, its default)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw / score pairs (median ratio)")
    parser.add_argument("--compile", action="store_true", help="as `earshot score --compile`")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "rows.csv"
        write_rows(source, args.rows)
        results.update(measure_throughput(args.model, source, args.rows, work / "scored.parquet", args.backend,
                                          args.rounds, args.compile))
        for r in results["rounds"]:
            print(f"{args.rows} rows, backend {args.backend} ({results['backend']}): raw predict "
                  f"{r['raw_predict_rows_per_s']:.1f} rows/s, earshot score {r['score_rows_per_s']:.1f} rows/s, "
                  f"ratio {r['ratio']:.3f}; share of earshot score's time in predict {r['predict_share']:.3f}")
        print(f"median ratio over {args.rounds} alternating rounds: {results['median_ratio']:.3f} (target >= 0.9); "
              f"median share of earshot score's time in predict: {results['median_predict_share']:.3f} (the ratio "
              "without the machine's drift between the two runs)")
        memory_model = str(tiny_model_dir(work)) if args.memory_model == "tiny" else args.memory_model
        for rows in args.memory_rows:
            path = work / f"memory-{rows}.csv"
            write_rows(path, rows)
            results[f"peak_mib_{rows}"] = peak_memory(memory_model, path, work / f"memory-{rows}.parquet")
            path.unlink()
        small, large = args.memory_rows
        print(f"peak memory ({args.memory_model} model): {results[f'peak_mib_{small}']:.0f} MiB for {small} rows, "
              f"{results[f'peak_mib_{large}']:.0f} MiB for {large} rows, ratio "
              f"{results[f'peak_mib_{large}'] / results[f'peak_mib_{small}']:.2f} (target: about 1)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
