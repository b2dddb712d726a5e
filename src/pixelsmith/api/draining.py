"""Graceful shutdown: on SIGTERM the server keeps its port open and answers new requests with a
503 `service_unavailable` (and `Connection: close`) while the requests in flight finish, for at
most `shutdown_grace_seconds`; then it stops. A load balancer sees the 503s and /ready failing
and sends the traffic elsewhere; a client's retry reaches another replica."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import error_body

# Liveness keeps answering while the server drains: the process is alive, just leaving.
ALWAYS_SERVED = ("/health",)
DRAINING_MESSAGE = (
    "The server is shutting down and takes no new requests. Retry the request; another "
    "replica, or this server after its restart, will answer it."
)


class DrainState:
    """Requests in flight, and whether (since when) the server is draining."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining_since: float | None = None

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    def begin(self) -> None:
        if self.draining_since is None:
            self.draining_since = time.monotonic()

    def done(self, grace_seconds: float) -> bool:
        """Whether the server may stop now: nothing in flight, or the grace period is over."""
        if self.draining_since is None:
            return False
        return self.in_flight == 0 or time.monotonic() - self.draining_since >= grace_seconds


class DrainMiddleware:
    def __init__(self, app: ASGIApp, state: DrainState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.state.draining and scope["path"] not in ALWAYS_SERVED:
            body = error_body(DRAINING_MESSAGE, type="server_error", code="service_unavailable")
            headers = {"connection": "close", "retry-after": "1", "x-should-retry": "true"}
            await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1
