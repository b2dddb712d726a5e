"""Bearer-key authentication for the /v1 API and /mcp, checked before a request body is even
read."""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import AuthenticationError

# Signed image URLs carry their own authorisation and are opened by browsers without a key.
PUBLIC_PREFIXES = ("/v1/images/files/",)
# The MCP tools over streamable HTTP take the same keys as the API.
PROTECTED_PATHS = ("/mcp",)
# Where APIKeyMiddleware leaves the identity of the key it accepted, in the ASGI scope's state.
API_KEY_IDENTITY = "pixelsmith_api_key_identity"


class APIKeyChecker:
    """Accepts any bearer when no keys are configured (the official clients always send one)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "You didn't provide an API key. Send it in an Authorization header using Bearer "
                "auth (Authorization: Bearer YOUR_KEY)."
            )
        candidate = token.strip().encode()
        # Compare against every key so timing does not reveal which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            shown = token.strip()
            masked = f"{shown[:3]}***{shown[-4:]}" if len(shown) > 8 else "***"
            raise AuthenticationError(f"Incorrect API key provided: {masked}.")


class APIKeyMiddleware:
    """Rejects unauthenticated /v1 requests with 401 before routing, so that a client without
    a valid key learns that first, not that its body was malformed."""

    def __init__(self, app: ASGIApp, checker: APIKeyChecker) -> None:
        self.app = app
        self.checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and self.checker.enabled
            and (path.startswith("/v1/") or path in PROTECTED_PATHS)
            and not path.startswith(PUBLIC_PREFIXES)
        ):
            headers = dict(scope.get("headers", []))
            raw = headers.get(b"authorization")
            authorization = raw.decode("latin-1") if raw is not None else None
            try:
                self.checker.check(authorization)
            except AuthenticationError as exc:
                response = JSONResponse(exc.to_body(), status_code=exc.status_code)
                await response(scope, receive, send)
                return
            # The key that passed, for per-key limits (hashed: it is only an identity there).
            token = (authorization or "").partition(" ")[2].strip()
            digest = hashlib.sha256(token.encode()).hexdigest()[:32]
            scope.setdefault("state", {})[API_KEY_IDENTITY] = f"key:{digest}"
        await self.app(scope, receive, send)
