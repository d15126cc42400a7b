"""One model and backend's `predict_proba` speed, timed several times in one fresh process.

int8 speed on the 2-core machine comes in a fast and a slow mode (about half), which can change within
a process; running this once per model and backend, in turns, shows both (docs/experiments.md).

    for round in 1 2 3; do for m in model/default runs/fast/student-3; do
      python benchmarks/backend_modes.py $m --backend onnx-int8; done; done
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inference import airline_texts  # noqa: E402
from earshot.model import EarshotModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    texts = airline_texts(args.texts)
    model = EarshotModel.from_pretrained(args.model, device="cpu", backend=args.backend)
    model.predict_proba(texts[:64])  # warm-up
    speeds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        model.predict_proba(texts, batch_size=args.batch_size)
        speeds.append(len(texts) / (time.perf_counter() - started))
    print(f"{args.model} {args.backend}: " + ", ".join(f"{s:.1f}" for s in speeds) + " texts/s")


if __name__ == "__main__":
    main()
