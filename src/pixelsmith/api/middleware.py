"""ASGI middleware: request ids, and a last-resort 500 in the OpenAI envelope."""

from __future__ import annotations

import logging
import re
import secrets

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelsmith.errors import INTERNAL_ERROR_MESSAGE, error_body

logger = logging.getLogger("pixelsmith.api")
# What a proxy's request id may be to be adopted (it reaches logs and error messages).
PROXY_REQUEST_ID = re.compile(rb"^[A-Za-z0-9_.\-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id, sent back as `x-request-id` (the clients expose it), and turns
    any unhandled exception into a 500 that names only that id.

    Catching here rather than in an `Exception` handler matters: Starlette's outermost error
    middleware re-raises after answering, and uvicorn then drops the keep-alive connection that
    the official clients reuse for their next call.
    """

    def __init__(self, app: ASGIApp, *, proxy_request_ids: bool = False) -> None:
        self.app = app
        # Behind Ray Serve's proxy, which gives every request an x-request-id (header in, and
        # header out): that id is the request's, so that the response has one id, not two.
        self.proxy_request_ids = proxy_request_ids

    def _request_id(self, scope: Scope) -> str:
        if self.proxy_request_ids:
            for name, value in scope.get("headers", []):
                if name == b"x-request-id" and PROXY_REQUEST_ID.match(value):
                    return str(value.decode("ascii"))
        return f"req_{secrets.token_hex(12)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        response_started = False
        set_header = not self.proxy_request_ids

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if set_header:
                    headers = [
                        (k, v) for k, v in message.get("headers", []) if k != b"x-request-id"
                    ]
                    headers.append((b"x-request-id", request_id.encode()))
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error in request %s", request_id)
            if response_started:
                raise  # nothing sensible can be sent any more; let the server close it
            body = orjson.dumps(
                error_body(
                    INTERNAL_ERROR_MESSAGE.format(request_id=request_id), type="server_error"
                )
            )
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        # The clients retry 5xx twice; a failed generation is not worth
                        # running three times.
                        (b"x-should-retry", b"false"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
