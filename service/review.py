"""The review page and its JSON API, mounted at /review (behind the API key like every other path).

| route                       | answer                                                              |
|-----------------------------|---------------------------------------------------------------------|
| GET /review                 | the page: plain HTML and JavaScript, no build step                  |
| GET /review/queue?limit=N&purpose=fix|teach | the queue: item, id, text, answer, reasons; fix: likely wrong answers first, teach: what teaches the retrain most |
| GET /review/stats           | items waiting and reviewed, accuracy on the randomly sampled items  |
| GET /review/evidence?item=N | the words the served model's answer for item N depends on           |

The page answers through ``POST /corrections``, as any script can.
"""

from __future__ import annotations

from importlib import resources

import bentoml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

MAX_QUEUE_LIMIT = 1000
# fix: the answers most likely wrong first; teach: the answers whose corrections teach the retrain most
PURPOSES = ("fix", "teach")


def _store():
    return bentoml.get_current_service().store


def _no_store() -> JSONResponse:
    return JSONResponse({"error": "no feedback store: start the service with --feedback-db PATH_OR_URL "
                                  "(EARSHOT_FEEDBACK_DB)"}, status_code=503)


async def page(_request: Request) -> Response:
    html = resources.files("earshot.service").joinpath("review.html").read_text(encoding="utf-8")
    # The page holds no feedback itself (it fetches it), but it is still not for shared caches.
    return HTMLResponse(html, headers={"cache-control": "no-store"})


async def queue(request: Request) -> Response:
    store = _store()
    if store is None:
        return _no_store()
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_QUEUE_LIMIT:
        return JSONResponse({"error": f"limit must be a whole number from 1 to {MAX_QUEUE_LIMIT}, got {raw!r}"},
                            status_code=400)
    purpose = request.query_params.get("purpose", bentoml.get_current_service().review_purpose)
    if purpose not in PURPOSES:
        return JSONResponse({"error": f"purpose must be one of {list(PURPOSES)}, got {purpose!r}"}, status_code=400)
    order = store.teaching_queue if purpose == "teach" else store.queue
    items = [item.to_dict() for item in await run_in_threadpool(order, int(raw))]
    redact = bentoml.get_current_service().review_redact
    if redact is not None:  # the page then names each item by its number, never by the shown text
        for item in items:
            item["text"], item["redacted"] = redact(item["text"]), True
    return JSONResponse({"items": items}, headers={"cache-control": "no-store"})


async def stats(_request: Request) -> Response:
    service = bentoml.get_current_service()
    if service.store is None:
        return _no_store()
    counts = await run_in_threadpool(service.store.counts)
    accuracy = await run_in_threadpool(service.store.sampled_accuracy)
    model = service.model
    return JSONResponse({**counts, "sampled_accuracy": accuracy, "model_version": model.version,
                         "heads": [head.to_dict() for head in model.config.heads]},
                        headers={"cache-control": "no-store"})


async def evidence(request: Request) -> Response:
    """The served model's evidence for a queued item's text, as the page shows it (redacted when asked)."""
    from earshot.model import EarshotModel
    from earshot.model.explain import Explainer, evidence_dicts

    service = bentoml.get_current_service()
    if service.store is None:
        return _no_store()
    raw = request.query_params.get("item", "")
    if not raw.isdigit():
        return JSONResponse({"error": f"item must be a review item number, got {raw!r}"}, status_code=400)
    text = await run_in_threadpool(service.store.text_for_item, int(raw))
    if text is None:
        return JSONResponse({"error": f"no review item {raw}"}, status_code=404)
    model = service.model
    if not isinstance(model, EarshotModel):
        return JSONResponse({"error": "evidence needs the network in the API's process: serve without "
                                      "--api-workers"}, status_code=409)
    shown = service.review_redact(text) if service.review_redact is not None else text
    found = await run_in_threadpool(lambda: Explainer(model).explain([shown])[0])
    return JSONResponse({"item": int(raw), "text": shown, "model_version": model.version,
                         "evidence": evidence_dicts(found)}, headers={"cache-control": "no-store"})


review_app = Starlette(routes=[Route("/", page), Route("/queue", queue), Route("/stats", stats),
                               Route("/evidence", evidence)])
