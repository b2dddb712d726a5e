"""The HTTP server: uvicorn, with the edges a public network needs.

* A connection must send a request's headers within `header_timeout_seconds` of opening, and
  a request's whole head within that time of its first bytes; half-open connections (half the
  headers, or nothing at all) are closed. Idle keep-alive connections between requests are
  uvicorn's keep-alive timeout's (`keep_alive_timeout_seconds`), which only starts after a
  first response.
* At most `max_connections` connections; one more is answered with a 503 in the OpenAI
  envelope and closed.
* Requests the HTTP parser refuses (malformed request lines or headers) get a 400 in the
  envelope, with an `x-request-id`, instead of uvicorn's plain text.
* SIGTERM drains (draining.py) rather than closing the port at once.
* uvicorn's access log is off: it prints the query string, which holds URL signatures; the
  app logs one line per request itself (access_log.py).

The protocol is uvicorn's h11 implementation, which these hooks extend; the CLI and the tests
serve through build_server, so the tests exercise the same edges.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pixelsmith.api.draining import DrainState
from pixelsmith.errors import error_body
from pixelsmith.settings import Settings

logger = logging.getLogger("pixelsmith.api")


def _raw_response(status: bytes, body: dict[str, Any]) -> bytes:
    """A whole HTTP/1.1 response in the envelope, written straight to the socket: for answers
    the h11 state machine cannot give (before a request, after a parse error)."""
    payload = orjson.dumps(body)
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(payload)).encode() + b"\r\n"
        b"connection: close\r\n"
        b"x-request-id: req_" + secrets.token_hex(12).encode() + b"\r\n\r\n"
    )
    return head + payload


class HardenedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    max_connections: int | None = None

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            logger.warning("refused a connection: %d open", len(self.connections) - 1)
            body = error_body(
                "The server has too many open connections. Retry in a moment.",
                type="server_error",
                code="service_unavailable",
            )
            self._send_and_close(_raw_response(b"503 Service Unavailable", body))
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Between requests, an idle connection is uvicorn's keep-alive timeout's; once the
        # first bytes of a new request arrive, its head must be complete within ours.
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_header_timer()  # a request's headers have arrived

    def send_400_response(self, msg: str) -> None:
        body = error_body(
            f"Invalid HTTP request: {msg}",
            type="invalid_request_error",
            code="invalid_http_request",
        )
        self._send_and_close(_raw_response(b"400 Bad Request", body))

    def _send_and_close(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


class DrainingServer(uvicorn.Server):
    """The first SIGTERM or SIGINT starts draining; the server stops when nothing is in
    flight or the grace period is over. A second signal stops it at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: DrainState,
        grace_seconds: float,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace_seconds = grace_seconds
        self.on_ready = on_ready  # once the app has started and the port takes connections

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining or self.grace_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        self.drain.begin()
        logger.info(
            "%s: draining (%d requests in flight, at most %g s), new requests get 503",
            signal.Signals(sig).name,
            self.drain.in_flight,
            self.grace_seconds,
        )

    async def on_tick(self, counter: int) -> bool:
        if self.drain.done(self.grace_seconds):
            self.should_exit = True
        return await super().on_tick(counter)


def protocol_class(settings: Settings) -> type[HardenedH11Protocol]:
    return type(
        "PixelsmithH11Protocol",
        (HardenedH11Protocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )


def build_server(
    app: Any,
    settings: Settings,
    *,
    log_level: str | None = None,
    drain: DrainState | None = None,
    on_ready: Callable[[], None] | None = None,
) -> DrainingServer:
    """The server for `app` (create_app's, or an ASGI wrapper of it given its `drain`);
    `on_ready` is called once it serves."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level or settings.log_level,
        http=protocol_class(settings),
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,  # pixelsmith's logging setup (cli.configure_logging) stays
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        # After draining, whatever is left is given a few seconds more, then cancelled.
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    drain = drain or app.state.drain
    return DrainingServer(config, drain, settings.shutdown_grace_seconds, on_ready)


def bind_socket(settings: Settings) -> socket.socket:
    """The listening socket, bound before the models load: a port that is taken is reported
    in a second, not after minutes of loading. OSError if it cannot be bound."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn binds: a restarted server may take the port its predecessor left in
        # TIME_WAIT (never one that is in use).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
