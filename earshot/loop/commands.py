"""The closed loop's commands: ``feedback`` (export, purge, stats), ``retrain``, ``compare``,
``promote`` and ``rollback``. A thin layer: the work is in store, corrections, compare and registry."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from earshot.model import EarshotModel
    from earshot.training.data import Example, HeadColumn

    from .registry import Registry
    from .store import Correction

logger = logging.getLogger("earshot")
HOLDOUT_HELP = ("share of the corrections held out from training to compare models on, chosen by each text's hash "
                "(default: 0.1)")


def add_commands(commands: Any) -> None:
    from earshot.flags import add_column_flags, add_training_flags

    feedback = commands.add_parser("feedback", help="the feedback store: export corrections, purge, stats")
    actions = feedback.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write the corrections in training columns (CSV, JSONL, Parquet)")
    export.add_argument("--feedback-db", required=True, help="SQLite file or SQLAlchemy URL")
    export.add_argument("-o", "--output", required=True, type=Path, help="output file; format from its extension")
    export.add_argument("--part", choices=["all", "train", "holdout"], default="all",
                        help="all corrections, or the side of the hold-out split that retrain trains on / compares on")
    export.add_argument("--holdout-fraction", type=float, default=0.1, help=HOLDOUT_HELP)
    export.add_argument("--redact", nargs="+", default=None, metavar="KIND",
                        help="hide these in the texts: email, phone, card, iban, url, person")
    export.set_defaults(handler=_export)
    purge = actions.add_parser("purge", help="delete stored feedback (personal data)")
    purge.add_argument("--feedback-db", required=True)
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than-days", type=float, help="delete what was stored longer ago than this")
    which.add_argument("--all", action="store_true", help="delete every queued item and correction")
    purge.set_defaults(handler=_purge)
    stats = actions.add_parser("stats", help="queue and corrections counts, accuracy on the random sample")
    stats.add_argument("--feedback-db", required=True)
    stats.set_defaults(handler=_stats)

    retrain = commands.add_parser("retrain", help="train a candidate on the base data plus the corrections")
    add_training_flags(retrain)
    retrain.add_argument("--feedback-db", required=True, help="the store holding the corrections")
    retrain.add_argument("--holdout-fraction", type=float, default=0.1, help=HOLDOUT_HELP)
    retrain.add_argument("--registry", type=Path, default=None, help="add the candidate to this registry")
    retrain.add_argument("--from", dest="start_from", default=None, metavar="MODEL",
                         help="start from this model (folder, a version id of --registry, or 'current'): its encoder, "
                              "a contrastive stage over the new rows, heads refitted, up to 12 epochs of polish, the "
                              "lowest third of the layers frozen; default: from the base encoder")
    add_column_flags(retrain)
    retrain.set_defaults(handler=_retrain)

    compare = commands.add_parser("compare", help="score two models on the same rows, with bootstrap intervals")
    compare.add_argument("candidate", help="model folder, or a version id of --registry")
    compare.add_argument("--against", default=None, help="model folder or version id (default: the registry's current)")
    _evaluation_flags(compare)
    compare.add_argument("-o", "--output", type=Path, default=None,
                         help="JSON report (a readable .txt is written beside it)")
    compare.set_defaults(handler=_compare)

    promote = commands.add_parser("promote", help="make a version current, if it is no worse than the current one")
    promote.add_argument("candidate", help="version id in --registry, or a model folder (added to the registry)")
    promote.add_argument("--report", type=Path, default=None, help="a report of `earshot compare` to decide on")
    _evaluation_flags(promote)
    promote.add_argument("--tolerance", type=float, default=0.01,
                         help="refuse when a head's headline metric drops by more than this (default: 0.01)")
    promote.add_argument("--force", action="store_true", help="promote without comparing")
    promote.set_defaults(handler=_promote)

    rollback = commands.add_parser("rollback", help="make the version current before the last promotion current again")
    rollback.add_argument("--registry", required=True, type=Path)
    rollback.set_defaults(handler=_rollback)


def _evaluation_flags(parser: argparse.ArgumentParser) -> None:
    from earshot.flags import add_backend_flag, add_column_flags

    parser.add_argument("--registry", type=Path, default=None, help="the model registry folder")
    parser.add_argument("--data", type=Path, default=None, help="the team's fixed evaluation file")
    parser.add_argument("--feedback-db", default=None, help="add the corrections held out from training")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help=HOLDOUT_HELP)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    add_backend_flag(parser, default="torch")
    add_column_flags(parser)


# ------------------------------------------------------------------------------------------ feedback
def _export(args: argparse.Namespace) -> None:
    import pandas as pd

    from earshot.files import atomic_path
    from earshot.tables import table_format, write_part

    from .corrections import split_corrections
    from .store import FeedbackStore, unique_corrections

    corrections = unique_corrections(FeedbackStore.open(args.feedback_db).corrections())
    if args.part != "all":
        train, holdout = split_corrections(corrections, args.holdout_fraction)
        corrections = train if args.part == "train" else holdout
    heads = sorted({name for c in corrections for name in c.labels})
    from earshot.redaction import redactor

    redact = redactor(args.redact, "--redact") or str
    rows = [{"text": redact(c.text), **{head: _cell(c.labels.get(head, "")) for head in heads}, "id": c.caller_id,
             "reviewer": c.reviewer, "source": c.source, "created_at": c.created_at} for c in corrections]
    frame = pd.DataFrame(rows, columns=["text", *heads, "id", "reviewer", "source", "created_at"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        write_part(frame, tmp, table_format(args.output))
    logger.info("%d corrections (%s) written to %s; train on them with --head NAME:KIND:NAME for each of %s",
                len(frame), args.part, args.output, heads)


def _cell(value: Any) -> str:
    """A label cell as training reads it: one label, or a JSON list for a multi head (labels may hold ';')."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)


def _purge(args: argparse.Namespace) -> None:
    from .store import FeedbackStore

    from earshot.routing.router import purge_routed

    store = FeedbackStore.open(args.feedback_db)
    older = None if args.all else args.older_than_days
    deleted = {**store.purge(older), **purge_routed(store.engine, older)}
    logger.info("deleted %d queued items, %d corrections, %d deliveries and %d labels logged for spike alerts",
                deleted["items"], deleted["corrections"], deleted["deliveries"], deleted["label_events"])


def _stats(args: argparse.Namespace) -> None:
    from .store import FeedbackStore

    store = FeedbackStore.open(args.feedback_db)
    print(json.dumps({**store.counts(), "sampled_accuracy": store.sampled_accuracy()}, indent=2))


# ------------------------------------------------------------------------------------------- retrain
def _retrain(args: argparse.Namespace) -> None:
    from earshot.flags import data_sources, fit_options, training_config
    from earshot.model.modeling import encoder_layer_count, version_id
    from earshot.training.config import continue_settings
    from earshot.training.pipeline import fit, load_training_set

    from .corrections import merge_corrections, split_corrections
    from .registry import Registry
    from .store import FeedbackStore, text_hash, unique_corrections

    registry = Registry(args.registry) if args.registry is not None else None
    start = _start_folder(args.start_from, registry) if args.start_from is not None else None
    training = load_training_set(data_sources(args), training_config(args).seed)
    heads, train_examples, validation_examples = training.heads, training.train, training.validation
    corrections = unique_corrections(FeedbackStore.open(args.feedback_db).corrections())
    train_corrections, holdout = split_corrections(corrections, args.holdout_fraction)
    relevant = [c for c in train_corrections if any(h.name in c.labels for h in heads)]
    base_rows = len(train_examples)
    train_examples, heads, changed = merge_corrections(train_examples, relevant, heads)
    held_out = {text_hash(c.text) for c in holdout}
    validation_examples = [e for e in validation_examples if text_hash(e.text) not in held_out]
    training = replace(training, heads=heads, train=train_examples, validation=validation_examples)
    defaults = (continue_settings(len(relevant), len(train_examples), encoder_layer_count(start))
                if start is not None else None)
    config = training_config(args, defaults)
    training.provenance["corrections"] = {"used": len(relevant), "held_out": len(holdout), "changed_base_rows": changed}
    options = fit_options(args)
    if start is not None:
        training.provenance["continued_from"] = version_id(start)
        options["base_model"] = str(start)
    logger.info("retrain: %d base rows, %d corrections (%d of them change a base row's labels), %d held out; "
                "%d training rows after removing duplicates", base_rows, len(relevant), changed, len(holdout),
                len(train_examples))
    fit(config, training, **options)
    if registry is not None:
        version = registry.add(args.output)
        logger.info("candidate %s added to %s; compare it, then `earshot promote %s --registry %s`", version,
                    args.registry, version, args.registry)


def _start_folder(reference: str, registry: "Registry | None") -> Path:
    """The model a retrain starts from: ``current`` (the registry's), a version id, or a folder."""
    if reference == "current":
        return _resolve(None, registry)
    return _resolve(reference, registry)


# ------------------------------------------------------------------------------------ compare, promote
def _resolve(reference: str | None, registry: "Registry | None") -> Path:
    """A model folder from a folder path or a version id of the registry (None: the registry's current)."""
    from earshot.model.modeling import is_model_folder

    from .registry import RegistryError

    if reference is None:
        if registry is None:
            raise RegistryError("name the model to compare against (--against) or give --registry")
        return registry.current_path()
    path = Path(reference)
    if is_model_folder(path):
        return path
    if registry is not None:
        return registry.path(reference)
    raise FileNotFoundError(f"{reference} is not a model folder (no config.json with an earshot section); for a "
                            "version id give --registry")


def _evaluation_examples(args: argparse.Namespace) -> list["Example"]:
    """The fixed evaluation file's rows plus the corrections held out from training."""
    from earshot.flags import column_mapping
    from earshot.training.data import DataError
    from earshot.training.pipeline import read_checked

    from .corrections import split_corrections
    from .store import FeedbackStore, unique_corrections

    if args.data is None and args.feedback_db is None:
        raise DataError("give --data (the evaluation file), --feedback-db (held-out corrections), or both")
    mapping = column_mapping(args)
    examples: list[Example] = []
    if args.data is not None:
        examples += read_checked(args.data, mapping, skip_bad_rows=args.skip_bad_rows).examples
    if args.feedback_db is not None:
        _train, holdout = split_corrections(unique_corrections(FeedbackStore.open(args.feedback_db).corrections()),
                                            args.holdout_fraction)
        examples += correction_examples(holdout, mapping.heads)
    return examples


def correction_examples(corrections: Sequence["Correction"], heads: Sequence["HeadColumn"]) -> list["Example"]:
    """Corrections as evaluation rows; a head a correction leaves out is unknown there."""
    from earshot.training.data import Example

    from .corrections import label_list

    rows = []
    for number, correction in enumerate(corrections):
        labels: dict[str, Any] = {
            head.name: head.behaviour.label_value(label_list(correction.labels[head.name]))
            if head.name in correction.labels else None for head in heads}
        rows.append(Example(text=correction.text, labels=labels, row=-(number + 1)))
    return rows


def _load_pair(args: argparse.Namespace, candidate: str, against: str | None
               ) -> tuple["EarshotModel", "EarshotModel"]:
    from earshot.model import EarshotModel

    from .registry import Registry

    registry = Registry(args.registry) if args.registry is not None else None
    return tuple(EarshotModel.from_pretrained(_resolve(ref, registry), backend=args.backend)  # type: ignore[return-value]
                 for ref in (candidate, against))


def run_comparison(args: argparse.Namespace, candidate: str, against: str | None) -> dict[str, Any]:
    from earshot.flags import column_mapping

    from .compare import compare_models

    new, old = _load_pair(args, candidate, against)
    examples = _evaluation_examples(args)
    report = compare_models(new, old, examples, [h.name for h in column_mapping(args).heads],
                            resamples=args.resamples)
    return report


def _compare(args: argparse.Namespace) -> None:
    from earshot.files import write_text_atomic

    from .compare import render

    report = run_comparison(args, args.candidate, args.against)
    text = render(report)
    print(text, end="")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
        write_text_atomic(args.output.with_suffix(".txt"), text)
        logger.info("wrote %s and %s", args.output, args.output.with_suffix(".txt"))


def _promote(args: argparse.Namespace) -> None:
    from earshot.model.modeling import is_model_folder

    from .compare import render, worst_headline_delta
    from .registry import Registry, RegistryError

    if args.registry is None:
        raise RegistryError("promote needs --registry DIR")
    registry = Registry(args.registry)
    candidate = registry.add(args.candidate) if is_model_folder(args.candidate) else args.candidate
    registry.path(candidate)
    current = registry.current()
    note: dict[str, Any] = {}
    if current is None or args.force or current == candidate:
        note["compared"] = False
    else:
        if args.report is not None:
            report = json.loads(args.report.read_text(encoding="utf-8"))
            if (report.get("candidate"), report.get("current")) != (candidate, current):
                raise RegistryError(f"{args.report} compares {report.get('candidate')} with {report.get('current')}, "
                                    f"not {candidate} with the current {current}: run `earshot compare` again")
        else:
            report = run_comparison(args, candidate, current)
            print(render(report), end="")
        head, delta = worst_headline_delta(report)
        note.update(compared=True, worst_head=head, worst_delta=delta)
        if delta < -args.tolerance:
            raise RegistryError(f"not promoted: {candidate} is worse than {current} on {head} by {-delta:.4f} "
                                f"(tolerance {args.tolerance}); --force promotes it anyway")
    registry.promote(candidate, note)
    logger.info("%s is current in %s (was %s); services on this registry swap to it", candidate, args.registry,
                current)


def _rollback(args: argparse.Namespace) -> None:
    from .registry import Registry

    version = Registry(args.registry).rollback()
    logger.info("%s is current again in %s", version, args.registry)
