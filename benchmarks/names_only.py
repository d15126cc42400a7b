"""Taxonomies from names alone: for each source, a taxonomy of its own labels with their one-line
descriptions (training/general/mappings/SOURCE.csv) and no labelled row; `earshot train --taxonomy` from
each base encoder, scored top-1 on the source's held-out rows, beside always answering the commonest label.

    python benchmarks/names_only.py --test /tmp/general/test.csv --source hint3 --source dstc11 \\
        --base sentence-transformers/all-MiniLM-L6-v2 --base model/default [--output runs/names]

A held-out row counts when it has exactly one label of its source. Without --train, each base's texts and
descriptions are compared by cosine similarity alone (no training), as a floor.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earshot.training.audit import embed_texts  # noqa: E402
from earshot.training import TrainingConfig  # noqa: E402
from earshot.training.general_data import read_mapping  # noqa: E402
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


def cosine_top1(base: str, labels: list[str], descriptions: list[str], rows: pd.DataFrame) -> float:
    """Top-1 of the nearest description by cosine similarity of the base encoder's pooled vectors."""
    vectors = embed_texts(base, [*rows.text, *descriptions])  # unit length
    texts, anchors = vectors[: len(rows)], vectors[len(rows):]
    chosen = (texts @ anchors.T).argmax(axis=1)
    return float(np.mean([labels[i] == gold for i, gold in zip(chosen, rows.source_labels)]))


def trained_top1(base: str, taxonomy: Path, rows: pd.DataFrame, output: Path, seed: int) -> float:
    config = TrainingConfig(output_dir=str(output), seed=seed, progress=False)
    model = fit(config, load_training_set(DataSources(taxonomy=taxonomy), seed), base_model=base)
    answers = model.predict(rows.text.tolist())
    return float(np.mean([a["label"].label == gold for a, gold in zip(answers, rows.source_labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", type=Path, required=True, help="from `earshot general-data --test-output`")
    parser.add_argument("--source", action="append", required=True)
    parser.add_argument("--base", action="append", required=True, help="a hub id, encoder folder or earshot model")
    parser.add_argument("--train", action="store_true", help="train from the taxonomy (else cosine similarity only)")
    parser.add_argument("--output", type=Path, default=None, help="where the trained models go (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    test = pd.read_csv(args.test, keep_default_na=False)
    work = args.output or Path(tempfile.mkdtemp(prefix="names-only-"))
    work.mkdir(parents=True, exist_ok=True)
    for source in args.source:
        rows = held_out_rows(test, source)
        labels = sorted(read_mapping(source))
        taxonomy = source_taxonomy(source, work / f"{source}.yaml", labels)
        descriptions = [read_mapping(source)[label].description for label in labels]
        majority = rows.source_labels.value_counts(normalize=True).iloc[0]
        figures = []
        for base in args.base:
            name = Path(base).name or base
            if args.train:
                top1 = trained_top1(base, taxonomy, rows, work / f"{source}-{name}", args.seed)
            else:
                top1 = cosine_top1(base, labels, descriptions, rows)
            figures.append(f"{base} {top1:.3f}")
        print(f"{source} ({len(labels)} labels, {len(rows)} rows, majority {majority:.3f}), "
              f"{'trained from names' if args.train else 'nearest description'}: " + "; ".join(figures), flush=True)


if __name__ == "__main__":
    main()
