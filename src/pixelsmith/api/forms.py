"""Reading the multipart and JSON bodies of edits and variations into wire models and images.

The official clients send files as `image`, as repeated `image[]` (even for a list of one) and
the mask as `mask`; text fields arrive as strings ("true", "2") and are converted here, then
validated by the same pydantic models as JSON, so errors read alike.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

from pixelsmith.api.fetch import ImageFetcher
from pixelsmith.api.uploads import MAX_UPLOAD_BYTES, PayloadTooLargeError
from pixelsmith.errors import InvalidRequestError

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_IMAGES = 16
# Field types the multipart strings are converted to before validation.
_INTEGER_FIELDS = {"n", "output_compression", "partial_images", "seed", "num_inference_steps"}
_NUMBER_FIELDS = {"guidance_scale"}
_BOOLEAN_FIELDS = {"stream"}


def validate(model: type[ModelT], fields: dict[str, Any]) -> ModelT:
    """Validate like FastAPI does for JSON bodies, so errors get the same 400 envelope."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _convert(name: str, value: str) -> Any:
    try:
        if name in _INTEGER_FIELDS:
            return int(value)
        if name in _NUMBER_FIELDS:
            return float(value)
    except ValueError:
        return value  # left as text: validation reports the wrong type with its name
    if name in _BOOLEAN_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


async def read_form_files(
    form: FormData, names: tuple[str, ...]
) -> tuple[dict[str, list[bytes]], dict[str, Any]]:
    """Split a form into files (by base name: `image` and `image[]` are one list) and text."""
    files: dict[str, list[bytes]] = {}
    text: dict[str, Any] = {}
    for key, value in form.multi_items():
        base = key.removesuffix("[]")
        if base in names:
            if not isinstance(value, UploadFile):
                raise InvalidRequestError(
                    f"Invalid type for '{base}': expected a file, but got a string instead.",
                    param=base,
                    code="invalid_type",
                )
            if value.size is not None and value.size > MAX_UPLOAD_BYTES:
                raise PayloadTooLargeError(
                    f"Invalid file '{base}': {value.size / 1e6:.1f} MB is over the "
                    f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit.",
                    param=base,
                )
            files.setdefault(base, []).append(await value.read())
            if len(files[base]) > MAX_IMAGES:
                raise InvalidRequestError(
                    f"Too many files for '{base}': at most {MAX_IMAGES}.",
                    param=base,
                    code="too_many_images",
                )
        elif isinstance(value, UploadFile):
            raise InvalidRequestError(
                f"Unknown file parameter: '{key}'.", param=key, code="unknown_parameter"
            )
        else:
            text[key] = _convert(key, value)
    return files, text


# OpenAI's limit for `image_url` (a URL or a base64 data: URL) in JSON edits.
MAX_IMAGE_URL_CHARS = 20_971_520


async def image_ref_bytes(reference: Any, param: str, fetcher: ImageFetcher | None) -> bytes:
    """The bytes of a JSON `{"image_url": ...}` reference: a base64 data: URL, or an http(s)
    URL when the operator turned fetching on (`fetcher`); see fetch.py for its safeguards."""
    if not isinstance(reference, dict) or set(reference) - {"image_url", "file_id"}:
        raise InvalidRequestError(
            f"Invalid '{param}': expected an object with 'image_url'.",
            param=param,
            code="invalid_type",
        )
    if "file_id" in reference:
        raise InvalidRequestError(
            f"Invalid '{param}': file_id references are not supported; send image_url.",
            param=param,
            code="unsupported_value",
        )
    url = reference.get("image_url")
    if not isinstance(url, str):
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.image_url'.",
            param=f"{param}.image_url",
            code="missing_required_parameter",
        )
    if len(url) > MAX_IMAGE_URL_CHARS:
        raise InvalidRequestError(
            f"Invalid '{param}.image_url': {len(url)} characters is over the limit of "
            f"{MAX_IMAGE_URL_CHARS}.",
            param=f"{param}.image_url",
            code="string_above_max_length",
        )
    header, _, data = url.partition(",")
    if url.startswith(("http://", "https://")):
        if fetcher is None:
            raise InvalidRequestError(
                f"Invalid '{param}.image_url': fetching image URLs is disabled on this server; "
                "send the image as a base64 data: URL.",
                param=f"{param}.image_url",
                code="unsupported_value",
            )
        return await fetcher.fetch(url, param=f"{param}.image_url")
    if not (header.startswith("data:") and header.endswith(";base64") and data):
        raise InvalidRequestError(
            f"Invalid '{param}.image_url': expected a base64 data: URL.",
            param=f"{param}.image_url",
            code="invalid_image_url",
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"Invalid '{param}.image_url': the data is not valid base64.",
            param=f"{param}.image_url",
            code="invalid_image_url",
        ) from None
