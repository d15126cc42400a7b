"""The review page and its JSON API, mounted at /review (behind the API key like every other path).

| route                       | answer                                                              |
|-----------------------------|---------------------------------------------------------------------|
| GET /review                 | the page: plain HTML and JavaScript, no build step                  |
| GET /review/queue?limit=N   | the queue in the page's order: item, id, text, answer, reasons     |
| GET /review/stats           | items waiting and reviewed, accuracy on the randomly sampled items  |

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
    items = [item.to_dict() for item in await run_in_threadpool(store.queue, int(raw))]
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


review_app = Starlette(routes=[Route("/", page), Route("/queue", queue), Route("/stats", stats)])
