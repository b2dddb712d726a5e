"""Bearer-key authentication for the /v1 API."""

from __future__ import annotations

import hmac

from fastapi import Request

from pixelsmith.errors import AuthenticationError


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


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for every /v1 route."""
    checker: APIKeyChecker = request.app.state.api_keys
    checker.check(request.headers.get("authorization"))
