"""``earshot distill``: a student model trained on a teacher's answers (training/distill.py).

Example:
    earshot distill --teacher runs/mpnet --data train.csv --sentiment-column airline_sentiment \\
        --pain-points-column negativereason --unlabelled more-tweets.csv --student-layers 3 --output runs/fast
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger("earshot")


def add_command(commands: argparse._SubParsersAction) -> None:
    from earshot.flags import add_column_flags, add_config_flags
    from earshot.training.distill import DistillationConfig

    distill = commands.add_parser("distill", help="train a smaller or faster student on a teacher model's answers")
    distill.add_argument("--teacher", required=True, type=Path, nargs="+", metavar="DIR",
                         help="the teacher's model folder; several: their answers averaged (an ensemble), the first "
                              "one the source of --student-layers and of the text-vector and layer terms")
    distill.add_argument("--data", required=True, type=Path, help="labelled rows (their texts are labelled by the "
                                                                  "teacher too; their gold labels count as well)")
    distill.add_argument("--unlabelled", type=Path, nargs="+", default=[], metavar="FILE",
                         help="more texts (--text-column), labelled by the teacher alone")
    distill.add_argument("--validation", type=Path, help="validation file (default: a stratified split of --data)")
    distill.add_argument("--validation-fraction", type=float, default=0.1)
    distill.add_argument("--output", required=True, type=Path, help="the student's model folder")
    distill.add_argument("--student-base", default=None, metavar="ID|PATH",
                         help="what the student starts from: a hub id or local folder of an encoder (fresh heads), or "
                              "an earshot model folder with the teacher's heads (default: all-MiniLM-L6-v2; with "
                              "--student-layers or --student-ffn: the teacher)")
    distill.add_argument("--student-layers", type=_layers, default=None, metavar="N|LIST",
                         help="keep the first N layers of the teacher (or of --student-base), or the layers numbered "
                              "in LIST (1,3,4,5,6: from 1, in order), with its tokenizer and heads")
    distill.add_argument("--student-ffn", type=int, default=None, metavar="WIDTH",
                         help="keep WIDTH of the feed-forward neurons of each layer of the teacher (or of "
                              "--student-base, --student-layers), those that add most on the training texts; two "
                              "thirds of a layer's work is there")
    defaults = DistillationConfig()
    distill.add_argument("--temperature", type=float, default=None,
                         help=f"softens the teacher's answers (default: {defaults.temperature})")
    distill.add_argument("--gold-weight", type=float, default=None,
                         help=f"share of the loss from gold labels, on rows that have them (default: {defaults.gold_weight})")
    distill.add_argument("--embedding-weight", type=float, default=None,
                         help="weight of the loss that pulls the student's text vectors toward the teacher's "
                              f"(default: {defaults.embedding_weight})")
    distill.add_argument("--hidden-weight", type=float, default=None,
                         help="weight of the loss that pulls each student layer's token states toward a teacher "
                              "layer's (a --student-layers student; the teacher runs beside each step; default: "
                              f"{defaults.hidden_weight})")
    add_config_flags(distill)
    add_column_flags(distill)
    distill.set_defaults(handler=run)


def _layers(text: str) -> int | list[int]:
    from earshot.training.distill import parse_layers

    try:
        return parse_layers(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> None:
    import torch

    from earshot.flags import column_mapping, training_config
    from earshot.model import DEFAULT_BASE_MODEL
    from earshot.training import split_validation
    from earshot.training.pipeline import read_checked
    from earshot.training.data import DataError, read_texts
    from earshot.training.distill import (DistillationConfig, DistillationTrainer, encoder_layers, load_teacher,
                                          narrow_ffn, student_from_layers, student_start)
    from earshot.training.provenance import data_provenance

    config = training_config(args)
    distillation = DistillationConfig(**{name: value for name, value in (
        ("temperature", args.temperature), ("gold_weight", args.gold_weight),
        ("embedding_weight", args.embedding_weight), ("hidden_weight", args.hidden_weight)) if value is not None})
    teachers = [load_teacher(path, device=config.device) for path in args.teacher]
    teacher = teachers[0]
    mapping = column_mapping(args)
    unmapped = sorted({h.name for h in teacher.config.heads} - {h.name for h in mapping.heads})
    if unmapped:
        raise DataError(f"the teacher has heads {[h.name for h in teacher.config.heads]}; map a column of --data to "
                        f"each (missing: {unmapped}) with --sentiment-column, --pain-points-column or "
                        "--head NAME:KIND:COLUMN")
    known = {head.name: head.labels for head in teacher.config.heads}
    data = read_checked(args.data, mapping, skip_bad_rows=args.skip_bad_rows, known_labels=known)
    if args.validation is not None:
        train_examples = data.examples
        validation = read_checked(args.validation, mapping, skip_bad_rows=args.skip_bad_rows, known_labels=known)
        validation_examples = validation.examples
    else:
        train_examples, validation_examples = split_validation(data.examples, args.validation_fraction, config.seed)
    unlabelled = [example for path in args.unlabelled
                  for example in read_texts(path, args.text_column, skip_bad_rows=args.skip_bad_rows)]

    torch.manual_seed(config.seed)  # a fresh student's heads
    if args.student_layers is not None or args.student_ffn is not None:
        source = student_start(teacher, args.student_base)
        layers = args.student_layers if args.student_layers is not None else len(encoder_layers(source.encoder))
        student = student_from_layers(source, layers)
        kept = (f"first {layers} layers" if isinstance(layers, int) else f"layers {','.join(map(str, layers))}")
        if args.student_ffn is not None:
            # Ranked on the first 1,000 training texts: enough to order the neurons, and the same on resume.
            narrow_ffn(student, args.student_ffn, [example.text for example in train_examples[:1000]])
            kept += f", feed-forward {args.student_ffn} wide"
        student.config.base_model = f"{args.student_base or teacher.config.base_model} ({kept})"
    else:
        student = student_start(teacher, args.student_base or DEFAULT_BASE_MODEL)
    student.config.label = args.label
    student.config.provenance = {
        **data_provenance(args.data, mapping, data, len(train_examples), len(validation_examples),
                          validation_path=args.validation, licence=args.data_licence),
        "distilled_from": {"teacher": teacher.version, "teacher_base_model": teacher.config.base_model,
                           "teacher_label": teacher.config.label,
                           "other_teachers": [{"version": one.version, "base_model": one.config.base_model,
                                               "label": one.config.label} for one in teachers[1:]],
                           "unlabelled_files": [p.name for p in args.unlabelled],
                           "unlabelled_rows": len(unlabelled), "temperature": distillation.temperature,
                           "gold_weight": distillation.gold_weight, "embedding_weight": distillation.embedding_weight,
                           "hidden_weight": distillation.hidden_weight,
                           "student_layers": args.student_layers, "student_ffn": args.student_ffn},
    }
    logger.info("distilling %s into %s: %d labelled and %d unlabelled rows, validating on %d",
                " + ".join(str(one.version) for one in teachers),
                student.config.base_model, len(train_examples), len(unlabelled), len(validation_examples))
    trainer = DistillationTrainer(student, teachers, [*train_examples, *unlabelled], validation_examples, config,
                                  distillation)
    result = trainer.train(resume=args.resume)
    logger.info("done in %.0f s: best epoch %d of %d, validation score %.4f; student %s in %s", result.seconds,
                result.best_epoch, result.epochs_run, result.best_score, student.version, args.output)
