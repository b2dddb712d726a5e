"""One exception tree, one OpenAI error envelope.

    APIError                      500 server_error (base; never shows internals)
    +-- InvalidRequestError       400 invalid_request_error, `param` names the field
    |   +-- ModerationBlockedError  400 moderation_blocked (content_policy_violation for dall-e)
    +-- PayloadTooLargeError      413 file_too_large (a body, a file or an image URL)
    +-- AuthenticationError       401 invalid_api_key
    +-- PermissionDeniedError     403
    +-- NotFoundError             404
    |   +-- ModelNotFoundError    404 model_not_found
    +-- RateLimitError            429 with Retry-After (queue full)
    +-- ServiceUnavailableError   503 with x-should-retry
    +-- ModelLoadError            a model could not be loaded (startup)

Every error reaches the client as
``{"error": {"message": str, "type": str, "param": str | None, "code": str | None}}`` with
``Content-Type: application/json``. The handlers that write it live in
`pixelsmith.api.error_handlers`.
This module imports no web framework, so the engine can raise these too.
"""

from __future__ import annotations

import math
from typing import Any


class APIError(Exception):
    """Base of every error a client can see."""

    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}
        self.extra = extra or {}

    def to_body(self) -> dict[str, Any]:
        return error_body(
            self.message, type=self.error_type, param=self.param, code=self.code, extra=self.extra
        )


class InvalidRequestError(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class ModerationBlockedError(InvalidRequestError):
    """The safety system rejected a prompt (stage "input") or a generated image ("output").

    GPT image names get gpt-image-1's shape, with coarse `moderation_details`; the dall-e names
    get the legacy `content_policy_violation` shape that older clients look for.
    """

    def __init__(
        self,
        *,
        stage: str,
        categories: list[str],
        request_id: str,
        legacy: str | None = None,
    ) -> None:
        if legacy is not None:
            # Only dall-e-3 rewrote prompts, so only its message speaks of image descriptions.
            key = "output" if legacy == "dall-e-3" and stage == "output" else "input"
            super().__init__(LEGACY_POLICY_MESSAGES[key], code="content_policy_violation")
            return
        super().__init__(
            "Your request was rejected by the safety system. If you believe this is an error, "
            f"contact the operator of this server and include the request ID {request_id}. "
            f"safety_violations=[{', '.join(categories)}].",
            code="moderation_blocked",
            extra={"moderation_details": {"moderation_stage": stage, "categories": categories}},
        )
        self.error_type = "image_generation_user_error"


LEGACY_POLICY_MESSAGES = {
    "input": "Your request was rejected as a result of our safety system. Your prompt may contain "
    "text that is not allowed by our safety system.",
    "output": "Your request was rejected as a result of our safety system. Image descriptions "
    "generated from your prompt may contain text that is not allowed by our safety system. If "
    "you believe this was done in error, your request may succeed if retried, or by adjusting "
    "your prompt.",
}


class PayloadTooLargeError(APIError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "file_too_large"


class AuthenticationError(APIError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(APIError):
    status_code = 403
    error_type = "invalid_request_error"


class NotFoundError(APIError):
    status_code = 404
    error_type = "invalid_request_error"


def shown(value: object, limit: int = 64) -> str:
    """A client's value as an error message quotes it: at most `limit` characters, so that a
    1 MB model name is not echoed back (or logged) whole."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(
            f"The model `{shown(model)}` does not exist or you do not have access to it. "
            f"Available models: {', '.join(known)}.",
        )


class RateLimitError(APIError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        # Rounded up: a client that waits exactly this long must find room.
        seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(message, headers={"retry-after": str(seconds)})


class ServiceUnavailableError(APIError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"

    def __init__(self, message: str, *, should_retry: bool = True) -> None:
        # The official clients retry 5xx twice unless told otherwise (x-should-retry).
        super().__init__(message, headers={"x-should-retry": "true" if should_retry else "false"})


class ModelLoadError(APIError):
    """A configured model could not be loaded; the message says why and what to do."""

    status_code = 503
    error_type = "server_error"
    default_code = "model_load_failed"


def reject_unpaired_surrogates(text: str, param: str) -> None:
    """JSON may carry lone UTF-16 surrogates ("\\ud800") that are no text at all; tokenizers
    fail on them, so they are refused up front."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise InvalidRequestError(
            f"Invalid '{param}': the text contains an unpaired surrogate, which is not valid "
            "Unicode.",
            param=param,
            code="invalid_value",
        )


INTERNAL_ERROR_MESSAGE = (
    "The server had an error while processing your request. "
    "Check the server log for request id {request_id}."
)


def error_body(
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope. Extra keys (e.g. moderation_details) go inside `error`."""
    error: dict[str, Any] = {"message": message, "type": type, "param": param, "code": code}
    error.update(extra or {})
    return {"error": error}
