"""The command line's shared flags and what they build: label columns, data sources, the training config.

Every command that reads labelled data or trains (train, retrain, distill, evaluate, audit, compare,
the benchmarks) takes its flags from here, so a flag means the same everywhere and no default is
restated: a config's default is the config's.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_column_flags(parser)
    >>> column_mapping(parser.parse_args(["--sentiment-column", "mood"])).heads[0].column
    'mood'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations only: the heavy packages load when a command runs
    from earshot.training import ColumnMapping, TrainingConfig
    from earshot.training.pipeline import DataSources

COMPILE_HELP = ("run the torch or bf16 backend through torch.compile, compiled at start (tens of seconds, needs a C++ "
                "compiler); for long jobs; scores move by float rounding")


def add_backend_flag(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--backend``, its choices and help from the backend registry (``earshot.model.runners``)."""
    from earshot.model.runners import backend_help, backend_names

    parser.add_argument("--backend", choices=backend_names(), default=default, help=backend_help())


def add_column_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", default="text", help="column holding the feedback text (default: text)")
    parser.add_argument("--sentiment-column", help="column of the 'sentiment' head: one label per text "
                                                   "(empty cell = unknown)")
    parser.add_argument("--pain-points-column",
                        help="column of the 'pain_points' head: 'a;b', a JSON list, or one label; empty = none")
    parser.add_argument("--head", action="append", default=[], metavar="NAME:KIND:COLUMN",
                        help="another head (repeatable): KIND is single (one label per text), multi (any number) "
                             "or a kind a plugin registers (EARSHOT_PLUGINS), e.g. praise_points:multi:praise_points")
    parser.add_argument("--none-label", action="append", default=[], metavar="LABEL",
                        help="a value of a multi head's column that means 'no label' (repeatable), e.g. \"Can't Tell\"")
    parser.add_argument("--unknown-label", action="append", default=[], metavar="VALUE",
                        help="a cell value that says nothing about its head (repeatable), e.g. for a source that "
                             "never annotated pain points: the row trains the other heads only")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="skip rows with empty text, malformed cells or unknown labels, and list them")


def _config_flag(parser: argparse.ArgumentParser, *flags: str, help: str = "", **options: Any) -> None:
    """A flag that sets the TrainingConfig field of the same name; its default is the config's, shown
    in the help and never restated here (an absent flag leaves the field to the config)."""
    from earshot.training import TrainingConfig

    field = flags[0].lstrip("-").replace("-", "_")
    default = TrainingConfig.__dataclass_fields__[field].default
    parser.add_argument(*flags, dest=field, default=argparse.SUPPRESS, help=f"{help} (default: {default})".strip(),
                        **options)


def add_training_flags(train: argparse.ArgumentParser) -> None:
    """The flags of ``train`` (and ``retrain``): data, output, and every TrainingConfig field."""
    from earshot.model import EarshotConfig

    train.add_argument("--data", type=Path, help="CSV, TSV, JSONL, Parquet or saved dataset folder (optional with "
                                                  "--taxonomy)")
    train.add_argument("--taxonomy", type=Path, help="YAML of each head's labels: name, one-line description, optional "
                                                     "examples (see examples/banking77-taxonomy.yaml)")
    train.add_argument("--per-label", type=int, metavar="K",
                       help="train on at most K rows of each label of --data (seeded by --seed); labels with fewer "
                            "are reported by name")
    train.add_argument("--validation", type=Path, help="validation file (default: a stratified split of --data)")
    train.add_argument("--validation-fraction", type=float, default=0.1)
    train.add_argument("--output", required=True, type=Path, help="model folder to write")
    train.add_argument("--base-model", default=None,
                       help="hub id or local folder (default: all-MiniLM-L6-v2; from a taxonomy alone, the shipped model/names)")
    train.add_argument("--max-length", type=int, default=argparse.SUPPRESS,
                       help="tokens per text; longer texts are cut (default: the model config's, "
                            f"{EarshotConfig.__dataclass_fields__['max_length'].default})")
    add_config_flags(train)
    train.add_argument("--source-column", default=None, metavar="COLUMN",
                       help="a column of --data naming each row's source: the model card counts each source's rows "
                            "per label")
    train.add_argument("--licence-column", default=None, metavar="COLUMN",
                       help="with --source-column: a column giving each row's licence, listed per source in the card")
    train.add_argument("--exclude", type=Path, default=None,
                       help="leave out the data rows listed in this file's 'row' column (e.g. from `earshot audit`)")


def add_config_flags(train: argparse.ArgumentParser) -> None:
    """Every TrainingConfig field as a flag, and the flags of any training run (resume, label, progress)."""
    _config_flag(train, "--recipe", choices=["auto", "fine-tune", "few-shot", "names"],
                 help="few-shot: a contrastive stage on the encoder and heads fitted on its embeddings before "
                      "fine-tuning; names: each label is its description's vector (a taxonomy and no rows); "
                      "auto: names when every row is a taxonomy description, few-shot when some head has few "
                      "labelled rows per label")
    _config_flag(train, "--few-shot-max-per-label", type=int, help="rows per label up to which auto picks few-shot")
    _config_flag(train, "--epochs", type=int,
                 help="fine-tuning epochs; unset: enough for about --steps steps (few-shot: --few-shot-epochs)")
    _config_flag(train, "--steps", type=int, help="optimizer steps the fine-tuning is sized to when --epochs is unset")
    _config_flag(train, "--max-epochs", type=int, help="at most this many epochs when sized by --steps")
    _config_flag(train, "--few-shot-epochs", type=int, help="fine-tuning epochs after the few-shot start")
    _config_flag(train, "--contrastive-steps", type=int, help="batches of the contrastive stage; unset: sized by the data")
    _config_flag(train, "--contrastive-learning-rate", type=float)
    _config_flag(train, "--batch-size", type=int)
    _config_flag(train, "--learning-rate", type=float, help="of the encoder")
    _config_flag(train, "--head-learning-rate", type=float, help="of the heads, which start from random weights")
    _config_flag(train, "--warmup-ratio", type=float)
    _config_flag(train, "--patience", type=int,
                 help="epochs without improvement before stopping; 0: never stop early; unset: a fifth of the epochs, "
                      "at least 2")
    _config_flag(train, "--min-improvement", type=float,
                 help="validation-score gain an epoch needs to reset the patience (a better epoch is kept anyway)")
    _config_flag(train, "--multi-label-loss-weight", "--pain-point-loss-weight", type=float,
                 help="weight of each multi head's loss against a single head's")
    _config_flag(train, "--ranking-loss-weight", "--pain-point-ranking-weight", type=float,
                 help="weight of a softmax loss over a multi head's labels on texts that have one (helps the "
                      "best-scoring label be the right one); 0: off")
    _config_flag(train, "--threshold-shrinkage", type=float,
                 help="pull each multi-head threshold toward one shared threshold, by k / (positives + k) for a "
                      "label with that many validation positives; 0: independent per label")
    _config_flag(train, "--class-weighting", choices=["none", "sqrt", "balanced"])
    _config_flag(train, "--frozen-layers", type=int, metavar="N",
                 help="fine-tune with the embeddings and the N lowest encoder layers frozen, their output computed "
                      "once per text: each step runs only the layers above (faster; quality in docs/experiments.md)")
    _config_flag(train, "--frozen-from-epoch", type=int, metavar="K",
                 help="with --frozen-layers: train every layer for the first K-1 epochs, then freeze (the long tail "
                      "of epochs runs cheaper on lower layers adapted to the data)")
    _config_flag(train, "--probe-heads", action="store_const", const=True,
                 help="fine-tune recipe: start the heads as logistic regressions on the base encoder's vectors "
                      "(linear probe, then fine-tuning) instead of random weights")
    _config_flag(train, "--seed", type=int, help="shuffling, heads' initial weights and the validation split")
    _config_flag(train, "--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    _config_flag(train, "--save-dtype", choices=["float32", "float16"],
                 help="weights precision on disk, whatever device trained (float16 halves the size)")
    train.add_argument("--no-mixed-precision", dest="mixed_precision", action="store_const", const=False,
                       default=argparse.SUPPRESS,
                       help="train in fp32 throughout (default: forward passes in bfloat16 on GPUs and on CPUs with AMX)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    _config_flag(train, "--keep-checkpoints", action="store_const", const=True)
    train.add_argument("--label", default="", help="a human name for this model version, shown beside its id")
    train.add_argument("--data-licence", default="", help="licence of the training data, for the model card")
    train.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=argparse.SUPPRESS)


def column_mapping(args: argparse.Namespace) -> "ColumnMapping":
    """The label columns that --sentiment-column, --pain-points-column and --head name."""
    from earshot.training import ColumnMapping, HeadColumn

    heads = []
    if args.sentiment_column:
        heads.append(HeadColumn("sentiment", "single", args.sentiment_column, flag="--sentiment-column"))
    if args.pain_points_column:
        heads.append(HeadColumn("pain_points", "multi", args.pain_points_column, flag="--pain-points-column"))
    heads += [HeadColumn.parse(spec) for spec in args.head]
    return ColumnMapping(text=args.text_column, heads=tuple(heads), none_labels=tuple(args.none_label),
                         unknown_labels=tuple(args.unknown_label))


def training_config(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> "TrainingConfig":
    """The TrainingConfig that the flags of ``add_training_flags`` set; the rest from ``defaults``, then the
    config's own defaults."""
    from earshot.training import TrainingConfig

    settings = {name: getattr(args, name) for name in TrainingConfig.__dataclass_fields__ if hasattr(args, name)}
    return TrainingConfig.from_dict({**(defaults or {}), **settings, "output_dir": str(args.output)})


def data_sources(args: argparse.Namespace) -> "DataSources":
    """The ``DataSources`` that the flags of ``add_training_flags`` and ``add_column_flags`` name."""
    from earshot.training.pipeline import DataSources

    named = bool(args.sentiment_column or args.pain_points_column or args.head)
    return DataSources(data=args.data, mapping=column_mapping(args) if named else None, taxonomy=args.taxonomy,
                       validation=args.validation, validation_fraction=args.validation_fraction,
                       per_label=args.per_label, exclude=args.exclude, skip_bad_rows=args.skip_bad_rows,
                       licence=args.data_licence, text_column=args.text_column, none_labels=tuple(args.none_label),
                       unknown_labels=tuple(args.unknown_label), source_column=args.source_column, licence_column=args.licence_column)


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``training.pipeline.fit`` that the training flags set."""
    return {"base_model": args.base_model, "label": args.label, "resume": args.resume,
            "max_length": getattr(args, "max_length", None)}
