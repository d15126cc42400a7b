"""The benchmark helpers whose figures go into README and closing notes."""

from __future__ import annotations

from transformers import BertConfig

from benchmarks.hardware import encoder_flops


def test_encoder_flops_counts_projections_feed_forward_and_attention_per_text():
    config = BertConfig(hidden_size=8, intermediate_size=32, num_hidden_layers=2)
    # One layer, one 3-token text: 3 tokens x (4*8*8 + 2*8*32) projections + 2 * 3 * 3 * 8 attention.
    one_layer = 3 * (4 * 64 + 2 * 256) + 2 * 9 * 8
    assert encoder_flops(config, [3]) == 2 * 2 * one_layer
    # Texts are counted without padding: a 3-token and a 1-token text cost less than two 3-token ones.
    assert encoder_flops(config, [3, 1]) < encoder_flops(config, [3, 3])


def test_batch_size_sweep_measures_every_size_and_names_the_fastest(tiny_model):
    from benchmarks.batch_sizes import Sweep, sweep_batch_sizes

    texts = ["the flight was late again", "thanks for the help", "lost my bag"] * 30
    sweep = sweep_batch_sizes(tiny_model, texts, [4, 32], repeats=1)
    assert sorted(sweep.texts_per_s) == [4, 32]
    assert all(speed > 0 for speed in sweep.texts_per_s.values())
    assert Sweep({16: 10.0, 64: 30.0, 256: 20.0}).best_batch_size == 64


def test_label_agreement_is_total_for_the_same_model_and_sees_a_changed_head(tiny_model, tiny_base):
    import torch

    from benchmarks.batch_sizes import label_agreement
    from earshot.model import EarshotModel

    texts = ["the flight was late again", "thanks for the help", "lost my bag", "rude staff at the gate"]
    assert label_agreement(tiny_model, tiny_model, texts) == (1.0, 0.0)
    other = EarshotModel.from_base(str(tiny_base), tiny_model.config.heads)
    with torch.no_grad():
        other.heads["pain_points"].bias.add_(3.0)  # every pain-point score moves up
    assert label_agreement(other, tiny_model, texts)[1] > 0.1


def test_held_out_micro_f1_scores_thresholds_on_the_half_they_were_not_tuned_on():
    import numpy as np

    from benchmarks.thresholds import held_out_micro_f1

    rng = np.random.default_rng(0)
    gold = (rng.random((200, 3)) < 0.3).astype(float)
    separable = gold * 0.5 + rng.uniform(0.2, 0.45, gold.shape)  # positives above 0.7, negatives below 0.45
    assert held_out_micro_f1(gold, separable, separable, 0.0, splits=3) == 1.0
    # Scores shifted down after tuning (a backend whose scores drift) lose what the thresholds assumed.
    assert held_out_micro_f1(gold, separable, separable - 0.3, 0.0, splits=3) < 0.9
    noise = rng.random(gold.shape)
    assert held_out_micro_f1(gold, noise, noise, 0.0, splits=3) < 0.6


def test_child_peak_memory_counts_the_child_only():
    from benchmarks.scoring import child_peak_mib

    held_by_this_process = bytearray(600 * 2**20)  # a large parent must not show in the child
    held_by_this_process[::4096] = b"1" * len(held_by_this_process[::4096])  # touch every page
    small = child_peak_mib("x = 1")
    large = child_peak_mib("import sys\nx = bytearray(int(sys.argv[1]) * 2**20)\nx[::4096] = b'1' * len(x[::4096])", "300")
    assert small < 200
    # The two children's own start-up memory differs by a fraction of a MiB (299.96 was seen), so the
    # 300 MiB allocation shows as 300 give or take a little; the 600 MiB parent would add 600.
    assert 290 <= large - small < 400


def test_the_closed_loop_waits_until_every_served_answer_is_stored(monkeypatch):
    """A writer stalled between two readings once passed for caught up; the loop now counts the rows."""
    import pytest

    from benchmarks import closed_loop

    class Stats:
        def __init__(self, totals):
            self.totals = iter(totals)

        def get(self, path, timeout):
            waiting, answered = next(self.totals)

            class Reply:
                def json(self):
                    return {"waiting": waiting, "reviewed": 0, "answered": answered}
            return Reply()

    monkeypatch.setattr(closed_loop.time, "sleep", lambda seconds: None)
    # Two equal readings (a stalled writer) are not the end: the third has all 10 answers.
    assert closed_loop.settled_counts(Stats([(2, 3), (2, 3), (4, 6)]), served=10)["answered"] == 6
    with pytest.raises(SystemExit, match="holds 5 of the 10 answers"):
        closed_loop.settled_counts(Stats([(2, 3)] * 3), served=10, timeout=-1.0)


def test_the_loop_summary_keeps_runs_with_another_capture_margin_apart(tmp_path, capsys):
    import json

    from benchmarks import closed_loop

    def run(strategy, after, margin=None):
        line = {"set": "mams", "strategy": strategy, "seed": 1, "retrain_from": "current", "metric": "micro_f1",
                "before": 0.40, "after": after, "delta": after - 0.40, "answers": 150, "wrong_rate": 0.5}
        return json.dumps({**line, **({"capture_margin": margin} if margin is not None else {})})

    lines = tmp_path / "loop.jsonl"
    lines.write_text("\n".join([run("teach", 0.50), run("random", 0.55), run("teach", 0.60, margin=0.0)]))
    closed_loop.summarise([lines])
    table = capsys.readouterr().out
    # The margin-0 teach run is a row of its own, not averaged into the default capture's teach (0.500).
    assert "| mams | current, capture margin 0.0 | teach | 1 |" in table
    assert "| mams | current | teach | 1 | micro_f1 | 0.400 | 0.500 |" in table
    assert "teach − random | -0.0500" in table
