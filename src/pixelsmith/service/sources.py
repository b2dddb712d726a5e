"""The input images of edits and variations: how many a model takes, the dall-e-2 format,
markup drawn over the first, and the job and output on them at the planned size."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageChops

from pixelsmith.api.protocol import CreateImageEditRequest
from pixelsmith.engine import GenerationJob, ModelCapabilities
from pixelsmith.engine.jobs import JobKind
from pixelsmith.errors import InvalidRequestError
from pixelsmith.service.inputs import DALL_E_2_MAX_BYTES, UploadedImage, read_image
from pixelsmith.service.plans import OutputOptions, SourceImage, Target
from pixelsmith.sizes import ImageSize

# Image-to-image strength (how far the result may move from the input) by input_fidelity.
EDIT_STRENGTH: dict[tuple[str, str], float] = {
    ("image-to-image", "low"): 0.75,
    ("image-to-image", "high"): 0.5,
    ("inpaint", "low"): 1.0,
    ("inpaint", "high"): 0.85,
}
# A markup's strokes are part of the picture to redraw: less freedom than a plain
# image-to-image edit, so that they stay where they were drawn and become what they show.
MARKUP_STRENGTH = {"low": 0.6, "high": 0.45}


def check_image_count(
    count: int, target: Target, capabilities: ModelCapabilities | None, param: str
) -> None:
    """Before any image is decoded: at least one, no more than the name allows, and no more
    than the serving model reads (when known: a model loaded on demand is checked as it
    runs)."""
    if count == 0:
        raise InvalidRequestError(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    allowed = target.rules.max_input_images
    if count > allowed:
        raise InvalidRequestError(
            f"model {target.described} takes {allowed} input image"
            f"{'s' if allowed > 1 else ''}; got {count}.",
            param=param,
            code="too_many_images",
        )
    if capabilities is not None and count > 1 + capabilities.references:
        raise too_many_images(target, count, 1 + capabilities.references, param)


def too_many_images(
    target: Target, count: int, allowed: int, param: str = "image"
) -> InvalidRequestError:
    """The serving model reads fewer images: it is named, not the name the client used."""
    # UNet families can read further images through an IP-Adapter; others cannot.
    unet = target.spec.family in ("stable-diffusion", "stable-diffusion-xl")
    why = " (configure an ip_adapter to read further images)" if allowed == 1 and unet else ""
    return InvalidRequestError(
        f"model {target.spec.id} takes {allowed} input image{'s' if allowed > 1 else ''}; "
        f"got {count}{why}.",
        param=param,
        code="too_many_images",
    )


def checked_source(image: UploadedImage, target: Target, param: str) -> UploadedImage:
    if target.rules.family == "dall-e-2":
        width, height = image.image.size
        if image.format != "png" or width != height or image.size_bytes >= DALL_E_2_MAX_BYTES:
            raise InvalidRequestError(
                f"Invalid file '{param}': dall-e-2 takes one square PNG under 4 MB; got a "
                f"{width}x{height} {image.format.upper()} of {image.size_bytes / 1e6:.1f} MB.",
                param=param,
                code="invalid_image_format",
            )
    return image


def with_markup(
    data: bytes, first: UploadedImage, mask: Image.Image | None, target: Target
) -> UploadedImage:
    """The first image with the markup (a transparent PNG of the same size, after EXIF
    orientation) drawn over it."""
    if not target.rules.markup:
        raise InvalidRequestError(
            f"markup is not supported for model {target.described} (it is for gpt-image-2.5 "
            "and later, and the server's own model ids).",
            param="markup",
            code="unsupported_parameter",
        )
    if mask is not None:
        raise InvalidRequestError(
            "markup cannot be combined with mask: send one or the other.",
            param="markup",
            code="unsupported_parameter",
        )
    markup = read_image(data, param="markup")
    if markup.format != "png" or not markup.has_alpha:
        raise InvalidRequestError(
            "Invalid file 'markup': the markup must be a PNG with an alpha channel.",
            param="markup",
            code="invalid_image_format",
        )
    if markup.image.size != first.image.size:
        raise InvalidRequestError(
            f"Invalid file 'markup': it is {markup.image.width}x{markup.image.height} but the "
            f"first image is {first.image.width}x{first.image.height}; they must be the same "
            "size.",
            param="markup",
            code="invalid_image_dimensions",
        )
    if markup.image.getchannel("A").getextrema()[0] == 255:
        raise InvalidRequestError(
            "Invalid file 'markup': it has no transparent pixels; draw the marks on a "
            "transparent layer.",
            param="markup",
            code="invalid_image_format",
        )
    drawn = Image.alpha_composite(first.image.convert("RGBA"), markup.image)
    return replace(first, image=drawn if first.has_alpha else drawn.convert("RGB"))


def edit_source(
    first: UploadedImage,
    mask: Image.Image | None,
    target: Target,
    request: CreateImageEditRequest,
    *,
    marked_up: bool = False,
) -> SourceImage:
    """How the edit treats its first image: inpainting with a mask, image-to-image without."""
    if mask is None and target.rules.family == "dall-e-2" and first.has_alpha:
        # dall-e-2 edits without a mask use the image's own transparency as the mask.
        mask = first.image.getchannel("A").point(lambda value: 255 if value == 0 else 0)
    kind: JobKind = "inpaint" if mask is not None else "image-to-image"
    fidelity = request.input_fidelity or "low"
    strength = MARKUP_STRENGTH[fidelity] if marked_up else EDIT_STRENGTH[(kind, fidelity)]
    return SourceImage(first, kind, strength, mask, keeps_alpha=request.background != "opaque")


def with_source(
    job: GenerationJob, output: OutputOptions, source: SourceImage, size: ImageSize
) -> tuple[GenerationJob, OutputOptions]:
    """The job on the source image at the size it is made at, and for the answer at the
    size asked for: the input's alpha channel for outputs that keep it, and, when the two
    sizes differ, the input and mask an inpainting keeps outside the mask."""
    made_at = (job.width, job.height)
    dimensions = (size.width, size.height)
    image = source.image.image
    mask = source.mask

    def mask_at(where: tuple[int, int]) -> Image.Image | None:
        return mask.resize(where, Image.Resampling.NEAREST) if mask else None

    kept_mask = mask_at(dimensions)
    if made_at[0] >= dimensions[0] and made_at[1] >= dimensions[1]:
        # Made on a larger grid size and cut back to the centre: the input at the size asked
        # for, in the centre of a canvas of the grid size, so that the cut gives back exactly
        # its area (the margin repeats its edges and is never repainted).
        init_image = _centred(_resized(image.convert("RGB"), dimensions), made_at)
        job_mask = _centred(kept_mask, made_at, fill=0) if kept_mask else None
    else:  # a grid size below the size asked for (the model's largest side): scaled both ways
        init_image, job_mask = _resized(image.convert("RGB"), made_at), mask_at(made_at)
    job = replace(job, init_image=init_image, mask=job_mask, strength=source.strength)
    if made_at != dimensions and kept_mask is not None:
        output = replace(output, kept=(_resized(image.convert("RGB"), dimensions), kept_mask))
    alpha = None
    if source.keeps_alpha and source.image.has_alpha and output.format != "jpeg":
        alpha = image.getchannel("A")
        if mask is not None:
            # Whatever is repainted is opaque, transparent holes included (dall-e-2 edits
            # fill the image's transparent area).
            alpha = ImageChops.lighter(alpha, mask)
        if alpha.getextrema()[0] == 255:
            alpha = None  # an alpha channel with nothing transparent in it
        else:
            alpha = _resized(alpha, dimensions)
    return job, replace(output, keep_alpha=alpha)


def _centred(image: Image.Image, size: tuple[int, int], fill: int | None = None) -> Image.Image:
    """`image` in the centre of a `size` canvas: its edge pixels repeated outwards, or `fill`."""
    if image.size == size:
        return image
    left, top = (size[0] - image.width) // 2, (size[1] - image.height) // 2
    if fill is not None:
        canvas = Image.new(image.mode, size, fill)
        canvas.paste(image, (left, top))
        return canvas
    pixels = np.asarray(image)
    right, bottom = size[0] - image.width - left, size[1] - image.height - top
    padding = ((top, bottom), (left, right)) + ((0, 0),) * (pixels.ndim - 2)
    return Image.fromarray(np.pad(pixels, padding, mode="edge"))


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)
