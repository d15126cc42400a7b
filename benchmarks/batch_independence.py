"""Does a text's answer depend on the texts scored beside it? For each backend: the largest score
difference, the texts whose scores moved by more than 1e-3 (the bound the CPU backends are held to) and
the changed labels between scoring N tweets one at a time and all together.

    python benchmarks/batch_independence.py [--texts 1000] [--backend bf16 --backend onnx-int8 --backend "bf16 compiled"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inference import BACKENDS, airline_texts, load_backends  # noqa: E402
from earshot.model import DEFAULT_MODEL_DIR, EarshotModel  # noqa: E402  (compare's type)


def compare(model: EarshotModel, texts: list[str]) -> dict[str, float]:
    together = model.predict(texts)
    alone = [model.predict([text])[0] for text in texts]
    figures: dict[str, float] = {}
    for head in model.config.heads:
        moved = [max(abs(a[head.name].scores[label] - b[head.name].scores[label]) for label in head.labels)
                 for a, b in zip(alone, together)]
        figures[f"{head.name} max score difference"] = max(moved)
        figures[f"{head.name} texts moved > 1e-3"] = sum(value > 1e-3 for value in moved)
        figures[f"{head.name} answers changed"] = sum(
            [p.label for p in a[head.name].labels] != [p.label for p in b[head.name].labels]
            for a, b in zip(alone, together))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    args = parser.parse_args()
    texts = airline_texts(args.texts)
    for backend in args.backend or ["torch", "bf16", "onnx-int8"]:
        figures = compare(load_backends(args.model, [backend])[backend], texts)
        print(f"{backend}, {len(texts)} tweets alone against together: " + "; ".join(
            f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
