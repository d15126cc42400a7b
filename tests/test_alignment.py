"""Aligning an encoder with label descriptions (``earshot align``), for taxonomies from names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earshot.model import EarshotModel, Head
from earshot.training.alignment import AlignmentConfig, align_descriptions, described_texts
from earshot.training.general_data import TAXONOMY_PATH, general_labels, read_mapping
from earshot.training.taxonomy import read_taxonomy

# Real bitext labels, so the rows are described by the repository's mapping table.
INTENTS = ("cancel_order", "change_shipping_address", "check_invoice", "check_refund_policy")
TEXTS = {"cancel_order": "please cancel order {n}", "change_shipping_address": "ship order {n} to my new flat",
         "check_invoice": "where can i see invoice {n}", "check_refund_policy": "what is your refund rule {n}"}


def general_table(per_intent: int = 6) -> pd.DataFrame:
    rows = [{"text": TEXTS[intent].format(n=n), "source": "bitext", "source_labels": intent,
             "pain_points": "", "praise_points": ""} for intent in INTENTS for n in range(per_intent)]
    rows += [{"text": "the app crashes at login", "source": "written", "source_labels": "",
              "pain_points": "App or website;Account and access", "praise_points": ""},
             {"text": "lovely staff", "source": "written", "source_labels": "", "pain_points": "",
              "praise_points": "Staff behaviour"},
             {"text": "what time do you open", "source": "written", "source_labels": "", "pain_points": "",
              "praise_points": ""}]
    return pd.DataFrame(rows)


def test_described_texts_pair_source_and_written_rows_with_their_descriptions() -> None:
    mapping = read_mapping("bitext")
    taxonomy = {label.name: label.description for head in read_taxonomy(TAXONOMY_PATH).heads for label in head.labels
                if head.name == "pain_points"}
    pairs = described_texts(general_table(), config=AlignmentConfig(per_label=2))
    by_text = {pair.text: pair.descriptions for pair in pairs}
    assert by_text["please cancel order 0"] == (mapping["cancel_order"].description,)
    assert "please cancel order 2" not in by_text  # two per source label
    assert by_text["the app crashes at login"] == (taxonomy["App or website"], taxonomy["Account and access"])
    assert "what time do you open" not in by_text  # no topic label: nothing to align with
    assert len(pairs) == 2 * len(INTENTS) + 2
    assert {p.text for p in described_texts(general_table(), exclude=["bitext"])} == {
        "the app crashes at login", "lovely staff"}


def test_described_texts_name_what_is_wrong_with_the_table() -> None:
    with pytest.raises(ValueError, match=r"lacks the columns \['source_labels'\].*earshot general-data"):
        described_texts(general_table().drop(columns="source_labels"))
    with pytest.raises(ValueError, match=r"--exclude-source \['hint3'\]: no such source"):
        described_texts(general_table(), exclude=["hint3"])
    with pytest.raises(ValueError, match="alignment batch_size must be at least 2, got 1"):
        AlignmentConfig(batch_size=1)
    with pytest.raises(ValueError, match="alignment epochs must be over 0"):
        AlignmentConfig(epochs=0)


def nearest_description_accuracy(model: EarshotModel, pairs) -> float:
    descriptions = sorted({d for pair in pairs for d in pair.descriptions})
    texts = model.embed([pair.text for pair in pairs])
    anchors = model.embed(descriptions)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    chosen = (texts @ anchors.T).argmax(axis=1)
    return float(np.mean([descriptions[c] in pair.descriptions for c, pair in zip(chosen, pairs)]))


def test_alignment_moves_texts_to_their_own_descriptions(tiny_base: Path) -> None:
    pairs = described_texts(general_table(), config=AlignmentConfig(per_label=6))
    model = EarshotModel.from_base(str(tiny_base), [Head("unused", "multi", ["unused"])], max_length=32)
    before = nearest_description_accuracy(model, pairs)
    config = AlignmentConfig(epochs=30, batch_size=8, learning_rate=1e-3, progress=False)
    losses = align_descriptions(model, pairs, config)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    after = nearest_description_accuracy(model, pairs)
    assert after > before and after >= 0.9, (before, after)
    with pytest.raises(ValueError, match="at least 2 described texts .*, got 1"):
        align_descriptions(model, pairs[:1], AlignmentConfig(progress=False))


def test_earshot_align_writes_a_model_of_the_general_taxonomy(tmp_path: Path, tiny_base: Path) -> None:
    from earshot.cli import main

    table = tmp_path / "general.parquet"  # any format general-data writes
    licences = {"bitext": "CDLA-Sharing-1.0", "written": "Apache-2.0 (written for earshot)"}
    frame = general_table()
    frame.assign(licence=frame.source.map(licences)).to_parquet(table, index=False)
    assert main(["align", "--data", str(table), "--output", str(tmp_path / "names"), "--base-model", str(tiny_base),
                 "--epochs", "2", "--per-label", "6", "--no-progress"]) == 0
    config = json.loads((tmp_path / "names" / "config.json").read_text())["earshot"]
    assert {h["name"]: tuple(h["labels"]) for h in config["heads"]} == dict(general_labels())
    assert config["provenance"]["aligned"]["described_texts"] == 26
    assert config["provenance"]["aligned"]["sources"] == {
        "bitext": {"licence": "CDLA-Sharing-1.0", "described_texts": 24},
        "written": {"licence": "Apache-2.0 (written for earshot)", "described_texts": 2}}
    card = (tmp_path / "names" / "README.md").read_text()
    assert "| bitext | CDLA-Sharing-1.0 | 24 |" in card and "sources left out: none" in card
    assert (tmp_path / "names" / "taxonomy.yaml").read_text() == TAXONOMY_PATH.read_text()
    model = EarshotModel.from_pretrained(tmp_path / "names", backend="torch")
    assert model.predict(["my parcel is late"])[0]["sentiment"].label in general_labels()["sentiment"]
