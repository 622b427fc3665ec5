"""The routes of `agentctx web` (docs/web.md); every one sits behind security.Guard.

GET  /         the page (static/ holds its JS and CSS)
GET  /events   SSE: state, drive, status (sse.py)
GET  /state    the state as `agentctx status --json` prints it
GET  /metrics  Prometheus text format
POST /satisfy, /bump, /reset   the wire request's fields as JSON -> the receipt
"""

from __future__ import annotations

import html
import json
import uuid
from functools import partial
from importlib.resources import files
from typing import Any, Final

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentctx._core.errors import E_BAD_REQUEST, E_UNKNOWN_DRIVE, RequestFailed, StoreError
from agentctx._core.protocol import Bump, Reset, Satisfy, decode_client
from agentctx.requests import Receipt, submit
from agentctx.web import metrics
from agentctx.web.bridge import Bridge
from agentctx.web.security import Guard, HostCheck
from agentctx.web.sse import EventStream

__all__ = ["ACTIONS", "MAX_BODY", "make_app"]

ACTIONS: Final = ("satisfy", "bump", "reset")
MAX_BODY: Final = 16 << 10  # a request is a drive name, a number and a reason
WIRE_ID: Final = 1  # the correlation id on the one-request connection submit() opens
TOKEN_PLACEHOLDER: Final = "{{TOKEN}}"
# A refused request's wire code as an HTTP status; any other code is 422.
STATUS_OF_CODE: Final = {E_BAD_REQUEST: 400, E_UNKNOWN_DRIVE: 404}
REFUSED: Final = 422
NO_STATE: Final = "no_state"


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


def _last_event_id(header: str | None) -> int | None:
    """The seq a reconnecting EventSource says it has (None: a first connection)."""
    try:
        return int(header) if header is not None else None
    except ValueError:
        return None


async def _json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or RequestFailed(bad_request) saying what is wrong."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise RequestFailed(E_BAD_REQUEST, f"body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise RequestFailed(E_BAD_REQUEST, f"body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RequestFailed(E_BAD_REQUEST, "body must be a JSON object")
    return data


def _receipt(receipt: Receipt) -> JSONResponse:
    if receipt.status == "acked":
        return JSONResponse(
            {"status": "acked", "seq": receipt.seq, "request_id": receipt.request_id}
        )
    # 202: accepted, applied once the sidecar is back (at the time it was made)
    return JSONResponse(
        {"status": "queued", "request_id": receipt.request_id, "spool": str(receipt.path)},
        status_code=202,
    )


def make_app(
    bridge: Bridge,
    *,
    token: str,
    hosts: HostCheck,
    cookie: str,
) -> Starlette:
    registry = metrics.make_registry(bridge)
    template = (files("agentctx.web") / "page.html").read_text(encoding="utf-8")
    page_html = template.replace(TOKEN_PLACEHOLDER, html.escape(token, quote=True))

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html)

    async def events(request: Request) -> Response:
        outlet = bridge.attach(_last_event_id(request.headers.get("last-event-id")))
        return EventStream(outlet, bridge.detach)

    async def state(request: Request) -> Response:
        payload = bridge.state_payload()
        if payload is None:
            problem = bridge.subscription.file_problem or bridge.reason
            return _error(503, NO_STATE, f"no drive state yet: {problem}")
        return JSONResponse(payload)

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(registry), media_type=metrics.CONTENT_TYPE)

    async def act(request: Request) -> Response:
        kind = request.url.path.strip("/")
        request_id = None
        try:
            body = await _json_body(request)
            fields = {**body, "type": kind, "id": WIRE_ID}
            fields.setdefault("request_id", str(uuid.uuid4()))
            request_id = fields["request_id"]
            req = decode_client(json.dumps(fields).encode())
            assert isinstance(req, Satisfy | Bump | Reset)  # the type was set just above
            # submit() blocks (socket, then maybe an fsync'd spool file): off the loop
            return _receipt(await anyio.to_thread.run_sync(partial(submit, req)))
        except RequestFailed as exc:
            status = STATUS_OF_CODE.get(exc.code, REFUSED)
            return _error(status, exc.code, exc.message, request_id=request_id)
        except StoreError as exc:  # neither the sidecar nor the spool took it
            return _error(503, "not_queued", str(exc), request_id=request_id)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/state", state, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        *(Route(f"/{kind}", act, methods=["POST"]) for kind in ACTIONS),
        Mount("/static", StaticFiles(packages=[("agentctx.web", "static")])),
    ]
    guard = Middleware(Guard, token=token, hosts=hosts, cookie=cookie)
    return Starlette(routes=routes, middleware=[guard])
