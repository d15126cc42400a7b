"""``earshot evaluate``: metrics on labelled data, confusion-matrix pictures and the model card.

Example:
    >>> metrics = evaluate(model, read_examples("test.csv", mapping), mapping)
    >>> write_evaluation(model, metrics, "runs/airline", model_dir="runs/airline")
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from earshot.files import atomic_path, write_text_atomic
from earshot.model import EarshotModel

from .data import ColumnMapping, LoadedData, head_gold


def evaluate(model: EarshotModel, data: LoadedData, mapping: ColumnMapping,
             batch_size: int | None = None) -> dict[str, Any]:
    """Metrics of each head that the data has labels for, at the model's own thresholds.

    A mapped head the model does not have, or has with another kind, is an error naming both.
    """
    heads = []
    for column in mapping.heads:
        head = model.config.head(column.name)
        if head.kind != column.kind:
            raise ValueError(f"{column.flag}: the model's head {head.name!r} is {head.kind}, not {column.kind}")
        heads.append(head)
    probabilities = model.predict_proba([e.text for e in data.examples], batch_size=batch_size)
    results = {head.name: head.behaviour.metrics(head, head_gold(head, data.examples), probabilities[head.name])
               for head in heads}
    return {"data_file": Path(data.source).name, "rows": len(data.examples), "rows_skipped": len(data.skipped),
            "model_version": model.version, "backend": model.backend,
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "heads": results}


def write_evaluation(model: EarshotModel, metrics: dict[str, Any], output_dir: str | Path,
                     model_dir: str | Path, update_card: bool = True) -> list[Path]:
    """Write ``metrics.json``, one confusion-matrix PNG per head and (optionally) the model card."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "metrics.json"]
    write_text_atomic(written[0], json.dumps(metrics, indent=2) + "\n")
    for head, values in metrics["heads"].items():
        path = output / f"confusion_{head}.png"
        plot_confusion(values["confusion_matrix"]["labels"], np.array(values["confusion_matrix"]["matrix"]),
                       f"{head.replace('_', ' ')}: gold (rows) vs predicted (columns)", path)
        written.append(path)
    if update_card:
        card = Path(model_dir) / "README.md"
        write_text_atomic(card, model_card(model, metrics))
        written.append(card)
    return written


def plot_confusion(labels: Sequence[str], matrix: np.ndarray, title: str, path: Path) -> None:
    """A confusion matrix as a PNG, counts in the cells, rows normalised for the colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = max(4.0, 0.6 * len(labels) + 2)
    figure = Figure(figsize=(size + 1, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                      color="white" if shares[i, j] > 0.5 else "black")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def _distillation_lines(teacher: dict[str, Any] | None) -> list[str]:
    """The card's line for a student (``earshot distill``): which teacher it learned from, and how."""
    if not teacher:
        return []
    unlabelled = teacher.get("unlabelled_rows") or 0
    label = f" ({teacher['teacher_label']})" if teacher.get("teacher_label") else ""
    others = "".join(f" and `{other['version']}`" + (f" ({other['label']})" if other.get("label") else "")
                     + f", base `{other['base_model']}`" for other in teacher.get("other_teachers") or [])
    return [f"- Distilled from teacher `{teacher.get('teacher')}`{label}, base `{teacher.get('teacher_base_model')}`"
            + (f"{others} (their answers averaged)" if others else "") + ": "
            f"temperature {teacher.get('temperature')}, gold-label weight {teacher.get('gold_weight')}"
            + (f", {unlabelled} unlabelled rows" if unlabelled else "") + "."]


def _licence_note(provenance: dict[str, Any]) -> str:
    return "per source, below" if provenance.get("sources") else "not stated"


def _source_lines(sources: dict[str, Any] | None, config: Any) -> list[str]:
    """The card's table of sources (``--source-column``): licence and training rows per label of each."""
    if not sources:
        return []
    lines = ["", "### Sources", "", "| source | licence | training rows |", "|---|---|---|"]
    lines += [f"| {name} | {entry['licence'] or 'not stated'} | {entry['rows']} |" for name, entry in sources.items()]
    names = list(sources)
    for head in config.heads:
        lines += ["", f"Training rows per label of `{head.name}`:", "",
                  "| label | " + " | ".join(names) + " | all |", "|---" * (len(names) + 2) + "|"]
        for label in head.labels:
            counts = [sources[name]["labels"].get(head.name, {}).get(label, 0) for name in names]
            lines.append(f"| {label} | " + " | ".join(str(n) for n in counts) + f" | {sum(counts)} |")
    return lines


def model_card(model: EarshotModel, metrics: dict[str, Any]) -> str:
    """The model folder's README.md: data and licence, heads, metrics, intended use and limits."""
    config = model.config
    provenance = config.provenance
    columns = provenance.get("columns", {})
    head_columns = columns.get("heads") or {k: columns[k] for k in ("sentiment", "pain_points") if columns.get(k)}
    lines = [
        f"# earshot model: {provenance.get('data_file', 'unknown data')}",
        "",
        f"Version `{model.version}`{f' ({config.label})' if config.label else ''}. A customer-feedback classifier: "
        "one encoder pass gives every head below.",
        "",
        "## Model",
        f"- Base encoder: `{config.base_model}`, {config.pooling} pooling, inputs cut at {config.max_length} tokens.",
        *[head.behaviour.describe(head) for head in config.heads],
        "",
        "## Training data",
        f"- File: `{provenance.get('data_file', '?')}` (sha256 `{provenance.get('data_sha256', '?')}`).",
        f"- Licence: {provenance.get('data_licence') or _licence_note(provenance)}.",
        f"- Columns: text `{columns.get('text')}`; "
        + ", ".join(f"{head} `{column}`" for head, column in head_columns.items())
        + f"; values meaning no label: {columns.get('none_labels') or 'none'}"
        + (f"; values leaving a head unknown: {columns['unknown_labels']}." if columns.get("unknown_labels") else "."),
        f"- Rows: {provenance.get('train_rows', '?')} for training, {provenance.get('validation_rows', '?')} for "
        f"validation (early stopping, threshold tuning); {provenance.get('rows_skipped', 0)} skipped.",
        f"- Best epoch {provenance.get('best_epoch', '?')} of {provenance.get('epochs_run', '?')}, trained in "
        f"{provenance.get('training_seconds', '?')} s on {provenance.get('trained_on', 'CPU')}"
        + (f", {provenance['precision']}." if provenance.get("precision") else "."),
        *_distillation_lines(provenance.get("distilled_from")),
        *_source_lines(provenance.get("sources"), config),
        "",
        f"## Metrics on `{metrics['data_file']}` ({metrics['rows']} rows, "
        + (f"backend {metrics['backend']}, " if metrics.get("backend") else "") + f"evaluated {metrics['evaluated_at']})",
    ]
    if metrics["data_file"] in (provenance.get("validation_file"), provenance.get("data_file")):
        lines += ["", "*These rows were seen in training (as training data, or as the validation data that chose the "
                      "epoch and tuned the thresholds): expect somewhat lower figures on new data.*"]
    for head, values in metrics["heads"].items():
        lines += ["", f"### {head.replace('_', ' ').capitalize()}", "",
                  f"accuracy {values['accuracy']:.4f} · macro-F1 {values['macro_f1']:.4f} · micro-F1 "
                  f"{values['micro_f1']:.4f} · calibration error {values['calibration_error']:.4f}"
                  + (f" · top-1 accuracy {values['top1_accuracy']:.4f} on {values['top1_examples']} rows with a "
                     "label" if "top1_accuracy" in values else ""),
                  "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for label, v in values["per_label"].items()]
        lines += ["", f"![{head} confusion matrix](confusion_{head}.png)"]
    lines += [
        "",
        "## Intended use",
        "Routing and counting customer feedback written like the training data (language, channel, domain): "
        "which texts are negative and what process hurt the customer. Aggregate counts are more reliable "
        "than any single prediction.",
        "",
        "## Limits",
        "- English only; " + (f"trained on the {len(provenance['sources'])} sources above: texts unlike all of them "
                              "(another language, channel or industry) are read less well."
                              if provenance.get("sources") else
                              "trained on one data file: texts from other industries get this taxonomy's labels anyway."),
        "- Sarcasm, mixed feelings and texts longer than the token limit are often misread (long texts are cut; "
        "the API flags them as truncated).",
        "- Scores are model confidences, not calibrated probabilities: see the calibration error above.",
        "- Not for decisions about individual people.",
        "",
    ]
    return "\n".join(lines)
