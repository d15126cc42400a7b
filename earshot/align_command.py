"""``earshot align``: an encoder whose texts land near their labels' descriptions, for taxonomies from names.

It trains on the general training table (``earshot general-data``): every source's texts paired with
the descriptions of their source labels, and the written examples with those of their general labels
(``earshot.training.alignment``). The folder it writes is an earshot model that answers the general
taxonomy by the nearest description, and the base that ``earshot train --taxonomy t.yaml`` with no
rows starts from (``--base-model``; the shipped one, ``model/names``, when none is given).

Example:
    earshot align --data /tmp/general/train.csv --output model/names
    earshot align --data /tmp/general/train.csv --output /tmp/names-no-hint3 --exclude-source hint3
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import pandas as pd

    from earshot.training.alignment import DescribedText

logger = logging.getLogger("earshot")


def add_command(commands: argparse._SubParsersAction) -> None:
    from earshot.training.alignment import AlignmentConfig

    defaults = AlignmentConfig()
    align = commands.add_parser("align", help="train the encoder that taxonomies from names start from")
    align.add_argument("--data", required=True, type=Path, help="a training table of `earshot general-data`")
    align.add_argument("--output", required=True, type=Path)
    align.add_argument("--exclude-source", action="append", default=[], metavar="SOURCE",
                       help="leave this source's texts out (repeatable): to score its taxonomy as one nobody trained on")
    align.add_argument("--base-model", default=None, help="hub id or local folder (default: all-MiniLM-L6-v2)")
    align.add_argument("--taxonomy", type=Path, default=None,
                       help="the general taxonomy (default: training/general/taxonomy.yaml): its descriptions "
                            "pair with the written examples and become the saved model's heads")
    align.add_argument("--epochs", type=float, default=None, help=f"passes over the pairs (default {defaults.epochs})")
    align.add_argument("--per-label", type=int, default=None,
                       help=f"at most this many texts per source label (default {defaults.per_label})")
    align.add_argument("--written-rows", type=int, default=None,
                       help=f"at most this many written examples (default {defaults.written_rows})")
    align.add_argument("--seed", type=int, default=None)
    align.add_argument("--save-dtype", choices=["float32", "float16"], default="float32")
    align.add_argument("--no-progress", action="store_true")
    align.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    import time

    import torch

    from earshot.files import write_text_atomic
    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel
    from earshot.training.alignment import AlignmentConfig, align_descriptions, described_texts
    from earshot.training.data import load_table
    from earshot.training.few_shot import prototype_heads
    from earshot.training.general_data import TAXONOMY_PATH
    from earshot.training.pipeline import TAXONOMY_NAME
    from earshot.training.taxonomy import read_taxonomy

    given = {"epochs": args.epochs, "per_label": args.per_label, "written_rows": args.written_rows, "seed": args.seed}
    config = AlignmentConfig(**{k: v for k, v in given.items() if v is not None}, progress=not args.no_progress)
    taxonomy_path = args.taxonomy or TAXONOMY_PATH
    taxonomy = read_taxonomy(taxonomy_path)
    table = load_table(args.data).fillna("").astype(str)  # CSV, Parquet or JSONL, as general-data writes
    pairs = described_texts(table, args.exclude_source, config, taxonomy_path=taxonomy_path)
    base = args.base_model or DEFAULT_BASE_MODEL
    model = EarshotModel.from_base(base, [head.head() for head in taxonomy.heads], label="names")
    started = time.monotonic()
    align_descriptions(model, pairs, config)
    prototype_heads(model, taxonomy.examples())
    model.config.provenance = {"aligned": {"data": args.data.name, "described_texts": len(pairs),
                                           "excluded_sources": sorted(args.exclude_source),
                                           "sources": source_provenance(table, pairs),
                                           "seconds": round(time.monotonic() - started), **vars(config)}}
    version = model.save_pretrained(args.output, dtype=torch.float16 if args.save_dtype == "float16" else None)
    write_text_atomic(args.output / TAXONOMY_NAME, Path(taxonomy_path).read_text(encoding="utf-8"))
    write_text_atomic(args.output / "README.md", names_card(model.config.provenance["aligned"], base, version))
    logger.info("aligned %s on %d described texts in %.0f s; model %s in %s", base, len(pairs),
                time.monotonic() - started, version, args.output)


def source_provenance(table: "pd.DataFrame", pairs: "Sequence[DescribedText]") -> dict[str, dict[str, object]]:
    """Per source of ``pairs``: its licence (the table's ``licence`` column, when it has one) and how many
    of its texts were paired with descriptions.

    Example:
        >>> sorted(source_provenance(table, pairs)["banking77"])
        ['described_texts', 'licence']
    """
    counts = Counter(pair.source for pair in pairs)
    licences = (table.drop_duplicates("source").set_index("source")["licence"].to_dict()
                if "licence" in table.columns else {})
    return {source: {"licence": licences.get(source, "not stated"), "described_texts": count}
            for source, count in sorted(counts.items())}


def names_card(aligned: dict, base: str, version: str) -> str:
    """The aligned folder's model card: what it is for, how it was made, and every source with its licence."""
    rows = "\n".join(f"| {source} | {entry['licence']} | {entry['described_texts']:,} |"
                     for source, entry in aligned["sources"].items())
    excluded = ", ".join(aligned["excluded_sources"]) or "none"
    return f"""# Encoder aligned with label descriptions (model {version})

{base} fine-tuned by `earshot align` so that a text lands near the one-line descriptions of its labels.
`earshot train --taxonomy t.yaml` with no `--data` starts from this folder (the `names` recipe: each
label's head row is its description's vector); its own heads answer the general taxonomy by the
nearest description. It is not a classifier trained on labelled rows: for that, `model/default`.

One pass ({aligned['epochs']} epochs, batch {aligned['batch_size']}, learning rate {aligned['learning_rate']},
scale {aligned['scale']}, texts cut at {aligned['max_length']} tokens) over {aligned['described_texts']:,}
texts of `{aligned['data']}` (at most {aligned['per_label']} per source label, at most
{aligned['written_rows']:,} written examples), {aligned['seconds']} s; sources left out: {excluded}.

| source | licence | texts paired with descriptions |
|---|---|---|
{rows}
"""
