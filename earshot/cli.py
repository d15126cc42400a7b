"""The ``earshot`` command: a thin layer over the model, training, scoring and service packages."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from earshot.flags import (COMPILE_HELP, add_backend_flag, add_column_flags, add_training_flags, column_mapping,
                           data_sources, fit_options, training_config)

logger = logging.getLogger("earshot")


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
    add_backend_flag(evaluate)
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
    add_backend_flag(score)
    score.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    score.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process; ray: Ray Data actors (local Ray or --ray-address)")
    score.add_argument("--ray-address", default=None, help="an existing Ray cluster, e.g. ray://head:10001 or auto")
    score.add_argument("--ray-actors", type=int, default=None, help="model replicas (default: CPUs / 2)")
    score.add_argument("--resume", action="store_true",
                       help="continue an interrupted run with the same input, model and backend (the chunk size "
                            "may differ)")
    score.add_argument("--explain", action="store_true",
                       help="add NAME_evidence columns: each answered label's evidence spans (JSON); costs about "
                            "as many passes as a text has words")
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
    report.add_argument("--themes", type=Path, default=None,
                        help="the JSON of `earshot discover` on this file: adds a New themes section")
    report.add_argument("--redact", nargs="+", default=None, metavar="KIND",
                        help="hide these in the quoted texts: email, phone, card, iban, url, person")
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
    add_backend_flag(serve, default=None)
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
    serve.add_argument("--review-redact", nargs="+", default=None, metavar="KIND",
                       help="the review page hides these in texts: email, phone, card, iban, url, person "
                            "(default: reviewers see texts as written)")
    serve.add_argument("--routes", type=Path, default=None,
                       help="routing rules and spike alerts (YAML): matching answers are recorded in the feedback "
                            "store's outbox before they are answered, then sent as webhooks (needs --feedback-db)")
    serve.set_defaults(handler=_serve)

    from earshot.align_command import add_command as add_align
    from earshot.discover_command import add_command as add_discover
    from earshot.distill_command import add_command as add_distill
    from earshot.general_command import add_command as add_general
    from earshot.loop.commands import add_commands
    from earshot.routing.commands import add_commands as add_routing

    add_distill(commands)
    add_discover(commands)
    add_general(commands)
    add_align(commands)
    add_commands(commands)
    add_routing(commands)
    return parser


def _train(args: argparse.Namespace) -> None:
    from earshot.training.pipeline import fit, load_training_set

    config = training_config(args)
    fit(config, load_training_set(data_sources(args), config.seed), **fit_options(args))


def _audit(args: argparse.Namespace) -> None:
    from earshot.model import DEFAULT_BASE_MODEL
    from earshot.training.audit import audit, embed_texts, write_suspects
    from earshot.training.pipeline import read_checked

    mapping = column_mapping(args)
    data = read_checked(args.data, mapping, skip_bad_rows=args.skip_bad_rows)
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
    from earshot.training.evaluation import evaluate, write_evaluation
    from earshot.training.pipeline import read_checked

    model_dir = args.model or DEFAULT_MODEL_DIR
    model = EarshotModel.from_pretrained(model_dir, device=args.device, backend=args.backend, compiled=args.compile)
    mapping = column_mapping(args)
    known = {column.name: model.config.head(column.name).labels for column in mapping.heads}
    data = read_checked(args.data, mapping, skip_bad_rows=args.skip_bad_rows, known_labels=known)
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

        if args.resume or args.explain:
            raise ValueError("--resume and --explain work with --engine local; a Ray job scores without them")
        summary = score_file_with_ray(Path(model_dir), args.input, args.output, text_column=args.text_column,
                                      address=args.ray_address, actors=args.ray_actors, chunk_size=args.chunk_size,
                                      batch_size=args.batch_size, device=args.device, backend=args.backend,
                                      compiled=args.compile)
    else:
        model = EarshotModel.from_pretrained(model_dir, device=args.device, backend=args.backend,
                                             compiled=args.compile)
        summary = score_file(model, args.input, args.output, text_column=args.text_column,
                             chunk_size=args.chunk_size, batch_size=args.batch_size,
                             progress=not args.no_progress, resume=args.resume, explain=args.explain)
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

    from earshot.redaction import redactor

    redact = redactor(args.redact, "--redact")
    tally = build_report(args.scored, args.output, model_config=read_config(args.model), text_column=args.text_column,
                         date_column=args.date_column, by=args.by, title=args.title, redact=redact,
                         themes=json.loads(args.themes.read_text(encoding="utf-8")) if args.themes else None)
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
        from earshot.model import read_config

        read_config(args.model)  # a clear error now (not a model folder) rather than in the worker
        env["EARSHOT_MODEL"] = str(args.model.resolve())
    if args.routes is not None:
        _check_routes(args, env)
    if args.review_redact:
        from earshot.redaction import check_kinds

        env["EARSHOT_REVIEW_REDACT"] = ",".join(check_kinds(args.review_redact, "--review-redact"))
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


def _check_routes(args: argparse.Namespace, env: dict[str, str]) -> None:
    """A routes file that names an unknown head or label, or a bad URL, stops here with file, line and problem."""
    from earshot.model import read_config
    from earshot.model import DEFAULT_MODEL_DIR
    from earshot.routing.rules import read_rules

    if args.feedback_db is None and not env.get("EARSHOT_FEEDBACK_DB"):
        raise ValueError("--routes needs --feedback-db: deliveries wait in the feedback store's outbox until sent")
    if args.registry is None:  # a registry's current version is checked when the service loads it
        read_rules(args.routes, read_config(args.model or DEFAULT_MODEL_DIR).heads)
    env["EARSHOT_ROUTES"] = str(args.routes.resolve())


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
