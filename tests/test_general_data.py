"""The general taxonomy, its source mapping tables, and the rows built from them.

The real-data check reads the shared data folder beside the clone (../shared/data), which CI always
has: a label that occurs in a source but has no row in its mapping table fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.training.data import DataError
from earshot.training.general_data import (MAPPINGS_DIR, SOURCES_PATH, TAXONOMY_PATH, build_general_rows,
                                           combine_sentiments, general_labels, label_counts, read_mapping,
                                           read_sources, source_labels)
from earshot.training.taxonomy import read_taxonomy

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIN_POINTS = ("Delays", "Cancellation", "Lost or damaged item", "Product quality", "Customer service",
               "Staff behaviour", "Billing and charges", "Refunds and returns", "Price and value",
               "Ordering and booking", "Account and access", "App or website", "Communication",
               "Privacy and security")
NOT_COMMERCIAL = ("airline", "semeval2016_restaurants")


@pytest.mark.parametrize("source", list(read_sources()))
def test_every_label_in_the_data_has_a_row_in_its_mapping_table(source: str) -> None:
    spec = read_sources()[source]
    found = source_labels(spec, SHARED_DATA, include_validation=True)
    mapped = set(read_mapping(source))
    assert found, f"no labels read from {source}"
    assert not found - mapped, f"{MAPPINGS_DIR / (source + '.csv')} lacks rows for {sorted(found - mapped)}"


def test_the_taxonomy_loads_and_every_mapped_label_is_in_it() -> None:
    taxonomy = read_taxonomy(TAXONOMY_PATH)
    assert [(head.name, head.kind) for head in taxonomy.heads] == [
        ("sentiment", "single"), ("pain_points", "multi"), ("praise_points", "multi")]
    labels = general_labels()
    assert labels["sentiment"] == ("negative", "neutral", "positive")
    assert labels["pain_points"] == PAIN_POINTS
    assert 5 <= len(labels["praise_points"]) <= 8
    assert all(label.description for head in taxonomy.heads for label in head.labels)
    used: dict[str, set[str]] = {"sentiment": set(), "pain_points": set(), "praise_points": set()}
    for source in read_sources():
        for mapped in read_mapping(source).values():
            used["sentiment"].update([mapped.sentiment] if mapped.sentiment else [])
            used["pain_points"].update(mapped.pain_points)
            used["praise_points"].update(mapped.praise_points)
    for head, names in used.items():
        assert names <= set(labels[head]), head
    # Every praise label is backed by at least one source's rows, not only by its description.
    assert used["praise_points"] == set(labels["praise_points"])


def test_only_commercially_usable_sources_are_listed_and_each_has_a_table() -> None:
    sources = read_sources(SOURCES_PATH)
    assert not set(sources) & set(NOT_COMMERCIAL)
    assert {path.stem for path in MAPPINGS_DIR.glob("*.csv")} == set(sources)
    assert all(spec.licence and spec.domain for spec in sources.values())


def test_sentiments_combine_conservatively() -> None:
    assert combine_sentiments(["negative", "neutral"]) == "negative"
    assert combine_sentiments(["positive", None, "neutral"]) == "positive"
    assert combine_sentiments(["neutral", "neutral"]) == "neutral"
    assert combine_sentiments(["negative", "positive", "neutral"]) is None
    assert combine_sentiments([None, None]) is None
    assert combine_sentiments([]) is None


TOY_SOURCES = """\
sources:
  toy_intents:
    files: [toy_intents/train.csv]
    text_column: text
    label_column: intent
    multi_label: false
    licence: CC0
    domain: toy
    unannotated: [praise_points]
  toy_aspects:
    files: [toy_aspects/train.csv]
    validation_files: [toy_aspects/validation.csv]
    text_column: text
    label_columns: {pain_points: pain_points, praise_points: praise_points}
    multi_label: true
    licence: CC0
    domain: toy
"""
TOY_INTENT_MAPPING = """\
source_label,description,sentiment,pain_points,praise_points
late_card,The card has not come.,negative,Delays,
card_eta,Asks when the card comes.,neutral,,
double_charge,Charged twice.,negative,Billing and charges;Refunds and returns,
thanks,Says thanks.,positive,,
"""
TOY_ASPECT_MAPPING = """\
source_label,description,sentiment,pain_points,praise_points
food,The food.,,Product quality,Product quality
staff,The staff.,,Staff behaviour,Staff behaviour
misc,Anything else.,,,
"""


def _toy(tmp_path: Path, intents: str) -> tuple[Path, Path, Path]:
    """A data folder, a sources.yaml and a mappings folder for the two toy sources."""
    data, mappings = tmp_path / "data", tmp_path / "mappings"
    (data / "toy_intents").mkdir(parents=True)
    (data / "toy_aspects").mkdir()
    mappings.mkdir()
    (data / "toy_intents" / "train.csv").write_text(intents, encoding="utf-8")
    (data / "toy_aspects" / "train.csv").write_text(
        "text,pain_points,praise_points\n"
        "Great pasta but a rude waiter,staff,food\n"
        "Nice enough,,misc\n"
        "Great pasta but a rude waiter,,food\n", encoding="utf-8")
    (mappings / "toy_intents.csv").write_text(TOY_INTENT_MAPPING, encoding="utf-8")
    (mappings / "toy_aspects.csv").write_text(TOY_ASPECT_MAPPING, encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(TOY_SOURCES, encoding="utf-8")
    return data, sources, mappings


def test_build_general_rows_maps_merges_duplicates_and_counts(tmp_path: Path) -> None:
    data, sources, mappings = _toy(tmp_path, "text,intent\n"
                                             "where is my card,late_card\n"
                                             "when does the card come,card_eta\n"
                                             "where is my card,late_card\n"
                                             "charged twice thanks,double_charge\n"
                                             "charged twice thanks,thanks\n"
                                             "ok,card_eta\n")
    rows = build_general_rows(data, sources_path=sources, mappings_dir=mappings)
    assert rows.source_labels.tolist() == ["late_card", "card_eta", "double_charge;thanks", "card_eta", "food;staff",
                                           "misc"]
    assert rows.drop(columns="source_labels").to_dict("records") == [
        # toy_intents never annotated praise points: those cells say so, not "none"
        {"text": "where is my card", "sentiment": "negative", "pain_points": "Delays",
         "praise_points": "unannotated", "source": "toy_intents"},
        {"text": "when does the card come", "sentiment": "neutral", "pain_points": "",
         "praise_points": "unannotated", "source": "toy_intents"},
        # the duplicate's labels merge: negative + positive -> unknown; pain points in taxonomy order
        {"text": "charged twice thanks", "sentiment": "", "pain_points": "Billing and charges;Refunds and returns",
         "praise_points": "unannotated", "source": "toy_intents"},
        {"text": "ok", "sentiment": "neutral", "pain_points": "", "praise_points": "unannotated",
         "source": "toy_intents"},
        # aspect source: the pain column maps to pain points, the praise column to praise points
        {"text": "Great pasta but a rude waiter", "sentiment": "", "pain_points": "Staff behaviour",
         "praise_points": "Product quality", "source": "toy_aspects"},
        {"text": "Nice enough", "sentiment": "", "pain_points": "", "praise_points": "", "source": "toy_aspects"},
    ]
    only = build_general_rows(data, ["toy_aspects"], sources_path=sources, mappings_dir=mappings)
    assert list(only.source.unique()) == ["toy_aspects"]
    counts = label_counts(rows)
    assert counts["sentiment"]["neutral"] == {"toy_intents": 2}
    assert counts["sentiment"]["(unknown)"] == {"toy_intents": 1, "toy_aspects": 2}
    assert counts["pain_points"]["Delays"] == {"toy_intents": 1}
    assert counts["praise_points"]["(none)"] == {"toy_aspects": 1}
    assert counts["praise_points"]["(not annotated)"] == {"toy_intents": 4}
    assert list(counts["praise_points"])[-2:] == ["(none)", "(not annotated)"]


def test_unannotated_lists_only_multi_heads(tmp_path: Path) -> None:
    from earshot.training.general_data import read_sources

    path = tmp_path / "sources.yaml"
    path.write_text(TOY_SOURCES.replace("unannotated: [praise_points]", "unannotated: [sentiment]"), encoding="utf-8")
    with pytest.raises(DataError, match=r"source 'toy_intents': 'unannotated' lists heads.*\['sentiment'\]"):
        read_sources(path)


def test_an_unmapped_label_is_an_error_naming_source_row_and_label(tmp_path: Path) -> None:
    data, sources, mappings = _toy(tmp_path, "text,intent\nwhere is my card,late_card\nhello,greeting\n")
    with pytest.raises(DataError, match=r"toy_intents.*row 2.*'greeting'.*toy_intents\.csv"):
        build_general_rows(data, ["toy_intents"], sources_path=sources, mappings_dir=mappings)
    with pytest.raises(DataError, match="no source 'nope'"):
        build_general_rows(data, ["nope"], sources_path=sources, mappings_dir=mappings)


def test_a_mapping_naming_an_unknown_general_label_is_an_error_naming_file_line_and_label(tmp_path: Path) -> None:
    path = tmp_path / "toy.csv"
    path.write_text(TOY_INTENT_MAPPING.replace("negative,Delays,", "negative,Lateness,"), encoding="utf-8")
    with pytest.raises(DataError, match=r"toy\.csv, line 2, source label 'late_card': pain_points label 'Lateness'"):
        read_mapping("toy", tmp_path)
    path.write_text(TOY_INTENT_MAPPING.replace("neutral,,", "calm,,"), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3.*sentiment label 'calm'"):
        read_mapping("toy", tmp_path)
    path.write_text(TOY_INTENT_MAPPING + "thanks,Again.,positive,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 6: source label 'thanks' appears twice \(first at line 5\)"):
        read_mapping("toy", tmp_path)
    path.write_text("label,description\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: expected the header"):
        read_mapping("toy", tmp_path)


def test_mapped_rows_read_as_expected() -> None:
    banking = read_mapping("banking77")
    assert banking["Refund_not_showing_up"].pain_points == ("Refunds and returns", "Delays")
    assert banking["activate_my_card"].pain_points == () and banking["activate_my_card"].sentiment == "neutral"
    assert read_mapping("clinc150")["oos"].pain_points == ()
    assert read_mapping("goemotions")["ambiguous"].sentiment is None
    assert all(m.sentiment is None for m in read_mapping("mams").values())


def test_a_tiny_general_model_trains_from_two_toy_sources(tmp_path: Path, tiny_base: Path) -> None:
    import json

    from earshot.cli import main
    from earshot.training.general_data import with_licences

    labels = ["late_card", "card_eta", "double_charge", "thanks"]
    intents = "text,intent\n" + "".join(f"my card {i} is late again,{labels[i % 4]}\n" for i in range(40))
    data, sources, mappings = _toy(tmp_path, intents)
    rows = with_licences(build_general_rows(data, sources_path=sources, mappings_dir=mappings), sources)
    rows.to_csv(tmp_path / "general.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "general.csv"), "--output", str(tmp_path / "m"),
                 "--base-model", str(tiny_base), "--taxonomy", str(TAXONOMY_PATH), "--sentiment-column", "sentiment",
                 "--pain-points-column", "pain_points", "--head", "praise_points:multi:praise_points",
                 "--source-column", "source", "--licence-column", "licence", "--unknown-label", "unannotated",
                 "--epochs", "1",
                 "--recipe", "fine-tune", "--no-progress"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())["earshot"]
    taxonomy = general_labels()
    assert {h["name"]: tuple(h["labels"]) for h in config["heads"]} == dict(taxonomy)
    trained_on = config["provenance"]["sources"]
    assert set(trained_on) == {"toy_intents", "toy_aspects"}
    assert trained_on["toy_intents"]["licence"] == "CC0"
    assert sum(entry["rows"] for entry in trained_on.values()) == len(rows) - config["provenance"]["validation_rows"]
    assert trained_on["toy_aspects"]["labels"]["pain_points"].get("Staff behaviour", 0) <= 1
    assert trained_on["toy_intents"]["labels"]["praise_points"] == {}  # unannotated: no label, not a label
    assert config["provenance"]["columns"]["unknown_labels"] == ["unannotated"]
