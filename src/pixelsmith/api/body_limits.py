"""Request bodies are capped per route before they are read: by Content-Length up front, and by
counting as they arrive for chunked bodies, which announce no length. Over the cap, the answer
is a 413 in the OpenAI envelope and the connection is closed; nothing more is read.

FastAPI reads JSON bodies whole into memory before a route runs, so a route cannot guard its own
body; this middleware does it for every route, from one table.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelsmith.api.transport.bodies import MAX_IMAGE_URL_CHARS, MAX_IMAGES
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import error_body
from pixelsmith.service.files import MAX_FILE_BYTES
from pixelsmith.service.inputs import MAX_UPLOAD_BYTES

MB = 1_000_000
# Multipart edits: 16 images of 50 MB and a mask; JSON edits: 16 image URLs and a mask of at
# most MAX_IMAGE_URL_CHARS each (the spec's limit), and the other fields. Multipart files spool
# to disk; JSON is held in memory whole, hence its lower cap.
MAX_EDIT_BODY_BYTES = (MAX_IMAGES + 1) * MAX_UPLOAD_BYTES
MAX_JSON_EDIT_BODY_BYTES = (MAX_IMAGES + 1) * MAX_IMAGE_URL_CHARS + MB
# Any other body: a generation's JSON is a prompt of at most 32,000 characters and a few fields.
DEFAULT_BODY_BYTES = 1 * MB

# path -> (cap for JSON bodies, cap for any other content type)
BODY_LIMITS: dict[str, tuple[int, int]] = {
    "/v1/images/edits": (MAX_JSON_EDIT_BODY_BYTES, MAX_EDIT_BODY_BYTES),
    "/v1/images/variations": (DEFAULT_BODY_BYTES, MAX_UPLOAD_BYTES + MB),
    # up to 32 inputs, images as data: URLs of at most 20 MB decoded in all that fits
    "/v1/moderations": (64 * MB, DEFAULT_BODY_BYTES),
    # a file of up to 512 MB (OpenAI's limit) and its fields; spooled to disk as it arrives
    "/v1/files": (DEFAULT_BODY_BYTES, MAX_FILE_BYTES + MB),
    # an MCP edit_image call: its images as base64, like a JSON edit's
    "/mcp": (MAX_JSON_EDIT_BODY_BYTES, DEFAULT_BODY_BYTES),
}


def body_limit(path: str, content_type: str) -> int:
    json_limit, other_limit = BODY_LIMITS.get(path, (DEFAULT_BODY_BYTES, DEFAULT_BODY_BYTES))
    return json_limit if content_type.startswith("application/json") else other_limit


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    body = error_body(
        f"The request body is over the {limit / MB:g} MB limit for this endpoint.",
        type="invalid_request_error",
        code="request_too_large",
    )
    # The rest of the body is never read, so the connection cannot be reused.
    return JSONResponse(body, status_code=413, headers={"connection": "close"})


class BodyLimitMiddleware:
    """Inside RequestContextMiddleware, so that its 413s carry the request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = body_limit(scope["path"], headers.get(b"content-type", b"").decode("latin-1"))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        over = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                # The app turned the failed read into an answer of its own (FastAPI makes any
                # error while reading a body a 400): the 413 goes out instead.
                answered = True
                await _too_large(limit)(scope, receive, send)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over or answered:
                raise
            answered = True  # whatever the failed read became, the answer is the 413
            await _too_large(limit)(scope, receive, send)
