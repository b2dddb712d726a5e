"""One access-log line, and the request metrics, per request.

The line has the request id, method, route, model, status, latency and image count; never the
prompt, the API key, the query string (signed URLs carry their signature there) or a body.
The service fills in the model and the image count (RequestContext.outcome, which the routes
take from `record(request)`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelsmith import metrics
from pixelsmith.service.images import RequestOutcome

logger = logging.getLogger("pixelsmith.access")
UNKNOWN_MODEL = "unknown"


def record(scope_holder: Any) -> RequestOutcome:
    """The request's outcome, which the service fills in (RequestContext.outcome), from a
    Request or an ASGI scope; a fresh one outside this middleware."""
    scope = scope_holder if isinstance(scope_holder, dict) else scope_holder.scope
    state = scope.setdefault("state", {})
    found = state.get("outcome")
    if not isinstance(found, RequestOutcome):
        found = state["outcome"] = RequestOutcome()
    return found


class AccessLogMiddleware:
    """Inside RequestContextMiddleware (it needs the request id), outside everything else, so
    that the 401s, 413s and 429s of the other middleware are logged and counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        entry = record(scope)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._log(scope, entry, status, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, entry: RequestOutcome, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        model = entry.model or ("" if entry.images == 0 else UNKNOWN_MODEL)
        metrics.REQUESTS.labels(route, model or "none", str(status)).inc()
        metrics.REQUEST_SECONDS.labels(route).observe(seconds)
        fields = {
            "request_id": scope.get("state", {}).get("request_id", ""),
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "model": model,
            "status": status,
            "latency_ms": round(seconds * 1000, 1),
            "images": entry.images,
            "replica": entry.replica or None,
        }
        logger.info(
            "%s %s %s %s model=%s images=%d %.1fms",
            fields["request_id"],
            fields["method"],
            fields["path"],
            status,
            model or "-",
            entry.images,
            fields["latency_ms"],
            extra=fields,
        )
