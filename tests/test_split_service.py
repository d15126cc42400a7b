"""The split service (`EARSHOT_API_WORKERS`): API workers that tokenize and answer, in front of a model
worker that batches token rows; in-process, and through a real `earshot serve --api-workers 2`."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import torch

from conftest import tiny_heads
from earshot.loop.registry import Registry
from earshot.model import EarshotModel, Head, ModelFront
from earshot.service.model_worker import Coalescer, build_model_worker, split_outputs, token_rows
from earshot.service.schemas import FeedbackItem
from earshot.service.service import build_service
from earshot.service.settings import Settings
from servers import clean_env, free_port, start_server, stop

TEXTS = ["my flight was late", "staff was rude at the gate", "lost my bag again " * 20, "the crew was lovely"]


def save_tiny(tiny_base: Path, folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    heads = [*tiny_heads(), Head("praise_points", "multi", ["crew", "app"])]
    EarshotModel.from_base(str(tiny_base), heads, max_length=16).save_pretrained(folder)
    return folder


def answers(classifications) -> list[dict]:
    return [c.model_dump() for c in classifications]


# ------------------------------------------------------------------------------- the wire format
def test_token_rows_round_trip_and_other_versions_get_nan(tiny_base: Path, tmp_path: Path) -> None:
    folder = save_tiny(tiny_base, tmp_path / "m", 0)
    model, front = EarshotModel.from_pretrained(folder, device="cpu"), ModelFront.from_pretrained(folder)
    encoded = front.encode(TEXTS)
    worker = build_model_worker(Settings.from_env({"EARSHOT_MODEL": str(folder), "EARSHOT_BACKEND": "torch"}))()
    rows = token_rows(front.version, encoded.input_ids, front.config.max_length)
    stale = token_rows("0123456789abcdef", encoded.input_ids[:1], front.config.max_length)
    answer = worker.forward(np.concatenate([rows[:2], stale, rows[2:]]))
    assert np.isnan(answer[2]).all() and not np.isnan(np.delete(answer, 2, axis=0)).any()
    outputs = split_outputs(np.delete(answer, 2, axis=0), front.config.heads)
    expected = model.run(TEXTS)[0]
    assert sorted(outputs) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5)
    assert encoded.truncated.tolist() == [False, False, True, False]


# ------------------------------------------------------------------------------------ the coalescer
def test_coalescer_joins_concurrent_requests_and_returns_each_its_rows() -> None:
    calls: list[int] = []

    async def forward(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        await asyncio.sleep(0.01)
        return rows * 10

    async def scenario() -> list[np.ndarray]:
        coalesce = Coalescer(forward, max_rows=5, max_calls=1)
        requests = [np.full((size, 2), number) for number, size in enumerate([1, 2, 2, 1, 3, 1])]
        return await asyncio.gather(*(coalesce(rows) for rows in requests))

    results = asyncio.run(scenario())
    assert [r.tolist() for r in results] == [(np.full((size, 2), n) * 10).tolist()
                                             for n, size in enumerate([1, 2, 2, 1, 3, 1])]
    # the first request goes alone; the rest wait for it and go together, at most 5 rows a call
    assert calls == [1, 5, 4]


def test_coalescer_gives_every_request_of_a_failed_call_its_error() -> None:
    async def forward(rows: np.ndarray) -> np.ndarray:
        await asyncio.sleep(0.01)
        if len(rows) > 1:
            raise RuntimeError("model worker down")
        return rows

    async def scenario() -> list:
        coalesce = Coalescer(forward, max_rows=8, max_calls=1)
        return await asyncio.gather(*(coalesce(np.zeros((1, 2))) for _ in range(4)), return_exceptions=True)

    first, *rest = asyncio.run(scenario())
    assert first.shape == (1, 2)
    assert [str(error) for error in rest] == ["model worker down"] * 3


# --------------------------------------------------------------------------- the classes in-process
def test_split_service_answers_as_the_single_one(tiny_base: Path, tmp_path: Path) -> None:
    folder = save_tiny(tiny_base, tmp_path / "m", 0)
    env = {"EARSHOT_MODEL": str(folder), "EARSHOT_BACKEND": "torch"}
    single = build_service(Settings.from_env(env))()
    split_class = build_service(Settings.from_env({**env, "EARSHOT_API_WORKERS": "2"}))
    split = split_class()
    items = [FeedbackItem(id=str(i), text=text) for i, text in enumerate(TEXTS)]
    expected, got = answers(single.classify(items)), answers(asyncio.run(split.classify(items)))
    assert [a["id"] for a in got] == ["0", "1", "2", "3"] and [a["truncated"] for a in got] == [False, False, True, False]
    for mine, theirs in zip(got, expected):
        assert mine["model_version"] == theirs["model_version"]
        for head, answer in theirs["heads"].items():
            assert [p["label"] for p in mine["heads"][head]["labels"]] == [p["label"] for p in answer["labels"]]
            assert mine["heads"][head]["scores"] == pytest.approx(answer["scores"], abs=1e-5)
    assert isinstance(split.model, ModelFront)  # the API side holds no weights
    info = asyncio.run(split.model_info())
    assert (info.device, info.backend, info.version) == ("cpu", "torch", single.model.version)
    assert split_class.config["workers"] == 2 and split_class.dependencies["network"].on.config["workers"] == 1


def test_split_api_follows_the_model_worker_to_a_promoted_version(tiny_base: Path, tmp_path: Path) -> None:
    """A promotion can reach the model worker before the API worker: the API tokenizes again for the
    worker's version and answers with it, instead of deciding old logits with new heads."""
    registry = Registry(tmp_path / "registry")
    old = registry.add(save_tiny(tiny_base, tmp_path / "v1", 1))
    new = registry.add(save_tiny(tiny_base, tmp_path / "v2", 2))
    registry.promote(old)
    service = build_service(Settings.from_env({"EARSHOT_REGISTRY": str(registry.root), "EARSHOT_BACKEND": "torch",
                                               "EARSHOT_API_WORKERS": "1", "EARSHOT_RELOAD_SECONDS": "3600"}))()
    registry.promote(new)
    service.network.follower.switch_to(new)  # the model worker has seen the promotion, the API has not
    assert service.model.version == old
    got = answers(asyncio.run(service.classify([FeedbackItem(text=TEXTS[0])])))
    assert got[0]["model_version"] == new and service.model.version == new
    direct = EarshotModel.from_pretrained(registry.path(new), device="cpu").predict([TEXTS[0]])[0]
    assert got[0]["heads"]["sentiment"]["scores"] == pytest.approx(direct["sentiment"].scores, abs=1e-5)


def test_api_workers_setting_is_checked() -> None:
    with pytest.raises(ValueError, match=r"EARSHOT_API_WORKERS=-1 must be at least 0"):
        Settings.from_env({"EARSHOT_API_WORKERS": "-1"})
    assert Settings.from_env({}).api_workers == 0


# ------------------------------------------------------------------------------ a real split server
@pytest.mark.integration
def test_real_split_server_matches_the_model_under_concurrent_load(tiny_base: Path, tmp_path: Path) -> None:
    """More requests per API worker than BentoML's client serves on one session (100), from 32 clients
    at once: none may fail, each answer is the model's own."""
    folder = save_tiny(tiny_base, tmp_path / "m", 0)
    key, port = "split-key", free_port()
    process, log = start_server(["--model", str(folder), "--api-workers", "2", "--backend", "torch"],
                                clean_env(EARSHOT_API_KEY=key), port)
    auth = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}"
    model = EarshotModel.from_pretrained(folder, device="cpu")
    expected = {text: prediction["sentiment"].scores for text, prediction in zip(TEXTS, model.predict(TEXTS))}
    try:
        assert httpx.post(f"{base}/classify", json={"items": [{"text": "x"}]}, timeout=10).status_code == 401

        def client(number: int) -> list[tuple[int, str, dict | None]]:
            results = []
            with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
                for request in range(40):
                    text = TEXTS[(number + request) % len(TEXTS)]
                    response = http.post("/classify", json={"items": [{"text": text}]})
                    ok = response.status_code == 200
                    results.append((response.status_code, text, response.json()[0]["heads"] if ok else None))
            return results

        with ThreadPoolExecutor(32) as pool:
            results = [r for batch in pool.map(client, range(32)) for r in batch]
        assert [status for status, _, _ in results] == [200] * 1280
        for _, text, heads in results:
            assert heads["sentiment"]["scores"] == pytest.approx(expected[text], abs=1e-4)
        info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
        assert (info["version"], info["backend"]) == (model.version, "torch")
        # The model worker takes pickled arrays: its own socket is a local (unix) one, and the only TCP
        # socket it holds is the API's port, which its parent opened and only the API workers serve.
        workers = [p for p in psutil.Process(process.pid).children(recursive=True)
                   if "earshot-model" in p.cmdline()]
        assert len(workers) == 1
        tcp = {c.laddr.port for c in workers[0].net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert tcp <= {port}
        assert [c for c in workers[0].net_connections(kind="unix") if str(c.laddr).endswith(".sock")]
    finally:
        stop(process)
        log.close()
