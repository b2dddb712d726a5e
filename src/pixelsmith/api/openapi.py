"""The OpenAPI document (`/openapi.json`, `/docs`), kept true to what the server does: every route
lists the statuses it really answers with, in the error envelope (not FastAPI's unused 422),
the multipart and JSON bodies of edits and variations are described, and streamed answers are
declared as `text/event-stream`. tests/test_openapi.py runs schemathesis against it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from pixelsmith.api.protocol import CreateImageEditRequest, CreateImageVariationRequest


class ErrorObject(BaseModel):
    message: str = Field(description="What is wrong, naming the parameter and what it allows.")
    type: str = Field(description="invalid_request_error, rate_limit_error, server_error, ...")
    param: str | None = Field(description="The parameter at fault, if one is.")
    code: str | None = Field(description="A machine-readable code, e.g. invalid_value.")


class ErrorResponse(BaseModel):
    """The one envelope of every error, on every route."""

    error: ErrorObject


_DESCRIPTIONS = {
    400: "The request is invalid (error.param names the parameter) or was refused by "
    "moderation (code moderation_blocked).",
    401: "No API key, or a wrong one (when the server has keys).",
    404: "An unknown model (code model_not_found).",
    413: "A body, a file or an image URL over its size limit (code file_too_large).",
    429: "The queue is full or a per-key limit is reached; Retry-After says when to retry.",
    500: "An internal error; the message names the request id for the server's log.",
    503: "The model failed or ran out of memory; x-should-retry says whether a retry can help.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers these error statuses."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


def streamed(description: str, prefix: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route that answers JSON, or server-sent events with stream=true: each event
    named after its JSON `type` (`error` for an error envelope), its JSON on one `data:` line."""
    names = [f"{prefix}.partial_image", f"{prefix}.completed", "error"]
    event = {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": names},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
    }
    return {
        200: {
            "description": description,
            "content": {
                "text/event-stream": {
                    "schema": event,
                    "description": "With stream=true: partial_image and completed events.",
                }
            },
        }
    }


_IMAGE_FILE = {"type": "string", "format": "binary"}
_IMAGE_REFERENCE = {
    "type": "object",
    "properties": {"image_url": {"type": "string", "description": "A base64 data: URL."}},
    "required": ["image_url"],
}


def _fields(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema["properties"], schema.get("$defs", {})


def edit_body() -> dict[str, Any]:
    """The request body of /v1/images/edits: multipart (the official clients) or JSON."""
    properties, _ = _fields(CreateImageEditRequest)
    multipart = {
        "type": "object",
        "required": ["image", "prompt"],
        "properties": {
            "image": {
                "description": "The image(s) to edit: PNG, JPEG or WebP, up to 16, as `image` "
                "or repeated `image[]` parts.",
                "anyOf": [_IMAGE_FILE, {"type": "array", "items": _IMAGE_FILE, "maxItems": 16}],
            },
            "mask": {**_IMAGE_FILE, "description": "A PNG whose transparent pixels are edited."},
            "markup": {**_IMAGE_FILE, "description": "A transparent PNG drawn over the image."},
            **properties,
        },
    }
    json = {
        "type": "object",
        "required": ["images", "prompt"],
        "properties": {
            "images": {"type": "array", "items": _IMAGE_REFERENCE, "minItems": 1, "maxItems": 16},
            "mask": _IMAGE_REFERENCE,
            "markup": _IMAGE_REFERENCE,
            **properties,
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": json},
            },
        }
    }


def variation_body() -> dict[str, Any]:
    properties, _ = _fields(CreateImageVariationRequest)
    schema = {
        "type": "object",
        "required": ["image"],
        "properties": {"image": {**_IMAGE_FILE, "description": "A square PNG."}, **properties},
    }
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def install_openapi(app: FastAPI) -> None:
    """Serve the document without FastAPI's 422 (validation errors are 400s here), with the
    schemas the hand-written bodies refer to, and bearer-key authentication declared."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in (CreateImageEditRequest, CreateImageVariationRequest):
            schemas.update(_fields(model)[1])
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if path.startswith("/v1/"):
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]
