"""Taxonomies from names alone: for each source, a taxonomy of its own labels with their one-line
descriptions (training/general/mappings/SOURCE.csv) and no labelled row; `earshot train --taxonomy` from
each base encoder, scored top-1 on the source's held-out rows, beside always answering the commonest label.

    python benchmarks/names_only.py --test /tmp/general/test.csv --source hint3 --source dstc11 \\
        --base sentence-transformers/all-MiniLM-L6-v2 --base model/default [--output runs/names]

A held-out row counts when it has exactly one label of its source. Without --train, each base's texts and
descriptions are compared by cosine similarity alone (no training), as a floor. With --train, a label named
as a catch-all (`other`, `misc` ...) gets the names recipe's floor (`training.few_shot.CATCH_ALL_FLOOR`);
`--catch-all-sweep 0.25 0.3 ...` scores other floors by cosine on two seeded halves of the rows, one to
choose a floor on and one to score it, and `--describe other="..."` tries another wording of a label.

A taxonomy of your own (one single head) scored on a labelled table of yours, instead of the sources:

    python benchmarks/names_only.py --taxonomy apps.yaml --table reviews.csv --column label \
        --base sentence-transformers/all-MiniLM-L6-v2 --base model/names
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.training.audit import embed_texts  # noqa: E402
from earshot.training import TrainingConfig  # noqa: E402
from earshot.training.general_data import read_mapping  # noqa: E402
from earshot.training.few_shot import catch_all_labels  # noqa: E402
from earshot.training.pipeline import DataSources, fit, load_training_set  # noqa: E402


def source_taxonomy(source: str, path: Path, labels: list[str]) -> Path:
    """A taxonomy file with one single head ``label``: each of ``labels`` with its mapping description."""
    mapping = read_mapping(source)
    document = {"heads": {"label": {"kind": "single", "labels": [
        {"name": label, "description": mapping[label].description} for label in labels]}}}
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def held_out_rows(test: pd.DataFrame, source: str) -> pd.DataFrame:
    rows = test[(test.source == source) & (test.source_labels != "") & ~test.source_labels.str.contains(";")]
    return rows.reset_index(drop=True)


def cosine_answers(base: str, labels: list[str], descriptions: list[str], rows: pd.DataFrame) -> np.ndarray:
    """Each row's label of the nearest description by cosine similarity of the base encoder's pooled vectors."""
    vectors = embed_texts(base, [*rows.text, *descriptions])  # unit length
    texts, anchors = vectors[: len(rows)], vectors[len(rows):]
    return np.array(labels, dtype=object)[(texts @ anchors.T).argmax(axis=1)]


def per_label(answers: np.ndarray, gold: pd.Series) -> str:
    """'label right/rows' for each gold label, commonest first."""
    right = pd.Series(answers == gold.to_numpy(), index=gold.index).groupby(gold).sum()
    return ", ".join(f"{label} {right[label]}/{count}" for label, count in gold.value_counts().items())


def trained_answers(base: str, taxonomy: Path, rows: pd.DataFrame, output: Path, seed: int,
                    head: str = "label") -> np.ndarray:
    """Each row's label from a model trained by `earshot train --taxonomy` alone (the names recipe)."""
    config = TrainingConfig(output_dir=str(output), seed=seed, progress=False)
    model = fit(config, load_training_set(DataSources(taxonomy=taxonomy), seed), base_model=base)
    return np.array([a[head].label for a in model.predict(rows.text.tolist())], dtype=object)


def catch_all_sweep(base: str, task: Task, floors: list[float], seed: int) -> str:
    """Top-1 of the nearest description when the catch-all label also wins every row whose nearest other
    description is below each floor, on two seeded halves of the rows: 'choose' and 'score'."""
    from earshot.training.taxonomy import read_taxonomy

    catch_all = catch_all_labels(read_taxonomy(task.taxonomy).head(task.head).head())
    if not catch_all:
        return "    no catch-all label in this taxonomy"
    vectors = embed_texts(base, [*task.rows.text, *task.descriptions])
    similarity = vectors[: len(task.rows)] @ vectors[len(task.rows):].T
    columns = [task.labels.index(label) for label in catch_all]
    gold = task.rows.source_labels.to_numpy()
    choose = np.zeros(len(gold), dtype=bool)
    choose[np.random.default_rng(seed).permutation(len(gold))[: len(gold) // 2]] = True
    lines = []
    for floor in floors:
        floored = similarity.copy()
        floored[:, columns] = np.maximum(floored[:, columns], floor)
        right = np.array(task.labels, dtype=object)[floored.argmax(axis=1)] == gold
        lines.append(f"    floor {floor:.3f}: choose {right[choose].mean():.3f}, score {right[~choose].mean():.3f}, "
                     f"all {right.mean():.3f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """One taxonomy to score: its file, its one head's name, labels and descriptions, and the labelled rows
    (``text``, ``source_labels``: one label each)."""

    name: str
    taxonomy: Path
    head: str
    labels: list[str]
    descriptions: list[str]
    rows: pd.DataFrame


def source_task(source: str, test: pd.DataFrame, work: Path) -> Task:
    """A source's taxonomy (written to ``work``) and its held-out single-label rows."""
    labels = sorted(read_mapping(source))
    descriptions = [read_mapping(source)[label].description for label in labels]
    return Task(source, source_taxonomy(source, work / f"{source}.yaml", labels), "label", labels, descriptions,
                held_out_rows(test, source))


def own_task(taxonomy: Path, table: Path, column: str, describe: dict[str, str], work: Path) -> Task:
    """A taxonomy file of one single head and a table whose ``column`` holds one of its labels per row;
    ``describe`` replaces labels' descriptions (the file then rewritten into ``work``)."""
    from earshot.training.taxonomy import read_taxonomy

    (head,) = read_taxonomy(taxonomy).heads
    labels = [label.name for label in head.labels]
    if describe:
        unknown = sorted(set(describe) - set(labels))
        if unknown:
            raise SystemExit(f"--describe names labels not in {taxonomy}: {unknown}")
        document = yaml.safe_load(taxonomy.read_text(encoding="utf-8"))  # all else (examples, catch_all) kept
        for entry in document["heads"][head.name]["labels"]:
            entry["description"] = describe.get(str(entry["name"]).strip(), entry["description"])
        taxonomy = work / f"{taxonomy.stem}-described.yaml"
        taxonomy.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
        (head,) = read_taxonomy(taxonomy).heads
    rows = pd.read_csv(table, keep_default_na=False)
    unknown = sorted(set(rows[column]) - set(labels))
    if unknown:
        raise SystemExit(f"{table}: column {column!r} holds labels not in {taxonomy}: {unknown}")
    rows = rows.assign(source_labels=rows[column])[["text", "source_labels"]]
    return Task(table.stem, taxonomy, head.name, labels, [label.description for label in head.labels], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", type=Path, default=None, help="from `earshot general-data --test-output`")
    parser.add_argument("--source", action="append", default=[])
    parser.add_argument("--taxonomy", type=Path, default=None, help="a taxonomy file of one single head")
    parser.add_argument("--table", type=Path, default=None, help="labelled rows for --taxonomy (CSV, a text column)")
    parser.add_argument("--column", default="label", help="--table's label column")
    parser.add_argument("--base", action="append", required=True, help="a hub id, encoder folder or earshot model")
    parser.add_argument("--train", action="store_true", help="train from the taxonomy (else cosine similarity only)")
    parser.add_argument("--output", type=Path, default=None, help="where the trained models go (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--per-label", action="store_true", help="also print each label's right answers")
    parser.add_argument("--describe", action="append", default=[], metavar="LABEL=TEXT",
                        help="replace a label's description in --taxonomy (repeatable)")
    parser.add_argument("--catch-all-sweep", type=float, nargs="+", default=[], metavar="COSINE",
                        help="no --train: also score the catch-all label's floor at each cosine, on two halves")
    args = parser.parse_args()
    if bool(args.source) != bool(args.test) or bool(args.taxonomy) != bool(args.table) or not (args.source or args.table):
        parser.error("give --test with --source, or --taxonomy with --table")
    work = args.output or Path(tempfile.mkdtemp(prefix="names-only-"))
    work.mkdir(parents=True, exist_ok=True)
    tasks = []
    if args.source:
        test = pd.read_csv(args.test, keep_default_na=False)
        tasks = [source_task(source, test, work) for source in args.source]
    if args.taxonomy:
        if any("=" not in item for item in args.describe):
            parser.error("--describe takes LABEL=TEXT")
        describe = dict(item.split("=", 1) for item in args.describe)
        tasks.append(own_task(args.taxonomy, args.table, args.column, describe, work))
    for task in tasks:
        rows = task.rows
        majority = rows.source_labels.value_counts(normalize=True).iloc[0]
        figures = []
        for base in args.base:
            base_name = Path(base).name or base
            if args.train:
                answers = trained_answers(base, task.taxonomy, rows, work / f"{task.name}-{base_name}", args.seed,
                                          task.head)
            else:
                answers = cosine_answers(base, task.labels, task.descriptions, rows)
                if args.catch_all_sweep:
                    print(f"  {task.name}, {base}, catch-all floors:\n"
                          f"{catch_all_sweep(base, task, args.catch_all_sweep, args.seed)}", flush=True)
            top1 = float(np.mean(answers == rows.source_labels.to_numpy()))
            if args.per_label:
                print(f"  {task.name}, {base}: {per_label(answers, rows.source_labels)}", flush=True)
            figures.append(f"{base} {top1:.3f}")
        print(f"{task.name} ({len(task.labels)} labels, {len(rows)} rows, majority {majority:.3f}), "
              f"{'trained from names' if args.train else 'nearest description'}: " + "; ".join(figures), flush=True)


if __name__ == "__main__":
    main()
