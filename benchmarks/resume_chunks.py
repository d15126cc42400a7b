"""Does a scored file depend on how the run was cut? `earshot score` straight through with one chunk size,
against a run killed (SIGKILL) after a few chunks and resumed with another chunk size: the largest
difference in any score, and how many labels differ.

    python benchmarks/resume_chunks.py --data ../shared/data/airline/train.csv --rows 6000 \\
        [--first-chunk 4096 --resume-chunk 1000 --backend auto --model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def score_command(source: Path, output: Path, chunk: int, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "earshot.cli", "score", str(source), "-o", str(output), "--chunk-size",
               str(chunk), "--backend", args.backend, "--no-progress"]
    return command + (["--model", str(args.model)] if args.model else [])


def killed_then_resumed(source: Path, output: Path, args: argparse.Namespace) -> int:
    """Kill a run once ``--kill-after`` chunks are written; resume it with the other chunk size. Returns
    the rows the killed run had scored."""
    log = output.parent / f".{output.name}.earshot-parts" / "parts.jsonl"
    process = subprocess.Popen(score_command(source, output, args.first_chunk, args), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while not (log.exists() and len(log.read_text().splitlines()) >= args.kill_after):
        if process.poll() is not None:
            raise SystemExit("the first run finished before it could be killed: use more --rows or a smaller "
                             "--first-chunk")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = sum(json.loads(line)["rows"] for line in log.read_text().splitlines())
    subprocess.run([*score_command(source, output, args.resume_chunk, args), "--resume"], check=True)
    return done


def differences(first: pd.DataFrame, second: pd.DataFrame) -> dict[str, float]:
    """Largest score difference and differing labels per head, from the scored columns."""
    found: dict[str, float] = {}
    for column in first.columns:
        if column.endswith("_score"):
            found[f"{column} max difference"] = float(np.nanmax(np.abs(first[column] - second[column])))
        elif column.endswith("_scores"):
            a = pd.DataFrame([json.loads(cell) for cell in first[column]])
            b = pd.DataFrame([json.loads(cell) for cell in second[column]])
            found[f"{column} max difference"] = float(np.nanmax(np.abs(a.to_numpy() - b[a.columns].to_numpy())))
            head = column.removesuffix("_scores")
            found[f"{head} labels differing"] = int((first[head].fillna("") != second[head].fillna("")).sum())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a CSV with a text column")
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--first-chunk", type=int, default=4096)
    parser.add_argument("--resume-chunk", type=int, default=1000)
    parser.add_argument("--kill-after", type=int, default=1, help="chunks written before the kill")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        source = work / "texts.csv"
        pd.read_csv(args.data)[["text"]].head(args.rows).to_csv(source, index=False)
        subprocess.run(score_command(source, work / "straight.parquet", args.first_chunk, args), check=True)
        done = killed_then_resumed(source, work / "resumed.parquet", args)
        found = differences(pd.read_parquet(work / "straight.parquet"), pd.read_parquet(work / "resumed.parquet"))
    print(f"{args.rows} rows, backend {args.backend}: straight at chunk size {args.first_chunk} against killed "
          f"after {done} rows and resumed at {args.resume_chunk}: "
          + "; ".join(f"{name} {value:.6f}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in found.items()))


if __name__ == "__main__":
    main()
