"""Per-key admission: how often, and how many at once, each client may ask for images.

A client is its API key. When the server takes any key, a client is the end user its request
names (`safety_identifier`, or the older `user`), else its address: an app that serves many
end users from one address can give each its own quota. (A client that makes up identifiers
gets as many quotas: configure API keys for limits that hold against that.) The limits cover
the endpoints that generate (generations, edits, variations) and hold a request's slot until
its response, streamed or not, has been sent in full. Refusals are 429s in the OpenAI envelope
with Retry-After; nothing has run, so the official clients' automatic retries are safe.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from pixelsmith.api.auth import API_KEY_IDENTITY
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import RateLimitError

LIMITED_PATHS = frozenset({"/v1/images/generations", "/v1/images/edits", "/v1/images/variations"})


class SharedLimiter(Protocol):
    """What the middleware needs of the limits: a KeyLimiter in this process, or one shared by
    every replica of the server (pixelsmith.ray: a deployment that holds the counts)."""

    @property
    def enabled(self) -> bool: ...

    async def take(self, client: str) -> None:
        """A slot for `client`, or RateLimitError."""
        ...

    async def give_back(self, client: str) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


class KeyLimiter:
    """A token bucket (`per_minute` requests, refilled continuously) and an in-flight count
    per client. 0 turns either limit off."""

    def __init__(self, *, per_minute: int, max_concurrent: int) -> None:
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._buckets: dict[str, _Bucket] = {}
        self._pruned = time.monotonic()

    @property
    def enabled(self) -> bool:
        return bool(self.per_minute or self.max_concurrent)

    def acquire(self, client: str, now: float | None = None) -> None:
        """Take a slot for `client` or raise RateLimitError; pair with release()."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(tokens=float(self.per_minute), updated=now)
        if self.max_concurrent and bucket.in_flight >= self.max_concurrent:
            raise RateLimitError(
                f"Too many concurrent requests: this key already has {bucket.in_flight} image "
                f"requests in flight (the limit is {self.max_concurrent}). Wait for one to "
                "finish.",
                retry_after_seconds=1,
            )
        if self.per_minute:
            rate = self.per_minute / 60.0
            bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens < 1:
                raise RateLimitError(
                    f"Rate limit reached: {self.per_minute} image requests per minute for this "
                    "key. Retry after the delay in the Retry-After header.",
                    retry_after_seconds=(1 - bucket.tokens) / rate,
                )
            bucket.tokens -= 1
        bucket.in_flight += 1

    async def take(self, client: str) -> None:
        self.acquire(client)

    async def give_back(self, client: str) -> None:
        self.release(client)

    def refusal(self, client: str) -> tuple[str, float] | None:
        """acquire() as data, for a caller in another process: None when a slot was taken,
        else the refusal's message and Retry-After."""
        try:
            self.acquire(client)
        except RateLimitError as exc:
            return exc.message, float(exc.headers["retry-after"])
        return None

    def release(self, client: str) -> None:
        self._buckets[client].in_flight -= 1
        # Forget idle clients whose bucket is full again, so the table does not grow forever;
        # at most once a minute, so a large table is not scanned on every request.
        now = time.monotonic()
        if now - self._pruned > 60:
            self._pruned = now
            self._prune(now)

    def _prune(self, now: float) -> None:
        rate = self.per_minute / 60.0
        for client, bucket in list(self._buckets.items()):
            full = not self.per_minute or bucket.tokens + (now - bucket.updated) * rate >= (
                self.per_minute
            )
            if bucket.in_flight == 0 and full:
                del self._buckets[client]


def client_identity(scope: Scope, *, by_key: bool) -> str:
    """The API key that authentication accepted (as a hash), or the client's address when any
    key is accepted: then a client could pick a new bearer for every request."""
    if by_key:
        identity = scope.get("state", {}).get(API_KEY_IDENTITY)
        if identity:
            return str(identity)
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


# Where KeyLimitMiddleware leaves the slot that a route takes once it has read the body.
LIMIT_SLOT = "pixelsmith_limit_slot"


class LimitSlot:
    """A request's place in its client's limits, taken by the route once the body has named
    the end user (without API keys), and given back when the response has been sent."""

    def __init__(self, limiter: SharedLimiter, scope: Scope) -> None:
        self._limiter = limiter
        self._scope = scope
        self.held: str | None = None

    async def take(self, end_user: str | None) -> None:
        """Count the request against `end_user` (hashed), or the client's address if none."""
        if self.held is not None:
            return
        client = client_identity(self._scope, by_key=False)
        if end_user:
            client = f"user:{hashlib.sha256(end_user.encode()).hexdigest()[:32]}"
        await self._limiter.take(client)
        self.held = client

    async def release(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            await self._limiter.give_back(held)


async def take_limit_slot(scope: Scope, end_user: str | None) -> None:
    """Take the request's slot now that its end user is known: RateLimitError if the client
    has none left. Nothing to do when keys are configured (the key was counted on arrival) or
    there are no limits."""
    slot = scope.get("state", {}).get(LIMIT_SLOT)
    if isinstance(slot, LimitSlot):
        await slot.take(end_user)


class KeyLimitMiddleware:
    """Applies a KeyLimiter to the generating endpoints. With API keys configured, it runs
    after authentication and counts the key that authentication accepted, before the body is
    read; without them it leaves a LimitSlot for the route, which knows the end user."""

    def __init__(self, app: ASGIApp, limiter: SharedLimiter, *, by_key: bool) -> None:
        self.app = app
        self.limiter = limiter
        self.by_key = by_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.limiter.enabled
            or scope.get("method") != "POST"
            or scope.get("path") not in LIMITED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if not self.by_key:
            slot = LimitSlot(self.limiter, scope)
            scope.setdefault("state", {})[LIMIT_SLOT] = slot
            try:
                await self.app(scope, receive, send)
            finally:
                await slot.release()
            return
        client = client_identity(scope, by_key=True)
        try:
            await self.limiter.take(client)
        except RateLimitError as exc:
            response = JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await self.limiter.give_back(client)
