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
