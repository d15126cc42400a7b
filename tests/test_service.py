"""The HTTP API at three layers: the service class, in-process HTTP, and a real `bentoml serve`."""

from __future__ import annotations

import importlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import tiny_heads
from servers import clean_env, free_port, start_server, stop
from earshot.model import DEFAULT_MODEL_DIR, EarshotModel, Head, version_id
from earshot.model.device import bf16_matrix_units
from earshot.service.middleware import GuardMiddleware
from earshot.service.redaction import RedactValidationErrors
from earshot.service.service import build_service
from earshot.service.settings import Settings


@pytest.fixture(scope="module")
def served(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory):
    """The service class built for the tiny model with three heads, from settings passed in.

    Module-scoped: BentoML registers Prometheus metrics once per process and app.
    """
    folder = tmp_path_factory.mktemp("served")
    heads = [*tiny_heads(), Head("praise_points", "multi", ["crew", "app"])]
    version = EarshotModel.from_base(str(tiny_base), heads, max_length=32).save_pretrained(folder)
    settings = Settings.from_env({"EARSHOT_MODEL": str(folder), "EARSHOT_MAX_ITEMS": "8",
                                  "EARSHOT_MAX_BODY_BYTES": "20000"})
    return build_service(settings), version


def test_importing_the_service_module_reads_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import earshot.service.service as module

    monkeypatch.setenv("EARSHOT_MAX_ITEMS", "not a number")
    importlib.reload(module)  # would fail if the environment were read at import
    with pytest.raises(ValueError, match="EARSHOT_MAX_ITEMS='not a number' is not an integer"):
        module.Earshot  # noqa: B018 - the service is built from the environment when first asked for


# ----------------------------------------------------------------------- layer 1: the class itself
def test_service_class_classifies_in_order_and_echoes_ids(served) -> None:
    from earshot.service.schemas import FeedbackItem

    service_class, version = served
    service = service_class()
    items = [FeedbackItem(id=str(i), text=text) for i, text in enumerate(["late", "thanks", "late " * 100])]
    answers = service.classify(items)
    assert [a.id for a in answers] == ["0", "1", "2"]
    assert [a.truncated for a in answers] == [False, False, True]
    assert {a.model_version for a in answers} == {version}
    # Every backend scores a text the same alone or beside others (int8 quantises per token).
    direct = service.model.predict(["thanks"])[0]
    assert answers[1].heads["sentiment"].labels[0].label == direct["sentiment"].label
    assert answers[1].heads["sentiment"].scores == pytest.approx(direct["sentiment"].scores, abs=1e-5)
    assert [h.name for h in service.info().heads] == ["sentiment", "pain_points", "praise_points"]
    # Declared, so that BentoML does not rebuild the answer's JSON schema per response to find it.
    assert service_class.apis["classify"].output_spec.media_type == "application/json"


# ---------------------------------------------------------------------- layer 2: in-process HTTP
@pytest.fixture(scope="module")
def client(served):
    with TestClient(app=served[0].to_asgi()) as test_client:
        yield test_client


def test_http_classify_and_model_info(client: TestClient, served) -> None:
    response = client.post("/classify", json={"items": [{"id": "a", "text": "my bag is lost"}, {"text": "ok"}]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert [item["id"] for item in body] == ["a", None]
    assert set(body[0]) == {"id", "model_version", "heads", "truncated"}
    assert set(body[0]["heads"]) == {"sentiment", "pain_points", "praise_points"}
    assert set(body[0]["heads"]["praise_points"]["scores"]) == {"crew", "app"}
    info = client.get("/model")
    assert info.status_code == 200
    assert info.json()["heads"][0] == {"name": "sentiment", "kind": "single",
                                       "labels": ["negative", "neutral", "positive"], "thresholds": {},
                                       "catch_all": []}
    assert info.json()["version"] == body[0]["model_version"] == body[1]["model_version"] == served[1]
    assert info.json()["backend"] == ("bf16" if bf16_matrix_units() else "onnx-int8")  # auto, with no GPU
    assert client.get("/readyz").status_code == 200 and client.get("/livez").status_code == 200


def test_http_explain_adds_evidence_spans_to_every_answered_label(client: TestClient) -> None:
    text = "my bag is lost and the crew was rude"
    body = client.post("/classify", json={"items": [{"text": text, "explain": True}, {"text": text}]}).json()
    explained, plain = body
    assert explained["heads"]["sentiment"]["scores"] == pytest.approx(plain["heads"]["sentiment"]["scores"])
    for head in explained["heads"].values():
        for entry in head["labels"]:
            assert len(entry["evidence"]) <= 3
            for span in entry["evidence"]:
                assert text[span["start"]:span["end"]] == span["text"] and span["weight"] > 0
            assert [s["weight"] for s in entry["evidence"]] == sorted((s["weight"] for s in entry["evidence"]),
                                                                    reverse=True)
    assert all("evidence" not in entry for head in plain["heads"].values() for entry in head["labels"])


@pytest.mark.parametrize("payload, status, location", [
    ({"items": [{"text": "fine"}, {"text": "   "}]}, 400, ["items", 1, "text"]),
    ({"items": [{"text": "fine"}, {"id": "x"}]}, 400, ["items", 1, "text"]),
    ({"items": [{"text": 42}]}, 400, ["items", 0, "text"]),
    ({"items": [{"text": "a", "colour": "red"}]}, 400, ["items", 0, "colour"]),
    ({"items": []}, 400, ["items"]),
    ({"items": [{"text": "a"}] * 9}, 400, ["items"]),
    ({"texts": ["a"]}, 400, ["items"]),
])
def test_http_bad_input_names_item_and_field(client: TestClient, payload: dict, status: int, location: list) -> None:
    response = client.post("/classify", json=payload)
    assert response.status_code == status
    assert location in [problem["loc"] for problem in response.json()["detail"]]


def test_http_malformed_json_and_oversized_body(client: TestClient) -> None:
    malformed = client.post("/classify", content=b'{"items": [{"text": "a"', headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["detail"][0]["type"] == "json_invalid"
    huge = client.post("/classify", json={"items": [{"text": "x" * 30000}]})
    assert huge.status_code == 413 and "over the limit of 20000 bytes" in huge.json()["error"]


# --------------------------------------------------------------------- middleware and log hygiene
async def _read_body(request) -> PlainTextResponse:
    return PlainTextResponse(f"read {len(await request.body())} bytes")


def _guarded(api_key: str | None) -> TestClient:
    app = Starlette(routes=[Route(path, _read_body, methods=["GET", "POST"])
                            for path in ("/classify", "/livez", "/readyz")])
    return TestClient(GuardMiddleware(app, api_key=api_key, max_body_bytes=100))


def test_api_key_is_required_except_on_health_probes() -> None:
    client = _guarded("s3cret")
    assert client.post("/classify").status_code == 401
    assert client.post("/classify", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/classify", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 200
    assert _guarded(None).post("/classify").status_code == 200


def test_body_without_content_length_is_limited() -> None:
    def chunks():
        yield b"x" * 80
        yield b"x" * 80

    response = _guarded(None).post("/classify", content=chunks())
    assert response.status_code == 413


def test_rejected_requests_are_logged_without_their_text() -> None:
    from pydantic import BaseModel, ValidationError

    class Item(BaseModel):
        text: int

    try:
        Item(text="my secret complaint")
    except ValidationError as error:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "Exception on %s", ("/classify",),
                                   (type(error), error, None))
    RedactValidationErrors().filter(record)
    message = logging.Formatter().format(record)
    assert "secret" not in message and "text: int_parsing" in message and record.levelno == logging.WARNING


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match=r"EARSHOT_MAX_BATCH_SIZE='many' is not an integer"):
        Settings.from_env({"EARSHOT_MAX_BATCH_SIZE": "many"})
    with pytest.raises(ValueError, match=r"EARSHOT_WORKERS=0 must be at least 1"):
        Settings.from_env({"EARSHOT_WORKERS": "0"})
    with pytest.raises(ValueError, match=r"EARSHOT_CAPTURE_SAMPLE=1.5 must be at most 1.0"):
        Settings.from_env({"EARSHOT_CAPTURE_SAMPLE": "1.5"})
    with pytest.raises(ValueError, match=r"EARSHOT_CAPTURE_MARGIN='wide' is not a number"):
        Settings.from_env({"EARSHOT_CAPTURE_MARGIN": "wide"})
    with pytest.raises(ValueError, match=r"disagreement rule 'sentiment>pain_points': expected HEAD=LABEL>OTHER_HEAD"):
        Settings.from_env({"EARSHOT_CAPTURE_DISAGREE": "sentiment>pain_points"})
    settings = Settings.from_env({"EARSHOT_CAPTURE_SAMPLE": "0.5", "EARSHOT_CAPTURE_DISAGREE": "a=b>c",
                                  "EARSHOT_RETENTION_DAYS": "30"})
    assert (settings.capture.sample_rate, [str(r) for r in settings.capture.disagreements],
            settings.retention_days) == (0.5, ["a=b>c"], 30)
    with pytest.raises(ValueError, match=r"EARSHOT_CAPTURE_TOP=2.0 must be at most 1.0"):
        Settings.from_env({"EARSHOT_CAPTURE_TOP": "2"})
    assert Settings.from_env({"EARSHOT_CAPTURE_TOP": "0.25"}).capture.top_share == 0.25
    assert (Settings.from_env({}).review_similar, Settings.from_env({"EARSHOT_REVIEW_SIMILAR": "0.85"}).review_similar) \
        == (1.0, 0.85)
    with pytest.raises(ValueError, match=r"EARSHOT_REVIEW_SIMILAR=0.0 must be at least 0.01"):
        Settings.from_env({"EARSHOT_REVIEW_SIMILAR": "0"})
    # a team serving a registry retrains: its queue teaches unless it asks to fix answers
    assert [Settings.from_env(env).queue_purpose for env in (
        {}, {"EARSHOT_REGISTRY": "models"}, {"EARSHOT_REGISTRY": "models", "EARSHOT_REVIEW_PURPOSE": "fix"},
        {"EARSHOT_REVIEW_PURPOSE": "teach"})] == ["fix", "teach", "fix", "teach"]
    with pytest.raises(ValueError, match=r"EARSHOT_REVIEW_PURPOSE='learn' is not one of \['fix', 'teach'\]"):
        Settings.from_env({"EARSHOT_REVIEW_PURPOSE": "learn"})
    with pytest.raises(ValueError, match=r"EARSHOT_BACKEND='int4' is not a backend; use one of \['torch', 'bf16', "
                                         r"'onnx', 'onnx-int8', 'auto'\]"):
        Settings.from_env({"EARSHOT_BACKEND": "int4"})


def test_tracing_middleware_is_skipped_unless_asked_for() -> None:
    """OpenTelemetry's middleware wraps every request even when no span is sampled; off by default."""
    assert build_service(Settings.from_env({})).config["tracing"] == {"excluded_urls": [".*"]}
    assert "tracing" not in build_service(Settings.from_env({"EARSHOT_TRACING": "1"})).config


# ------------------------------------------------------------------ layer 3: a real bentoml serve
@pytest.fixture(scope="module")
def server():
    """`earshot serve` on the default model, with an API key, in a process of its own."""
    port, key = free_port(), "integration-key"
    process, log = start_server([], clean_env(EARSHOT_API_KEY=key), port)
    try:
        yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}, log
    finally:
        stop(process)
        log.close()


@pytest.mark.integration
def test_real_server_gives_right_labels(server) -> None:
    base, auth, _ = server
    items = [{"id": "lost", "text": "@Parcelo you lost my parcel and nobody can tell me where it is"},
             {"id": "late", "text": "@Railbright train delayed 4 hours again, we are still sitting at the station"},
             {"id": "thanks", "text": "@Hotelia thank you, the staff were wonderful and the room was great!"}]
    answer = httpx.post(f"{base}/classify", json={"items": items}, headers=auth, timeout=30).json()
    by_id = {a["id"]: a["heads"] for a in answer}
    assert by_id["lost"]["sentiment"]["labels"][0]["label"] == "negative"
    assert by_id["lost"]["pain_points"]["labels"][0]["label"] == "Lost or damaged item"
    assert by_id["late"]["pain_points"]["labels"][0]["label"] == "Delays"
    assert by_id["thanks"]["sentiment"]["labels"][0]["label"] == "positive"
    assert by_id["thanks"]["pain_points"]["labels"] == []
    info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
    assert {a["model_version"] for a in answer} == {info["version"]} == {version_id(DEFAULT_MODEL_DIR)}


@pytest.mark.integration
def test_real_server_rejects_bad_input_and_missing_key(server) -> None:
    base, auth, log = server
    assert httpx.post(f"{base}/classify", json={"items": [{"text": "x"}]}, timeout=10).status_code == 401
    assert httpx.get(f"{base}/livez", timeout=10).status_code == 200
    bad = httpx.post(f"{base}/classify", json={"items": [{"text": "ok"}, {"text": " private words "}, {"text": ""}]},
                     headers=auth, timeout=10)
    assert bad.status_code == 400 and ["items", 2, "text"] in [p["loc"] for p in bad.json()["detail"]]
    garbage = httpx.post(f"{base}/classify", content=b'{"items": [{"text": "my private words"',
                         headers={**auth, "content-type": "application/json"}, timeout=10)
    assert garbage.status_code == 400
    too_many = httpx.post(f"{base}/classify", json={"items": [{"text": "a"}] * 257}, headers=auth, timeout=10)
    assert too_many.status_code == 400
    huge = httpx.post(f"{base}/classify", json={"items": [{"text": "a" * 5_000_000}]}, headers=auth, timeout=30)
    assert huge.status_code == 413
    docs = httpx.get(f"{base}/docs.json", headers=auth, timeout=10)
    assert docs.status_code == 200 and "ticket-4711" in docs.text  # the examples show in the OpenAPI page
    info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
    assert "Lost or damaged item" in info["heads"][1]["labels"] and info["metrics"]
    log.flush()
    log.seek(0)
    assert "private words" not in log.read()


@pytest.mark.integration
def test_real_server_under_concurrent_load_batches_and_matches(server) -> None:
    base, auth, _ = server
    texts = ["@shop lost my parcel", "@shop thanks for the upgrade!", "@shop delivery delayed again",
             "@shop what time do you open?"]

    def client(number: int) -> list[tuple[str, str, int, str | None]]:
        results = []
        with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
            for request in range(50):
                text = texts[(number + request) % len(texts)]
                item_id = f"{number}-{request}"
                response = http.post("/classify", json={"items": [{"id": item_id, "text": text}]})
                body = response.json()
                label = body[0]["heads"]["sentiment"]["labels"][0]["label"] if response.status_code == 200 else None
                results.append((item_id, body[0]["id"] if response.status_code == 200 else "", response.status_code,
                                f"{text}|{label}"))
        return results

    with ThreadPoolExecutor(32) as pool:
        results = [r for batch in pool.map(client, range(32)) for r in batch]
    assert len(results) == 1600
    assert all(status == 200 for _, _, status, _ in results)
    assert all(sent == echoed for sent, echoed, _, _ in results)
    # the same text always gets the same answer, whichever batch it landed in
    answers: dict[str, set[str]] = {}
    for *_, text_label in results:
        text, label = text_label.split("|")
        answers.setdefault(text, set()).add(label)
    assert all(len(labels) == 1 for labels in answers.values())
    metrics = httpx.get(f"{base}/metrics", headers=auth, timeout=10).text
    buckets = {float(le): float(count) for le, count in re.findall(
        r'bentoml_service_adaptive_batch_size_bucket\{le="([0-9.]+)",method_name="classify"[^}]*\} ([0-9.]+)', metrics)}
    total = float(re.search(r'bentoml_service_adaptive_batch_size_count\{method_name="classify"[^}]*\} ([0-9.]+)',
                            metrics).group(1))
    assert total - buckets[1.0] > 0, "no batch held more than one request"
