"""Exception handlers that write every error, on every route, in the OpenAI envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import APIError, error_body, shown

logger = logging.getLogger(__name__)
# FastAPI's detail when reading a JSON body fails other than by a JSON syntax error.
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "unknown"))


def error_response(
    status_code: int, body: dict[str, Any], request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=headers)


def _describe_type(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a decimal",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# Union members appear in pydantic locations as type tags ("float", "list[str]", class names).
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _param_name(location: tuple[Any, ...] | list[Any]) -> str | None:
    """`("body", "input", 0, "image_url", "url")` -> "input[0].image_url.url"."""
    name = ""
    for part in location:
        if part == "body":
            continue
        if isinstance(part, int):
            name += f"[{part}]"
            continue
        text = str(part)
        if text in _TYPE_TAGS or "[" in text or text[:1].isupper():
            continue
        name += f".{text}" if name else text
    return name or None


# pydantic's bound errors: the sign, and the words of OpenAI's message and of its code.
_BOUNDS = {
    "greater_than_equal": (">=", "below minimum", "below_min"),
    "greater_than": (">", "below minimum", "below_min"),
    "less_than_equal": ("<=", "above maximum", "above_max"),
    "less_than": ("<", "above maximum", "above_max"),
}


def _validation_error(error: dict[str, Any]) -> tuple[str, str | None, str]:
    """(message, param, code) for one pydantic error, worded like OpenAI's. Values and names
    that came from the client are quoted shortened (errors.shown)."""
    name = _param_name(error.get("loc", ()))
    param = shown(name, 128) if name is not None else None
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    raw = error.get("input")
    value = shown(raw) if isinstance(raw, str) else raw
    if kind == "json_invalid":
        return (
            "We could not parse the JSON body of your request. The API expects a JSON object; "
            f"the parser said: {context.get('error', 'invalid JSON')}.",
            None,
            "invalid_json",
        )
    if kind == "missing":
        if param is None:
            return "Missing request body: send a JSON object.", None, "missing_required_parameter"
        return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unknown parameter: '{param}'.", param, "unknown_parameter"
    if kind == "literal_error":
        return (
            f"Invalid value for '{param}': '{value}'. Supported values are: "
            f"{context.get('expected')}.",
            param,
            "invalid_value",
        )
    if kind == "string_too_long":
        length = len(raw) if isinstance(raw, str) else "more"
        return (
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{context.get('max_length')}, but got a string with length {length} instead.",
            param,
            "string_above_max_length",
        )
    # Bounds are declared as floats on decimal fields (guidance_scale) and ints on integers.
    bound = next((context[key] for key in ("ge", "gt", "le", "lt") if key in context), 0)
    number = "decimal" if isinstance(bound, float) else "integer"
    if kind in _BOUNDS:
        sign, words, code = _BOUNDS[kind]
        return (
            f"Invalid '{param}': {number} {words} value. Expected a value {sign} {bound}, "
            f"but got {value} instead.",
            param,
            f"{number}_{code}_value",
        )
    if param is None and isinstance(value, bytes):
        # FastAPI hands over the raw bytes when the body was not sent as JSON.
        return (
            "The request body must be a JSON object sent with Content-Type: application/json.",
            None,
            "invalid_type",
        )
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = kind.split("_")[0]
        noun = {
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "string": "a string",
            "model": "an object",
            "dict": "an object",
            "list": "an array",
        }.get(expected, expected)
        where = f"'{param}'" if param else "the request body"
        return (
            f"Invalid type for {where}: expected {noun}, but got {_describe_type(value)} instead.",
            param,
            "invalid_type",
        )
    return f"Invalid '{param}': {error.get('msg', 'invalid value')}.", param, "invalid_value"


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    message, param, code = _validation_error(dict(exc.errors()[0]))
    return error_body(message, type="invalid_request_error", param=param, code=code)


def error_answer(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The status and body an HTTP route would answer for `exc` (for callers that answer
    without HTTP: batch lines), or None for an unexpected error."""
    if isinstance(exc, APIError):
        return exc.status_code, exc.to_body()
    if isinstance(exc, RequestValidationError):
        return 400, validation_error_body(exc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.warning("request %s failed: %s", _request_id(request), exc.message)
        return error_response(exc.status_code, exc.to_body(), request, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_error_body(exc), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
            code: str | None = "unknown_url"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed for {request.url.path}"
            code = "method_not_allowed"
        elif exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:
            # FastAPI's answer to a body json.loads refused outright (invalid UTF-8, nesting
            # too deep, an integer too long to convert).
            message = (
                "We could not parse the JSON body of your request. The API expects a JSON "
                "object in UTF-8."
            )
            code = "invalid_json"
        else:
            message, code = str(exc.detail), None
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = error_body(message, type=error_type, code=code)
        return error_response(exc.status_code, body, request, dict(exc.headers or {}))
