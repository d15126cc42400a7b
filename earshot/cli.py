"""The ``earshot`` command: a thin layer over the model, training, scoring and service packages."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # for annotations only: each command imports what it needs when it runs
    from earshot.model import EarshotModel, Head
    from earshot.training import ColumnMapping, LoadedData, TrainingConfig
    from earshot.training.data import Example
    from earshot.training.taxonomy import Taxonomy

logger = logging.getLogger("earshot")

BACKEND_CHOICES = ["torch", "bf16", "onnx", "onnx-int8", "auto"]
BACKEND_HELP = ("torch (CPU or GPU); bf16: torch in bfloat16 on the CPU; onnx or onnx-int8: ONNX Runtime on the CPU, "
                "exported beside the model on first use (see `earshot export`); auto (the default, as the service "
                "uses): bf16 on a CPU with AMX bfloat16 units, onnx-int8 on other CPUs, torch on a GPU, so that batch "
                "scores equal the API's")
COMPILE_HELP = ("run the torch or bf16 backend through torch.compile, compiled at start (tens of seconds, needs a C++ "
                "compiler): on an AMX CPU bf16 compiled ran at 2.7x fp32 torch, bf16 at 2.4x; for long jobs; scores "
                "move by float rounding")


def add_column_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", default="text", help="column holding the feedback text (default: text)")
    parser.add_argument("--sentiment-column", help="column of the 'sentiment' head: one label per text "
                                                   "(empty cell = unknown)")
    parser.add_argument("--pain-points-column",
                        help="column of the 'pain_points' head: 'a;b', a JSON list, or one label; empty = none")
    parser.add_argument("--head", action="append", default=[], metavar="NAME:KIND:COLUMN",
                        help="another head (repeatable): KIND is single (one label per text) or multi (any number), "
                             "e.g. praise_points:multi:praise_points")
    parser.add_argument("--none-label", action="append", default=[], metavar="LABEL",
                        help="a value of a multi head's column that means 'no label' (repeatable), e.g. \"Can't Tell\"")
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
    train.add_argument("--base-model", default=None, help="hub id or local folder (default: all-MiniLM-L6-v2)")
    train.add_argument("--max-length", type=int, default=argparse.SUPPRESS,
                       help="tokens per text; longer texts are cut (default: the model config's, "
                            f"{EarshotConfig.__dataclass_fields__['max_length'].default})")
    add_config_flags(train)
    train.add_argument("--exclude", type=Path, default=None,
                       help="leave out the data rows listed in this file's 'row' column (e.g. from `earshot audit`)")


def add_config_flags(train: argparse.ArgumentParser) -> None:
    """Every TrainingConfig field as a flag, and the flags of any training run (resume, label, progress)."""
    _config_flag(train, "--recipe", choices=["auto", "fine-tune", "few-shot"],
                 help="few-shot: a contrastive stage on the encoder and heads fitted on its embeddings before "
                      "fine-tuning; auto: few-shot when some head has few labelled rows per label")
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
    _config_flag(train, "--multi-label-loss-weight", "--pain-point-loss-weight", type=float,
                 help="weight of each multi head's loss against a single head's")
    _config_flag(train, "--ranking-loss-weight", "--pain-point-ranking-weight", type=float,
                 help="weight of a softmax loss over a multi head's labels on texts that have one (helps the "
                      "best-scoring label be the right one); 0: off")
    _config_flag(train, "--threshold-shrinkage", type=float,
                 help="pull each multi-head threshold toward one shared threshold, by k / (positives + k) for a "
                      "label with that many validation positives; 0: independent per label")
    _config_flag(train, "--class-weighting", choices=["none", "sqrt", "balanced"])
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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot", description="Customer-feedback sentiment and pain points.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune a model on labelled feedback")
    add_training_flags(train)
    add_column_flags(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="metrics, confusion matrices and model card on labelled data")
    evaluate.add_argument("--data", required=True, type=Path)
    evaluate.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    evaluate.add_argument("--output", type=Path, default=None, help="where metrics go (default: the model folder)")
    evaluate.add_argument("--no-model-card", action="store_true", help="do not update the model folder's README.md")
    evaluate.add_argument("--batch-size", type=int, default=None)
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=BACKEND_HELP)
    evaluate.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    add_column_flags(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    score = commands.add_parser("score", help="add predictions to every row of a file")
    score.add_argument("input", type=Path, help="CSV, TSV, JSONL or Parquet")
    score.add_argument("-o", "--output", required=True, type=Path, help="output file; format from its extension")
    score.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    score.add_argument("--text-column", default="text")
    score.add_argument("--chunk-size", type=int, default=4096, help="rows read, scored and written at a time")
    score.add_argument("--batch-size", type=int, default=None, help="texts per forward pass")
    score.add_argument("--device", default=None)
    score.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=BACKEND_HELP)
    score.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    score.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process; ray: Ray Data actors (local Ray or --ray-address)")
    score.add_argument("--ray-address", default=None, help="an existing Ray cluster, e.g. ray://head:10001 or auto")
    score.add_argument("--ray-actors", type=int, default=None, help="model replicas (default: CPUs / 2)")
    score.add_argument("--resume", action="store_true",
                       help="continue an interrupted run with the same input, model and chunk size")
    score.add_argument("--no-progress", action="store_true")
    score.set_defaults(handler=_score)
    split = commands.add_parser("split", help="hold out a stratified, seeded test set from a labelled file")
    split.add_argument("data", type=Path)
    split.add_argument("--train-output", required=True, type=Path)
    split.add_argument("--test-output", required=True, type=Path)
    split.add_argument("--test-fraction", type=float, default=0.1)
    split.add_argument("--stratify-column", action="append", default=[], metavar="COLUMN",
                       help="keep each value's share in both parts (repeatable)")
    split.add_argument("--seed", type=int, default=13)
    split.set_defaults(handler=_split)

    report = commands.add_parser("report", help="Voice-of-the-Customer HTML report from a scored file")
    report.add_argument("scored", type=Path, help="a file written by `earshot score`")
    report.add_argument("-o", "--output", required=True, type=Path, help="the HTML file to write")
    report.add_argument("--date-column", default=None, help="column with dates: adds a trend (daily, weekly or monthly by span)")
    report.add_argument("--by", default=None, help="column to break down by (channel, airline, region, ...)")
    report.add_argument("--text-column", default="text")
    report.add_argument("--model", type=Path, default=None, help="model that scored the file, for provenance")
    report.add_argument("--title", default=None)
    report.set_defaults(handler=_report)

    audit = commands.add_parser("audit", help="rank the rows whose labels are probably wrong (confident learning)")
    audit.add_argument("--data", required=True, type=Path, help="the labelled file to audit")
    audit.add_argument("-o", "--output", required=True, type=Path, help="CSV of suspect rows, most suspect first")
    audit.add_argument("--folds", type=int, default=5, help="folds for the out-of-fold probabilities (default: 5)")
    audit.add_argument("--seed", type=int, default=13)
    audit.add_argument("--base-model", default=None, help="the frozen encoder (default: all-MiniLM-L6-v2)")
    add_column_flags(audit)
    audit.set_defaults(handler=_audit)

    export = commands.add_parser("export", help="export a model to ONNX (fp32 and int8) for --backend onnx*")
    export.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    export.set_defaults(handler=_export)

    serve = commands.add_parser("serve", help="start the HTTP API (BentoML)")
    serve.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    serve.add_argument("--backend", choices=BACKEND_CHOICES, default=None, help=BACKEND_HELP)
    serve.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: 1)")
    serve.add_argument("--api-workers", type=int, default=None,
                       help="split the service: N API worker processes (HTTP, tokenizing, answers) in front of "
                            "the --workers model worker(s), which batch and run the network (default: one service)")
    serve.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (or EARSHOT_API_KEY)")
    serve.add_argument("--registry", type=Path, default=None,
                       help="serve this registry's current version and swap to each promoted one")
    serve.add_argument("--feedback-db", default=None,
                       help="SQLite file or SQLAlchemy URL: queue unsure answers for review, take /corrections")
    serve.add_argument("--retention-days", type=int, default=None, help="delete stored feedback older than this")
    serve.set_defaults(handler=_serve)

    from earshot.distill_command import add_command as add_distill
    from earshot.loop.commands import add_commands

    add_distill(commands)
    add_commands(commands)
    return parser


def column_mapping(args: argparse.Namespace) -> "ColumnMapping":
    from earshot.training import ColumnMapping, HeadColumn

    heads = []
    if args.sentiment_column:
        heads.append(HeadColumn("sentiment", "single", args.sentiment_column, flag="--sentiment-column"))
    if args.pain_points_column:
        heads.append(HeadColumn("pain_points", "multi", args.pain_points_column, flag="--pain-points-column"))
    heads += [HeadColumn.parse(spec) for spec in args.head]
    return ColumnMapping(text=args.text_column, heads=tuple(heads), none_labels=tuple(args.none_label))


def _report_skipped(data: "LoadedData") -> None:
    if data.skipped:
        shown = "\n  ".join(str(s) for s in data.skipped[:20])
        more = f"\n  ... and {len(data.skipped) - 20} more" if len(data.skipped) > 20 else ""
        logger.warning("skipped %d bad rows of %s:\n  %s%s", len(data.skipped), data.source, shown, more)


def training_config(args: argparse.Namespace) -> "TrainingConfig":
    """The TrainingConfig that the flags of ``add_training_flags`` set (the rest at its defaults)."""
    from earshot.training import TrainingConfig

    settings = {name: getattr(args, name) for name in TrainingConfig.__dataclass_fields__ if hasattr(args, name)}
    return TrainingConfig.from_dict({**settings, "output_dir": str(args.output)})


def _train(args: argparse.Namespace) -> None:
    config = training_config(args)
    fit(args, config, *training_data(args, config.seed))


def fit(args: argparse.Namespace, config: "TrainingConfig", heads: list["Head"], train_examples: list["Example"],
        validation_examples: list["Example"], provenance: dict[str, Any]) -> "EarshotModel":
    """Train a fresh model on the base encoder and save it in ``config.output_dir``."""
    import torch

    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel
    from earshot.training import Trainer

    torch.manual_seed(config.seed)  # the heads' initial weights
    extra = {"max_length": args.max_length} if hasattr(args, "max_length") else {}
    model = EarshotModel.from_base(args.base_model or DEFAULT_BASE_MODEL, heads, label=args.label, **extra)
    model.config.provenance = provenance
    logger.info("training on %d rows, validating on %d; heads %s", len(train_examples), len(validation_examples),
                ", ".join(f"{h.name} ({h.kind}, {len(h.labels)} labels)" for h in heads))
    result = Trainer(model, train_examples, validation_examples, config).train(resume=args.resume)
    logger.info("done in %.0f s: best epoch %d of %d, validation score %.4f; model %s in %s",
                result.seconds, result.best_epoch, result.epochs_run, result.best_score, model.version, args.output)
    return model


def training_data(args: argparse.Namespace, seed: int) -> tuple[list["Head"], list["Example"], list["Example"],
                                                                   dict[str, Any]]:
    """Heads, training and validation examples, and the data's provenance, from --data and/or --taxonomy."""
    from earshot.training import read_examples, split_validation
    from earshot.training.data import DataError, sample_per_label, short_labels
    from earshot.training.provenance import data_provenance
    from earshot.training.taxonomy import read_taxonomy

    if args.data is None and args.taxonomy is None:
        raise DataError("give --data (labelled rows), --taxonomy (labels with descriptions), or both")
    taxonomy = read_taxonomy(args.taxonomy) if args.taxonomy is not None else None
    if args.data is None:
        heads = [head.head() for head in taxonomy.heads]
        validation = (read_examples(args.validation, _taxonomy_mapping(taxonomy, args),
                                    known_labels={h.name: h.labels for h in heads}).examples
                      if args.validation is not None else [])
        provenance = {"taxonomy": args.taxonomy.name, "train_rows": 0, "validation_rows": len(validation)}
        return heads, taxonomy.examples(), validation, provenance
    mapping = column_mapping(args)
    known = _taxonomy_labels(taxonomy, mapping) if taxonomy is not None else None
    data = read_examples(args.data, mapping, skip_bad_rows=args.skip_bad_rows, known_labels=known)
    _report_skipped(data)
    read = len(data.examples)
    if args.exclude is not None:
        data = _exclude(data, args.exclude)
    heads = ([next(t.head() for t in taxonomy.heads if t.name == h.name) for h in mapping.heads] if taxonomy is not None
             else data.heads(mapping))
    if args.validation is not None:
        validation = read_examples(args.validation, mapping, skip_bad_rows=args.skip_bad_rows,
                                   known_labels={head.name: head.labels for head in heads})
        _report_skipped(validation)
        train_examples, validation_examples = data.examples, validation.examples
    else:
        train_examples, validation_examples = split_validation(data.examples, args.validation_fraction, seed)
    if args.per_label is not None:
        if args.per_label < 1:
            raise DataError(f"--per-label must be at least 1, got {args.per_label}")
        train_examples = sample_per_label(train_examples, heads, args.per_label, seed)
        for head, counts in short_labels(train_examples, heads, args.per_label).items():
            logger.warning("--per-label %d: %s labels have fewer rows, all of them kept: %s", args.per_label, head,
                           ", ".join(f"{label} ({n})" for label, n in counts.items()))
            scarce = [label for label, n in counts.items() if n < 2]
            if scarce:
                logger.warning("%s labels with fewer than 2 rows (the contrastive stage pairs rows of a label; these "
                               "learn from %s alone): %s", head, "their taxonomy description and" if taxonomy
                               else "their one row, if any,", ", ".join(scarce))
    provenance = data_provenance(args.data, mapping, data, len(train_examples), len(validation_examples),
                                 validation_path=args.validation, licence=args.data_licence)
    if args.exclude is not None:
        provenance["excluded"] = {"file": args.exclude.name, "rows": read - len(data.examples)}
    if taxonomy is not None:
        provenance["taxonomy"] = args.taxonomy.name
        train_examples = [*train_examples, *taxonomy.examples()]
    return heads, train_examples, validation_examples, provenance


def _taxonomy_labels(taxonomy: "Taxonomy", mapping: "ColumnMapping") -> dict[str, list[str]]:
    """Each mapped head's labels from the taxonomy; a mapped head it lacks, or a kind it contradicts, is an error."""
    from earshot.training.data import DataError

    known = {}
    for column in mapping.heads:
        head = taxonomy.head(column.name)
        if head is None:
            raise DataError(f"{taxonomy.source}: no head {column.name!r} for the column {column.column!r} "
                            f"({column.flag}); its heads: {[h.name for h in taxonomy.heads]}")
        if head.kind != column.kind:
            raise DataError(f"{taxonomy.source}: head {column.name!r} is {head.kind} there but {column.kind} "
                            f"in {column.flag}")
        known[column.name] = [label.name for label in head.labels]
    unmapped = [h.name for h in taxonomy.heads if h.name not in known]
    if unmapped:
        raise DataError(f"{taxonomy.source}: heads {unmapped} have no column in --data: add --head NAME:KIND:COLUMN")
    return known


def _taxonomy_mapping(taxonomy: "Taxonomy", args: argparse.Namespace) -> "ColumnMapping":
    """Without --data, --validation's columns are the taxonomy's heads unless column flags say otherwise."""
    from earshot.training import ColumnMapping, HeadColumn

    if args.sentiment_column or args.pain_points_column or args.head:
        return column_mapping(args)
    return ColumnMapping(text=args.text_column, heads=tuple(HeadColumn(h.name, h.kind, h.name) for h in taxonomy.heads),
                         none_labels=tuple(args.none_label))


def _exclude(data: "LoadedData", listing: Path) -> "LoadedData":
    """``data`` without the rows listed in ``listing``; a listed row the data does not have is an error."""
    from dataclasses import replace

    from earshot.training.audit import excluded_rows
    from earshot.training.data import DataError

    rows = excluded_rows(listing)
    present = {e.row for e in data.examples} | {s.row for s in data.skipped}
    missing = sorted(rows - present)
    if missing:
        raise DataError(f"{listing}: rows {missing[:10]} are not in {data.source} ({len(present)} rows); "
                        "was the audit made on another file?")
    kept = [e for e in data.examples if e.row not in rows]
    logger.info("--exclude: leaving out %d rows listed in %s", len(data.examples) - len(kept), listing)
    return replace(data, examples=kept)


def _audit(args: argparse.Namespace) -> None:
    from earshot.model import DEFAULT_BASE_MODEL
    from earshot.training import read_examples
    from earshot.training.audit import audit, embed_texts, write_suspects

    mapping = column_mapping(args)
    data = read_examples(args.data, mapping, skip_bad_rows=args.skip_bad_rows)
    _report_skipped(data)
    embeddings = embed_texts(args.base_model or DEFAULT_BASE_MODEL, [e.text for e in data.examples])
    suspects = audit(data.examples, mapping, embeddings, data.heads(mapping), folds=args.folds, seed=args.seed)
    write_suspects(suspects, args.output)
    for head in mapping.heads:
        found = [s for s in suspects if s.head == head.name]
        logger.info("%s (column %r): %d of %d rows flagged", head.name, head.column, len(found), len(data.examples))
        for s in found[:5]:
            logger.info("  row %d: %r, probably %r (score %.3f)", s.row, s.given, s.suggested, s.score)
    logger.info("wrote %s; `earshot train ... --exclude %s` leaves these rows out", args.output, args.output)


def _evaluate(args: argparse.Namespace) -> None:
    from earshot.model import DEFAULT_MODEL_DIR, EarshotModel
    from earshot.training import read_examples
    from earshot.training.evaluation import evaluate, write_evaluation

    model_dir = args.model or DEFAULT_MODEL_DIR
    model = EarshotModel.from_pretrained(model_dir, device=args.device, backend=args.backend, compiled=args.compile)
    mapping = column_mapping(args)
    known = {}
    for column in mapping.heads:
        known[column.name] = model.config.head(column.name).labels
    data = read_examples(args.data, mapping, skip_bad_rows=args.skip_bad_rows, known_labels=known)
    _report_skipped(data)
    metrics = evaluate(model, data, mapping, batch_size=args.batch_size)
    written = write_evaluation(model, metrics, args.output or model_dir, model_dir=model_dir,
                               update_card=not args.no_model_card)
    for head, values in metrics["heads"].items():
        logger.info("%s: accuracy %.4f, macro-F1 %.4f, micro-F1 %.4f", head, values["accuracy"],
                    values["macro_f1"], values["micro_f1"])
    logger.info("wrote %s", ", ".join(str(p) for p in written))


def _score(args: argparse.Namespace) -> None:
    from earshot.model import DEFAULT_MODEL_DIR, EarshotModel
    from earshot.scoring import score_file

    model_dir = args.model or DEFAULT_MODEL_DIR
    if args.engine == "ray":
        from earshot.ray_engine import score_file_with_ray

        if args.resume:
            raise ValueError("--resume works with --engine local; a Ray job reruns from the start")
        summary = score_file_with_ray(Path(model_dir), args.input, args.output, text_column=args.text_column,
                                      address=args.ray_address, actors=args.ray_actors, chunk_size=args.chunk_size,
                                      batch_size=args.batch_size, device=args.device, backend=args.backend,
                                      compiled=args.compile)
    else:
        model = EarshotModel.from_pretrained(model_dir, device=args.device, backend=args.backend,
                                             compiled=args.compile)
        summary = score_file(model, args.input, args.output, text_column=args.text_column,
                             chunk_size=args.chunk_size, batch_size=args.batch_size,
                             progress=not args.no_progress, resume=args.resume)
    logger.info("scored %d rows (%d marked with an error) in %.1f s into %s", summary.rows, summary.errors,
                summary.seconds, args.output)


def _split(args: argparse.Namespace) -> None:
    import pandas as pd

    from earshot.tables import read_chunks, table_format, write_part
    from earshot.training.data import DataError, stratified_holdout

    frame = pd.concat(list(read_chunks(args.data, 100_000)), ignore_index=True)
    missing = [c for c in args.stratify_column if c not in frame.columns]
    if missing:
        raise DataError(f"{args.data}: no column(s) {missing} for --stratify-column; found {list(frame.columns)}")
    keys = frame[args.stratify_column].astype(str).agg("|".join, axis=1) if args.stratify_column else [""] * len(frame)
    test_rows = stratified_holdout(list(keys), args.test_fraction, args.seed)
    is_test = frame.index.isin(sorted(test_rows))
    for output in (args.train_output, args.test_output):
        output.parent.mkdir(parents=True, exist_ok=True)
    write_part(frame[~is_test], args.train_output, table_format(args.train_output))
    write_part(frame[is_test], args.test_output, table_format(args.test_output))
    logger.info("%d rows to %s, %d rows to %s", (~is_test).sum(), args.train_output, is_test.sum(), args.test_output)


def _report(args: argparse.Namespace) -> None:
    from earshot.model import read_config
    from earshot.report import build_report

    tally = build_report(args.scored, args.output, model_config=read_config(args.model), text_column=args.text_column,
                         date_column=args.date_column, by=args.by, title=args.title)
    logger.info("report on %d rows written to %s", tally.rows, args.output)


def _export(args: argparse.Namespace) -> None:
    from earshot.model import DEFAULT_MODEL_DIR, EarshotModel
    from earshot.model.onnx_backend import export_onnx

    folder = args.model or DEFAULT_MODEL_DIR
    model = EarshotModel.from_pretrained(folder, device="cpu")
    written = export_onnx(model, Path(folder), model.version)
    for backend, path in written.items():
        logger.info("%s: %s (%.1f MB)", backend, path, path.stat().st_size / 1e6)


def _serve(args: argparse.Namespace) -> None:
    import os

    env = dict(os.environ)
    if args.model is not None and args.registry is not None:
        raise ValueError("give --model or --registry, not both")
    if args.registry is not None:
        from earshot.loop.registry import Registry

        Registry(args.registry).current_path()  # a clear error now rather than in the worker
        env["EARSHOT_REGISTRY"] = str(args.registry.resolve())
    if args.feedback_db is not None:
        is_url = "://" in args.feedback_db
        env["EARSHOT_FEEDBACK_DB"] = args.feedback_db if is_url else str(Path(args.feedback_db).resolve())
    if args.model is not None:
        if not (args.model / "config.json").is_file():
            raise FileNotFoundError(f"{args.model} is not a model folder: it has no config.json")
        env["EARSHOT_MODEL"] = str(args.model.resolve())
    for name, value in (("EARSHOT_DEVICE", args.device), ("EARSHOT_WORKERS", args.workers),
                        ("EARSHOT_API_WORKERS", args.api_workers),
                        ("EARSHOT_BACKEND", args.backend), ("EARSHOT_RETENTION_DAYS", args.retention_days),
                        ("EARSHOT_API_KEY", args.api_key)):
        if value is not None:
            env[name] = str(value)
    if args.compile:
        env["EARSHOT_COMPILE"] = "1"
    # This interpreter's bentoml, whether or not its virtual environment is on PATH; the service is the
    # installed package's.
    command = [sys.executable, "-m", "bentoml", "serve", "earshot.service.service:Earshot",
               "--host", args.host, "--port", str(args.port)]
    logger.info("serving on http://%s:%d (OpenAPI page at /)", args.host, args.port)
    os.execve(command[0], command, env)  # bentoml takes over this process: signals reach it directly


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``earshot`` console script."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], None] = args.handler
    from earshot.extras import MissingExtraError
    from earshot.training.data import DataError

    try:
        handler(args)
    except (DataError, FileNotFoundError, ValueError, KeyError, MissingExtraError) as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
