"""Reading the multipart and JSON bodies of edits and variations into wire models and the
images' bytes, which the service decodes once it has checked the request.

The official clients send files as `image`, as repeated `image[]` (even for a list of one) and
the mask as `mask`; text fields arrive as strings ("true", "2") and are converted here, then
validated by the same pydantic models as JSON, so errors read alike. JSON edits name their
images as `{"image_url": ...}` objects: base64 data: URLs, or http(s) URLs when the operator
turned fetching on (fetch.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from pixelsmith.api.protocol import CreateImageEditRequest, CreateImageVariationRequest
from pixelsmith.api.transport.fetch import ImageFetcher
from pixelsmith.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, shown
from pixelsmith.service.inputs import MAX_UPLOAD_BYTES, InputImages, decode_data_url

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_IMAGES = 16  # files per field in one body: a transport limit, far above any model's
# Field types the multipart strings are converted to before validation.
_INTEGER_FIELDS = {
    "n", "output_compression", "partial_images", "seed", "num_inference_steps", "frame_count",
    "frame_duration_ms",
}  # fmt: skip
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
            _put(text, key, value)
    return files, text


def _put(fields: dict[str, Any], key: str, value: str) -> None:
    """A text field into `fields`; bracketed keys nest, as the clients flatten objects:
    `svg[reasoning][effort]` is `fields["svg"]["reasoning"]["effort"]`."""
    name, *inner = key.replace("]", "").split("[")
    if not inner:
        fields[key] = _convert(key, value)
        return
    place = fields.setdefault(name, {})
    for part in inner[:-1]:
        if not isinstance(place, dict):
            break
        place = place.setdefault(part, {})
    if not isinstance(place, dict):
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected an object.", param=name, code="invalid_type"
        )
    place[inner[-1]] = value


# OpenAI's limit for `image_url` (a URL or a base64 data: URL) in JSON edits.
MAX_IMAGE_URL_CHARS = 20_971_520


# The bytes of a file uploaded through the Files API, by id, for the caller's own files.
FileReader = Callable[[str], Awaitable[bytes]]


async def image_ref_bytes(
    reference: Any, param: str, fetcher: ImageFetcher | None, files: FileReader | None = None
) -> bytes:
    """The bytes of a JSON `{"image_url": ...}` or `{"file_id": ...}` reference: a base64
    data: URL, an http(s) URL when the operator turned fetching on (`fetcher`; see fetch.py
    for its safeguards), or an uploaded file of the caller's (`files`)."""
    if not isinstance(reference, dict) or set(reference) - {"image_url", "file_id"}:
        raise InvalidRequestError(
            f"Invalid '{param}': expected an object with 'image_url' or 'file_id'.",
            param=param,
            code="invalid_type",
        )
    if "file_id" in reference:
        file_id = reference["file_id"]
        if files is None or not isinstance(file_id, str):
            raise InvalidRequestError(
                f"Invalid '{param}.file_id': expected the id of an uploaded file.",
                param=f"{param}.file_id",
                code="invalid_value",
            )
        try:
            return await files(file_id)
        except NotFoundError:
            raise InvalidRequestError(
                f"Invalid '{param}.file_id': no such file: {shown(file_id)}.",
                param=f"{param}.file_id",
                code="invalid_value",
            ) from None
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
    if url.startswith(("http://", "https://")):
        if fetcher is None:
            raise InvalidRequestError(
                f"Invalid '{param}.image_url': fetching image URLs is disabled on this server; "
                "send the image as a base64 data: URL.",
                param=f"{param}.image_url",
                code="unsupported_value",
            )
        return await fetcher.fetch(url, param=f"{param}.image_url")
    return decode_data_url(url, f"{param}.image_url")


# A text field of a form (a prompt is at most 32,000 characters): Starlette's default.
MAX_TEXT_PART_BYTES = 1024 * 1024


async def read_form(request: Request, *, max_fields: int) -> FormData:
    """The multipart form, with Starlette's limits (files, fields, text size) answered in the
    envelope and naming the part that broke them. Our own limit on images (MAX_IMAGES per
    field) is checked after, with its own error; Starlette's file limit is far above it."""
    parser = MultiPartParser(
        request.headers,
        request.stream(),
        max_files=4 * MAX_IMAGES,
        max_fields=max_fields,
        max_part_size=MAX_TEXT_PART_BYTES,
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        # The part being read when the limit was hit (a private attribute: None if it moves).
        part = getattr(getattr(parser, "_current_part", None), "field_name", "") or None
        param = shown(part.removesuffix("[]"), 128) if part else None
        raise InvalidRequestError(
            f"Invalid multipart body: {exc.message}", param=param, code="invalid_multipart"
        ) from None


async def read_edit(
    request: Request, fetcher: ImageFetcher | None, files: FileReader | None = None
) -> tuple[CreateImageEditRequest, InputImages]:
    """An edit's fields and images, from multipart (the official clients) or JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_fields=64)
        try:
            uploads, fields = await read_form_files(form, ("image", "mask", "markup"))
        finally:
            await form.close()
        images, param = uploads.get("image", []), "image"
        masks, markups = uploads.get("mask", []), uploads.get("markup", [])
    elif content_type.startswith("application/json"):
        return await json_edit(_json_object(await request.body()), fetcher, files)
    else:
        raise InvalidRequestError(
            "Send edits as multipart/form-data (as the official clients do) or as JSON.",
            code="invalid_content_type",
        )
    return _edit_of(fields, images, masks, markups, param)


async def json_edit(
    fields: dict[str, Any], fetcher: ImageFetcher | None, files: FileReader | None = None
) -> tuple[CreateImageEditRequest, InputImages]:
    """An edit from a JSON body (`images` as a list of references, `mask` and `markup` as
    one): the interactive route's JSON form, and the body of a batch line."""
    param = "images"
    references = fields.pop("images", None)
    if not isinstance(references, list) or not references:
        raise InvalidRequestError(
            "Missing required parameter: 'images' (a list of {\"image_url\": ...}).",
            param="images",
            code="missing_required_parameter",
        )
    if len(references) > MAX_IMAGES:  # before anything is decoded or fetched
        raise InvalidRequestError(
            f"Too many images: at most {MAX_IMAGES}.", param="images", code="too_many_images"
        )
    images = [
        await image_ref_bytes(reference, f"images[{index}]", fetcher, files)
        for index, reference in enumerate(references)
    ]
    masks: list[bytes] = []
    markups: list[bytes] = []
    for name, found in (("mask", masks), ("markup", markups)):
        reference = fields.pop(name, None)
        if reference:
            found.append(await image_ref_bytes(reference, name, fetcher, files))
    return _edit_of(fields, images, masks, markups, param)


def _edit_of(
    fields: dict[str, Any],
    images: list[bytes],
    masks: list[bytes],
    markups: list[bytes],
    param: str,
) -> tuple[CreateImageEditRequest, InputImages]:
    edit = validate(CreateImageEditRequest, fields)
    for name, found in (("mask", masks), ("markup", markups)):
        if len(found) > 1:
            raise InvalidRequestError(
                f"Too many files for '{name}': at most 1.", param=name, code="too_many_images"
            )
    inputs = InputImages(
        images=images,
        mask=masks[0] if masks else None,
        markup=markups[0] if markups else None,
        param=param,
    )
    return edit, inputs


async def read_variation(request: Request) -> tuple[CreateImageVariationRequest, bytes]:
    """A variation's fields and its one image, from multipart."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Send variations as multipart/form-data.", code="invalid_content_type"
        )
    form = await read_form(request, max_fields=32)
    try:
        files, fields = await read_form_files(form, ("image",))
    finally:
        await form.close()
    variation = validate(CreateImageVariationRequest, fields)
    if not files.get("image"):
        raise InvalidRequestError(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(files["image"]) > 1:
        raise InvalidRequestError(
            "Variations take exactly one image.", param="image", code="too_many_images"
        )
    return variation, files["image"][0]


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_type")
    return parsed
