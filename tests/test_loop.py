"""The closed loop's parts without a server: store, capture, corrections, registry, compare, commands."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_heads
from earshot.cli import main
from earshot.loop.capture import CapturePolicy, CaptureWriter, Disagreement
from earshot.loop.compare import compare_models, render, worst_headline_delta
from earshot.loop.corrections import check_labels, merge_corrections, split_corrections
from earshot.loop.registry import Registry, RegistryError
from earshot.loop.store import ANSWERED, Correction, FeedbackStore, QueuedItem, unique_corrections
from earshot.model import EarshotModel, HeadPrediction, LabelScore, Prediction, version_id
from earshot.training.data import Example

HEADS = tiny_heads()
THRESHOLDS = {"pain_points": {label: 0.5 for label in HEADS[1].labels}}


def prediction(sentiment: dict[str, float], pains: dict[str, float]) -> Prediction:
    best = max(sentiment, key=sentiment.get)
    over = sorted((k for k, v in pains.items() if v >= 0.5), key=pains.get, reverse=True)
    return Prediction(heads={
        "sentiment": HeadPrediction("single", [LabelScore(best, sentiment[best])], sentiment),
        "pain_points": HeadPrediction("multi", [LabelScore(k, pains[k]) for k in over], pains)}, truncated=False)


SURE_NEGATIVE = prediction({"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                           {"billing": 0.02, "late": 0.95, "lost_item": 0.01, "rude_staff": 0.03})
UNSURE = prediction({"negative": 0.45, "neutral": 0.40, "positive": 0.15},
                    {"billing": 0.02, "late": 0.95, "lost_item": 0.01, "rude_staff": 0.03})
NEAR_THRESHOLD = prediction({"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                            {"billing": 0.46, "late": 0.95, "lost_item": 0.01, "rude_staff": 0.03})
POSITIVE_WITH_PAIN = prediction({"negative": 0.05, "neutral": 0.05, "positive": 0.9},
                                {"billing": 0.02, "late": 0.95, "lost_item": 0.01, "rude_staff": 0.03})


def item(text: str, priority: float = 0.5, model_version: str = "v1", **fields) -> QueuedItem:
    return QueuedItem(text=text, model_version=model_version, answer={"sentiment": {"labels": [{"label": "negative"}]}},
                      reasons=["margin:sentiment"], priority=priority, **fields)


# --------------------------------------------------------------------------------------- the store
def exercise_store(store: FeedbackStore) -> None:
    """The store's contract, run on SQLite and on PostgreSQL."""
    now = time.time()
    assert store.add_items([item("Late again", 0.4, created_at=now - 10), item("late  AGAIN", 0.9),
                            item("Rude staff", 0.9, created_at=now - 5), item("Lost bag", 0.1)]) == 3
    assert store.add_items([item("Lost bag", 0.99)]) == 0  # already waiting: not queued twice
    # answered again under an id: not queued twice, but kept as answered so that a correction can name the id
    assert store.add_items([item("Lost bag", 0.99, caller_id="t-3"), item("lost  bag", 0.98, caller_id="t-4")]) == 2
    assert [store.text_for_id(i) for i in ("t-3", "t-4")] == ["Lost bag", "lost  bag"]
    store.add_items([item("Kept for its id", 0.0, caller_id="t-1", state=ANSWERED),
                     item("Kept for its id", 0.0, caller_id="t-2", state=ANSWERED)])
    assert [i.text for i in store.queue(10)] == ["Rude staff", "Late again", "Lost bag"]  # highest priority first
    assert store.queue(10)[1].priority == 0.4  # the first copy of a text is the one queued
    assert store.text_for_id("t-2") == "Kept for its id" and store.text_for_id("nope") is None
    ids = store.add_corrections([Correction({"sentiment": "negative"}, "lost BAG", reviewer="ann")])
    assert len(ids) == 1
    assert store.counts() == {"waiting": 2, "reviewed": 1, "answered": 4, "corrections": 1}
    assert [i.text for i in store.queue(10)] == ["Rude staff", "Late again"]
    [stored] = list(store.corrections())
    assert (stored.text, stored.labels, stored.reviewer) == ("lost BAG", {"sentiment": "negative"}, "ann")
    assert store.purge(older_than_days=1) == {"items": 0, "corrections": 0}
    assert store.purge() == {"items": 7, "corrections": 1}
    assert store.counts() == {"waiting": 0, "reviewed": 0, "answered": 0, "corrections": 0}


def exercise_queue_order(store: FeedbackStore) -> None:
    """With ``similar_above`` set, near-duplicates (by the answering model's vectors) go behind the
    texts that stand apart; by default the queue is in uncertainty order alone."""
    def unit(*values: float) -> np.ndarray:
        return np.array(values, dtype=np.float32) / np.linalg.norm(values)

    store.add_items([item("card lost", 0.9, vector=unit(1, 0, 0)),
                     item("my card is lost", 0.8, vector=unit(1, 0.1, 0)),    # cosine 0.995 with "card lost"
                     item("refund please", 0.7, vector=unit(0, 1, 0)),
                     item("lost card again", 0.6, vector=unit(1, 0, 0.2)),    # 0.98
                     item("other model's card", 0.5, model_version="v2", vector=unit(1, 0, 0)),
                     item("no vector", 0.4)])
    texts = ["card lost", "refund please", "other model's card", "no vector", "my card is lost", "lost card again"]
    assert [i.text for i in store.queue(10)] == texts  # another model's vectors do not compare
    assert [i.text for i in store.queue(2)] == texts[:2]
    assert [i.text for i in store.queue(5)] == texts[:5]  # the first of those behind fills the page
    # A text reviewed lately counts as listed: after "card lost" is corrected, its copies stay behind.
    store.add_corrections([Correction({"sentiment": "negative"}, "card lost")])
    assert [i.text for i in store.queue(10)] == texts[1:]
    stored = store.queue(10)[-1].vector
    np.testing.assert_allclose(stored, unit(1, 0, 0.2), atol=1e-3)  # kept as float16, unit length
    plain = FeedbackStore(store.engine)
    assert [i.text for i in plain.queue(10)] == ["my card is lost", "refund please", "lost card again",
                                                 "other model's card", "no vector"]  # uncertainty alone
    with pytest.raises(ValueError, match="similar_above must be over 0 and at most 1, got 1.5"):
        FeedbackStore(store.engine, similar_above=1.5)


def test_queue_sends_near_duplicates_behind(tmp_path: Path) -> None:
    exercise_queue_order(FeedbackStore.open(tmp_path / "f.db", similar_above=0.85))


def test_a_store_from_before_vectors_gains_the_column(tmp_path: Path) -> None:
    """A store written before the vector column existed opens, keeps its rows and stores vectors."""
    import sqlite3

    db = tmp_path / "old.db"
    FeedbackStore.open(db).add_items([item("kept from before", 0.5)])
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE earshot_items DROP COLUMN vector")
    store = FeedbackStore.open(db)
    store.add_items([item("new", 0.9, vector=np.ones(4, dtype=np.float32))])
    assert [(i.text, i.vector is None) for i in store.queue(10)] == [("new", False), ("kept from before", True)]


def test_queue_breaks_priority_ties_by_recency(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "f.db")
    store.add_items([item("older", 0.5, created_at=1.0), item("newer", 0.5, created_at=2.0), item("top", 0.6)])
    assert [i.text for i in store.queue(3)] == ["top", "newer", "older"]


def test_sqlite_store_queues_once_orders_by_value_and_purges(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "sub" / "feedback.db")
    exercise_store(store)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_sampled_accuracy_counts_only_random_sample(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "f.db")
    answer = {"sentiment": {"labels": [{"label": "negative"}]}, "pain_points": {"labels": [{"label": "late"}]}}
    store.add_items([QueuedItem("a", "v", answer, ["sample"], 0.1, sampled=True),
                     QueuedItem("b", "v", answer, ["sample"], 0.1, sampled=True),
                     QueuedItem("c", "v", answer, ["margin:sentiment"], 0.9)])
    store.add_corrections([Correction({"sentiment": "negative", "pain_points": ["late"]}, "a"),
                           Correction({"sentiment": "positive", "pain_points": []}, "b"),
                           Correction({"sentiment": "positive"}, "c")])
    assert store.sampled_accuracy() == {"sentiment": {"accuracy": 0.5, "items": 2},
                                        "pain_points": {"accuracy": 0.5, "items": 2}}


def test_postgresql_store_keeps_the_same_contract(postgres_url: str) -> None:
    store = FeedbackStore.open(postgres_url)
    exercise_store(store)
    exercise_queue_order(FeedbackStore(store.engine, similar_above=0.85))
    assert "postgresql" in repr(store) and "@127.0.0.1" in repr(store)


def test_unique_corrections_merge_heads_newest_first() -> None:
    merged = unique_corrections([Correction({"sentiment": "negative", "pain_points": ["late"]}, "Late!"),
                                 Correction({"pain_points": ["late", "rude_staff"]}, " late! "),
                                 Correction({"sentiment": "positive"}, "other")])
    assert [(c.text, c.labels) for c in merged] == [
        (" late! ", {"sentiment": "negative", "pain_points": ["late", "rude_staff"]}),
        ("other", {"sentiment": "positive"})]


# ------------------------------------------------------------------------------------- capture
def test_policy_names_each_reason() -> None:
    policy = CapturePolicy(sample_rate=0.0, disagreements=(Disagreement.parse("sentiment=positive>pain_points"),))
    assert policy.reasons(SURE_NEGATIVE, THRESHOLDS) == []
    assert policy.reasons(UNSURE, THRESHOLDS) == ["margin:sentiment", "confidence:sentiment"]
    assert policy.reasons(NEAR_THRESHOLD, THRESHOLDS) == ["margin:pain_points"]
    # The same scores are far from a threshold of 0.2: the model's own thresholds decide.
    assert policy.reasons(NEAR_THRESHOLD, {"pain_points": {**THRESHOLDS["pain_points"], "billing": 0.2}}) == []
    assert policy.reasons(POSITIVE_WITH_PAIN, THRESHOLDS) == ["disagree:sentiment=positive>pain_points"]
    assert policy.uncertainty(UNSURE, THRESHOLDS) == pytest.approx(0.95)
    assert policy.uncertainty(SURE_NEGATIVE, THRESHOLDS) < policy.uncertainty(NEAR_THRESHOLD, THRESHOLDS)


def test_top_share_follows_the_traffic_not_a_fixed_margin() -> None:
    """A sharp model never falls under the fixed margin; the top rule still queues its least sure tenth."""
    policy = CapturePolicy(margin_below=0.0, confidence_below=0.0, sample_rate=0.0, top_share=0.1, window=500,
                           warmup=50)
    leads = [0.6 + 0.39 * ((i * 7919) % 1000) / 1000 for i in range(2000)]  # margins 0.6 to 0.99
    answers = [prediction({"negative": (1 + lead) / 2, "neutral": (1 - lead) / 2, "positive": 0.0},
                          {"billing": 0.0, "late": 1.0, "lost_item": 0.0, "rude_staff": 0.0}) for lead in leads]
    tagged = [i for i, answer in enumerate(answers) if policy.reasons(answer, THRESHOLDS) == ["top"]]
    assert 150 < len(tagged) < 250  # a tenth of 2,000
    assert min(tagged) >= 50  # nothing before the warm-up
    # The tagged ones are the least sure: the highest tagged lead is below the traffic's 15th percentile.
    assert max(leads[i] for i in tagged) < sorted(leads)[300]
    with pytest.raises(ValueError, match="top_share must be between 0 and 1, got 2"):
        CapturePolicy(top_share=2)
    with pytest.raises(ValueError, match="warmup from 0 to the window, got window=10, warmup=20"):
        CapturePolicy(window=10, warmup=20)


def test_random_sample_share_and_rule_errors() -> None:
    policy = CapturePolicy(sample_rate=0.1, seed=3)
    sampled = sum("sample" in policy.reasons(SURE_NEGATIVE, THRESHOLDS) for _ in range(5000))
    assert 400 < sampled < 600
    with pytest.raises(ValueError, match="expected HEAD=LABEL>OTHER_HEAD"):
        Disagreement.parse("sentiment>pain_points")
    with pytest.raises(ValueError, match="sample_rate must be between 0 and 1, got 1.5"):
        CapturePolicy(sample_rate=1.5)


def test_writer_stores_off_the_calling_thread(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "f.db")
    writer = CaptureWriter(store, CapturePolicy(sample_rate=0.0))
    taken = writer.offer(["sure", "unsure", "kept by id"], [SURE_NEGATIVE, UNSURE, SURE_NEGATIVE], "v1",
                         [None, "u-1", "k-1"], THRESHOLDS, [None, {"channel": "email"}, None])
    assert taken == 2
    writer.flush()
    [queued] = store.queue(10)
    assert (queued.text, queued.caller_id, queued.meta, queued.model_version) == ("unsure", "u-1",
                                                                                 {"channel": "email"}, "v1")
    assert queued.vector is None  # these answers came without their text vectors
    assert queued.answer["sentiment"]["scores"]["neutral"] == 0.40
    assert store.text_for_id("k-1") == "kept by id"
    with store.engine.connect() as connection:  # kept for its id only: its text, not its scores
        assert connection.exec_driver_sql("SELECT answer FROM earshot_items WHERE caller_id = 'k-1'").scalar() == "{}"
    writer.close()


class SlowStore:
    """A store whose writes block until released: stands in for a database that has stalled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.items: list[QueuedItem] = []

    def add_items(self, items):
        self.release.wait(10)
        self.items += items
        return len(items)


def test_a_stalled_store_never_blocks_the_request_path() -> None:
    store = SlowStore()
    writer = CaptureWriter(store, CapturePolicy(sample_rate=0.0), capacity=5, batch=1)  # type: ignore[arg-type]
    started = time.monotonic()
    for _ in range(50):
        writer.offer(["unsure"], [UNSURE], "v1", [None], THRESHOLDS)
    assert time.monotonic() - started < 2  # returned at once although nothing could be written
    assert writer.dropped >= 40
    store.release.set()
    writer.flush()
    assert 1 <= len(store.items) <= 10
    writer.close()


# --------------------------------------------------------------------------------- corrections
def test_labels_are_checked_against_the_heads() -> None:
    assert check_labels({"sentiment": "negative", "pain_points": "late"}, HEADS) == {
        "sentiment": "negative", "pain_points": ["late"]}
    with pytest.raises(ValueError, match=r"item 3: unknown label 'furious' for head 'sentiment'.*allow_new_labels"):
        check_labels({"sentiment": "furious"}, HEADS, where="item 3")
    with pytest.raises(ValueError, match=r"unknown head 'topic'; the model's heads are \['pain_points', 'sentiment'\]"):
        check_labels({"topic": "x"}, HEADS)
    with pytest.raises(ValueError, match="head 'sentiment' is single: give one label or null"):
        check_labels({"sentiment": ["negative"]}, HEADS)
    with pytest.raises(ValueError, match="no labels"):
        check_labels({}, HEADS)
    assert check_labels({"pain_points": ["wifi", "late"]}, HEADS, allow_new_labels=True) == {
        "pain_points": ["late", "wifi"]}


def test_corrections_override_base_rows_and_grow_heads() -> None:
    base = [Example("Late flight", {"sentiment": "negative", "pain_points": ("late",)}, row=2),
            Example("late flight ", {"sentiment": "neutral", "pain_points": ()}, row=3),
            Example("Fine", {"sentiment": "positive", "pain_points": ()}, row=4)]
    corrections = [Correction({"pain_points": ["late", "wifi"]}, "LATE FLIGHT"), Correction({"sentiment": "neutral"},
                                                                                             "New text")]
    examples, heads, changed = merge_corrections(base, corrections, HEADS)
    assert changed == 1
    assert [(e.text, e.labels, e.row) for e in examples] == [
        ("Late flight", {"sentiment": "negative", "pain_points": ("late", "wifi")}, 2),  # duplicate row 3 dropped
        ("Fine", {"sentiment": "positive", "pain_points": ()}, 4),
        ("New text", {"sentiment": "neutral", "pain_points": ()}, -2)]
    assert heads[1].labels == ["billing", "late", "lost_item", "rude_staff", "wifi"]


def test_holdout_split_is_stable_as_corrections_accumulate() -> None:
    corrections = [Correction({"sentiment": "negative"}, f"text {i}") for i in range(400)]
    train, holdout = split_corrections(corrections, 0.25)
    assert 60 < len(holdout) < 140
    _, more_holdout = split_corrections(corrections + [Correction({"sentiment": "neutral"}, "new")], 0.25)
    assert {c.text for c in holdout} <= {c.text for c in more_holdout}
    with pytest.raises(ValueError, match="--holdout-fraction must be at least 0 and below 1, got 1"):
        split_corrections(corrections, 1)


# ------------------------------------------------------------------------------------ registry
def saved_model(tiny_base: Path, folder: Path, seed: int) -> Path:
    import torch

    torch.manual_seed(seed)
    EarshotModel.from_base(str(tiny_base), HEADS, max_length=32).save_pretrained(folder)
    return folder


def test_registry_promotes_and_rolls_back(tiny_base: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first, second = (saved_model(tiny_base, tmp_path / f"m{i}", i) for i in (1, 2))
    assert registry.current() is None
    with pytest.raises(RegistryError, match="has no current version"):
        registry.current_path()
    v1, v2 = registry.add(first), registry.add(second)
    assert registry.add(first) == v1 == version_id(first)
    assert set(registry.versions()) == {v1, v2}
    registry.promote(v1)
    registry.promote(v2, {"why": "better"})
    assert registry.current() == v2 and registry.current_path() == registry.root / "versions" / v2
    assert registry.rollback() == v1 and registry.current() == v1
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no version 'nope'"):
        registry.promote("nope")
    assert [e["action"] for e in registry.history()] == ["promote", "promote", "rollback"]


# ------------------------------------------------------------------------------------- compare
class Fixed:
    """A model that answers from a table: compare's arithmetic checked on answers chosen by hand."""

    def __init__(self, version: str, answers: dict[str, str], config) -> None:
        self.version, self.answers, self.config = version, answers, config

    def predict(self, texts):
        return [Prediction({"sentiment": HeadPrediction("single", [LabelScore(self.answers[t], 1.0)], {})}, False)
                for t in texts]


def test_compare_gives_paired_deltas_with_intervals(tiny_model: EarshotModel) -> None:
    rows = [Example(f"t{i}", {"sentiment": "negative" if i % 2 else "positive"}, i) for i in range(200)]
    gold = {e.text: e.labels["sentiment"] for e in rows}
    flipped = {"negative": "positive", "positive": "negative"}
    # current is right on the first 100 rows; the candidate on the first 150.
    current = Fixed("old", {t: g if int(t[1:]) < 100 else flipped[g] for t, g in gold.items()}, tiny_model.config)
    candidate = Fixed("new", {t: g if int(t[1:]) < 150 else flipped[g] for t, g in gold.items()}, tiny_model.config)
    report = compare_models(candidate, current, rows, ["sentiment"], resamples=500)
    accuracy = report["heads"]["sentiment"]["accuracy"]
    assert (accuracy["current"], accuracy["candidate"], accuracy["delta"]) == pytest.approx((0.5, 0.75, 0.25))
    # 50 of 200 rows differ, all in the candidate's favour: the delta's spread is a binomial's.
    assert 0.17 < accuracy["low"] < 0.22 and 0.28 < accuracy["high"] < 0.33
    assert report["heads"]["sentiment"]["labels"]["negative"]["support"] == 100
    assert worst_headline_delta(report) == ("sentiment", pytest.approx(0.25))
    assert "sentiment accuracy: 0.5000 -> 0.7500  delta +0.2500" in render(report)
    same = compare_models(current, current, rows, ["sentiment"], resamples=100)["heads"]["sentiment"]["accuracy"]
    assert (same["delta"], same["low"], same["high"]) == (0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------ commands
def test_export_retrain_and_promote_commands(tiny_base: Path, feedback_csv: Path, tmp_path: Path) -> None:
    db = tmp_path / "feedback.db"
    store = FeedbackStore.open(db)
    frame = pd.read_csv(feedback_csv)
    first = frame["text"].iloc[1]  # negative, rude_staff in the data: the correction changes it
    store.add_corrections([Correction({"sentiment": "positive", "pain_points": []}, first, reviewer="ann"),
                           Correction({"sentiment": "negative", "pain_points": ["late", "wifi"]},
                                      "the wifi was down and we left late")])
    out = tmp_path / "corrections.jsonl"
    assert main(["feedback", "export", "--feedback-db", str(db), "-o", str(out)]) == 0
    exported = pd.read_json(out, lines=True)
    assert list(exported.columns[:3]) == ["text", "pain_points", "sentiment"]
    assert json.loads(exported["pain_points"].iloc[1]) == ["late", "wifi"]
    FeedbackStore.open(tmp_path / "other.db").add_corrections(
        [Correction({"sentiment": "negative"}, "refund to DE89 3704 0044 0532 0130 00 please")])
    hidden = tmp_path / "hidden.csv"
    assert main(["feedback", "export", "--feedback-db", str(tmp_path / "other.db"), "-o", str(hidden),
                 "--redact", "iban"]) == 0
    assert "refund to <IBAN> please" in set(pd.read_csv(hidden)["text"])

    model_dir = tmp_path / "candidate"
    assert main(["retrain", "--data", str(feedback_csv), "--feedback-db", str(db), "--output", str(model_dir),
                 "--base-model", str(tiny_base), "--sentiment-column", "sentiment", "--pain-points-column",
                 "pain_points", "--recipe", "fine-tune", "--epochs", "1", "--holdout-fraction", "0",
                 "--registry", str(tmp_path / "registry"), "--no-progress", "--max-length", "32"]) == 0
    config = json.loads((model_dir / "config.json").read_text())["earshot"]
    assert config["provenance"]["corrections"] == {"used": 2, "held_out": 0, "changed_base_rows": 1}
    assert "wifi" in next(h for h in config["heads"] if h["name"] == "pain_points")["labels"]
    version = version_id(model_dir)
    assert (tmp_path / "registry" / "versions" / version).is_dir()

    registry = tmp_path / "registry"
    assert main(["promote", version, "--registry", str(registry)]) == 0  # the first version needs no comparison
    continued = tmp_path / "continued"
    assert main(["retrain", "--data", str(feedback_csv), "--feedback-db", str(db), "--output", str(continued),
                 "--from", "current", "--registry", str(registry), "--sentiment-column", "sentiment",
                 "--pain-points-column", "pain_points", "--holdout-fraction", "0", "--no-progress"]) == 0
    card = json.loads((continued / "config.json").read_text())["earshot"]
    assert card["provenance"]["continued_from"] == version
    assert card["base_model"].endswith(f"(earshot model {version})")
    settings = card["provenance"]["config"]
    # two new rows: 20 passes over them are one step (a first model's stage takes at least 100); a third
    # of the tiny encoder's two layers rounds to none frozen
    assert settings["recipe"] == "few-shot" and settings["contrastive_steps"] == 1
    assert settings["frozen_layers"] == 0
    other = saved_model(tiny_base, tmp_path / "other", 7)
    worse = {"candidate": version_id(other), "current": version, "rows": 10, "resamples": 10, "confidence": 0.95,
             "heads": {"sentiment": {"kind": "single", "macro_f1": {"delta": -0.05}}}}
    report = tmp_path / "compare.json"
    report.write_text(json.dumps(worse))
    assert main(["promote", str(other), "--registry", str(registry), "--report", str(report)]) == 2
    assert Registry(registry).current() == version
    assert main(["promote", str(other), "--registry", str(registry), "--report", str(report),
                 "--tolerance", "0.1"]) == 0
    assert main(["rollback", "--registry", str(registry)]) == 0
    assert Registry(registry).current() == version

    assert main(["feedback", "purge", "--feedback-db", str(db), "--all"]) == 0
    assert list(FeedbackStore.open(db).corrections()) == []


def test_promote_refuses_a_report_about_other_versions(tmp_path: Path, tiny_base: Path, caplog) -> None:
    registry = Registry(tmp_path / "registry")
    a, b = (registry.add(saved_model(tiny_base, tmp_path / f"m{i}", i)) for i in (1, 2))
    registry.promote(a)
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"candidate": b, "current": "0123456789abcdef", "heads": {}}))
    assert main(["promote", b, "--registry", str(registry.root), "--report", str(report)]) == 2
    assert f"compares {b} with 0123456789abcdef, not {b} with the current {a}" in caplog.text


def test_compare_command_scores_both_models_on_file_and_held_out_corrections(
        tiny_base: Path, feedback_csv: Path, tmp_path: Path, capsys) -> None:
    registry = Registry(tmp_path / "registry")
    current = registry.add(saved_model(tiny_base, tmp_path / "a", 1))
    registry.promote(current)
    candidate = saved_model(tiny_base, tmp_path / "b", 2)
    db = tmp_path / "feedback.db"
    FeedbackStore.open(db).add_corrections([Correction({"sentiment": "negative"}, f"held out text {i}")
                                            for i in range(40)])
    report_file = tmp_path / "out" / "compare.json"
    assert main(["compare", str(candidate), "--registry", str(registry.root), "--data", str(feedback_csv),
                 "--feedback-db", str(db), "--holdout-fraction", "0.5", "--sentiment-column", "sentiment",
                 "--pain-points-column", "pain_points", "--resamples", "200", "-o", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    held_out = len(split_corrections(list(FeedbackStore.open(db).corrections()), 0.5)[1])
    rows = len(pd.read_csv(feedback_csv))
    assert (report["candidate"], report["current"]) == (version_id(candidate), current)
    assert report["rows"] == rows + held_out
    assert report["heads"]["sentiment"]["rows"] == rows + held_out
    assert report["heads"]["pain_points"]["rows"] == rows  # the corrections left pain points unknown
    accuracy = report["heads"]["sentiment"]["accuracy"]
    assert accuracy["low"] <= accuracy["delta"] <= accuracy["high"]
    assert "sentiment accuracy:" in capsys.readouterr().out
    assert (tmp_path / "out" / "compare.txt").read_text().startswith(f"candidate {version_id(candidate)}")
    # promote decides on the same comparison when no report is given
    assert main(["promote", str(candidate), "--registry", str(registry.root), "--data", str(feedback_csv),
                 "--sentiment-column", "sentiment", "--tolerance", "1"]) == 0
    assert registry.current() == version_id(candidate)


def test_a_failed_write_does_not_put_the_text_in_the_error(tmp_path: Path) -> None:
    store = FeedbackStore.open(tmp_path / "f.db")
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE earshot_corrections")
    with pytest.raises(Exception) as raised:
        store.add_corrections([Correction({"sentiment": "negative"}, "my card number is 4111 1111")])
    assert "earshot_corrections" in str(raised.value) and "4111" not in str(raised.value)
