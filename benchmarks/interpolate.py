"""Interpolate a trained model's encoder toward its base encoder (WiSE-FT, Wortsman et al. 2022).

Each weight of the encoder becomes ``alpha * trained + (1 - alpha) * base``; the heads are kept as trained
(or, with ``--refit-heads``, refitted as logistic regressions on the interpolated encoder's vectors of the
training rows), and the multi heads' thresholds are tuned again on the validation rows. The training table
and its flags are those the model was trained with (``earshot train``'s), so the validation rows are the
same. One folder per alpha, ``OUTPUT/a{alpha}``, to score with ``benchmarks/general.py`` and
``benchmarks/written_checks.py``.

    python benchmarks/interpolate.py --model model/default --alpha 0.7 0.6 --output /tmp/wise \\
        --data /tmp/general/train.csv --taxonomy training/general/taxonomy.yaml --sentiment-column sentiment \\
        --pain-points-column pain_points --head praise_points:multi:praise_points --unknown-label unannotated \\
        --threshold-shrinkage 100 [--refit-heads]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def interpolate_encoder(model: "EarshotModel", base: dict, alpha: float) -> int:  # noqa: F821
    """Move ``model``'s encoder weights to ``alpha`` of the way from ``base``'s; returns how many moved."""
    state = model.state_dict()
    moved = 0
    for name, tensor in state.items():
        source = base.get(name.removeprefix("encoder.")) if name.startswith("encoder.") else None
        if source is not None and source.shape == tensor.shape:
            state[name] = alpha * tensor + (1.0 - alpha) * source.to(tensor.dtype)
            moved += 1
    model.load_state_dict(state)
    return moved


def main(argv: Sequence[str] | None = None) -> None:
    from transformers import AutoModel

    from earshot.flags import add_column_flags, add_training_flags, data_sources, training_config
    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel
    from earshot.model.base import resolve_base_model
    from earshot.training.few_shot import fit_heads
    from earshot.training.pipeline import load_training_set
    from earshot.training.trainer import Trainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_flags(parser)
    add_column_flags(parser)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--alpha", type=float, nargs="+", required=True, help="share of the trained weights")
    parser.add_argument("--refit-heads", action="store_true")
    args = parser.parse_args(argv)
    config = training_config(args)
    training = load_training_set(data_sources(args), config.seed)
    base_name = args.base_model or DEFAULT_BASE_MODEL
    base = AutoModel.from_pretrained(resolve_base_model(base_name)).state_dict()
    for alpha in args.alpha:
        if not 0.0 <= alpha <= 1.0:
            raise SystemExit(f"--alpha must be in [0, 1], got {alpha}")
        model = EarshotModel.from_pretrained(args.model, device="cpu", backend="torch")
        moved = interpolate_encoder(model, base, alpha)
        if args.refit_heads:
            fit_heads(model, training.train, c=config.head_fit_c)
        metrics, thresholds = Trainer(model, training.train, training.validation, config).evaluate_validation()
        for head in model.config.heads:
            head.thresholds = thresholds.get(head.name, head.thresholds)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics[head.name].items()
                              if k in ("accuracy", "macro_f1", "micro_f1"))
            print(f"alpha {alpha}: {head.name} on {len(training.validation)} validation rows: {shown}", flush=True)
        folder = Path(args.output) / f"a{alpha}"
        model.save_pretrained(folder)
        print(f"alpha {alpha}: {moved} encoder tensors interpolated toward {base_name}; saved {folder}", flush=True)


if __name__ == "__main__":
    main()
