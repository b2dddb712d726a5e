"""Answering an image request over HTTP: a JSON body, or server-sent events; and the one
disconnect watcher that stops the work of a client that hung up, for both.

Starlette does not cancel a route when its client disconnects, and a stream notices only when
it next writes, which may be minutes away (a queued request). Without the watcher, a job whose
caller gave up, or timed out and retried, would still be queued and run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from pixelsmith.api.access_log import record
from pixelsmith.api.protocol import ImagesResponse
from pixelsmith.api.transport.responses import JSONResponse

T = TypeVar("T")
# nginx's code for "client closed request"; nobody reads it, but the access log does.
CLIENT_CLOSED_REQUEST = 499
# Under Ray, the replica that made a non-streamed answer's images (its Serve replica id).
REPLICA_HEADER = "x-pixelsmith-replica"


class EventStream(Protocol):
    """What the service streams: events in order, and `aclose()` to stop the work."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def __anext__(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class ClientDisconnected(Exception):
    pass


class DisconnectWatch:
    """Runs a request's work, cancelling it if the client goes away first. One listener per
    request; the body has been read, so the next message it receives is the disconnect."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self._listener: asyncio.Task[None] | None = None
        self._current: asyncio.Future[Any] | None = None
        self.disconnected = False

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        if self._current is not None:
            self._current.cancel()

    async def run(self, work: Awaitable[T]) -> T:
        """`work`'s result; ClientDisconnected if the client left before it was done."""
        task = asyncio.ensure_future(work)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())
        if self.disconnected:
            task.cancel()
        self._current = task
        try:
            return await task
        except asyncio.CancelledError:
            if self.disconnected:
                raise ClientDisconnected from None
            raise
        finally:
            self._current = None

    def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()


async def answer(request: Request, work: Awaitable[ImagesResponse | EventStream]) -> Response:
    """The answer to an image request: its JSON, its event stream, or nothing (499) if the
    client left first."""
    watch = DisconnectWatch(request)
    try:
        result = await watch.run(work)
    except ClientDisconnected:
        watch.close()
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except BaseException:
        watch.close()
        raise
    if isinstance(result, ImagesResponse):
        watch.close()
        replica = record(request).replica
        headers = {REPLICA_HEADER: replica} if replica else None
        return JSONResponse(result.model_dump(exclude_none=True), headers=headers)
    return _event_stream(result, watch)


def _event_stream(events: EventStream, watch: DisconnectWatch) -> StreamingResponse:
    """Server-sent events as the official clients parse them: the `event:` name equals the
    JSON `type` (`error` for an error), the JSON on one `data:` line, one blank line after
    each event, no `id:` lines, and the connection closed after the last event."""

    async def frames() -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    event = await watch.run(anext(events))
                except (StopAsyncIteration, ClientDisconnected):
                    return
                name = event.get("type", "error")
                yield b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        finally:
            watch.close()
            # Now, not at garbage collection: the stream's clean-up stops its run.
            await events.aclose()

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        # No proxy buffering: previews are only useful as they happen.
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
