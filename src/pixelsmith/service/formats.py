"""How a request's images are returned: format, compression, transparency, streaming, GIF and
SVG, and the legacy parameters that later names refuse."""

from __future__ import annotations

import importlib.util

from pixelsmith.errors import InvalidRequestError
from pixelsmith.imaging import OutputFormat
from pixelsmith.service.plans import AskedFor, OutputOptions, SourceImage, Target

# GIF's delay field counts hundredths of a second in 16 bits.
MAX_FRAME_MS = 655_350
SVG_TRACER = "vtracer"


def output_options(asked: AskedFor, target: Target, source: SourceImage | None) -> OutputOptions:
    output_format: OutputFormat = asked.output_format or "png"
    compression = asked.output_compression if asked.output_compression is not None else 100
    if output_format in ("gif", "svg"):
        _check_animated_or_vector(output_format, asked, target, source)
    elif output_format == "png" and compression != 100:
        raise InvalidRequestError(
            "output_compression is only supported with output_format 'jpeg' or 'webp'; "
            f"got output_format 'png' with output_compression {compression}.",
            param="output_compression",
            code="invalid_value",
        )
    for name in ("frame_count", "frame_duration_ms"):
        if getattr(asked, name) is not None and output_format != "gif":
            raise InvalidRequestError(
                f"{name} is only supported with output_format 'gif'.",
                param=name,
                code="unsupported_parameter",
            )
    if asked.svg is not None and output_format != "svg":
        raise InvalidRequestError(
            "svg is only supported with output_format 'svg'.",
            param="svg",
            code="unsupported_parameter",
        )
    transparent = asked.background == "transparent"
    if transparent and target.rules.legacy:
        raise InvalidRequestError(
            f"background is only supported for GPT image models, not {target.described}.",
            param="background",
            code="unsupported_parameter",
        )
    if transparent and output_format not in ("png", "webp"):
        raise InvalidRequestError(
            "background 'transparent' requires output_format 'png' or 'webp', whose images "
            f"carry an alpha channel; got '{output_format}'.",
            param="background",
            code="invalid_value",
        )
    duration = asked.frame_duration_ms if asked.frame_duration_ms is not None else 200
    effort = asked.svg.reasoning.effort if asked.svg and asked.svg.reasoning else None
    return OutputOptions(
        format=output_format,
        compression=compression,
        response_format=asked.response_format or target.rules.default_response_format,
        transparent=transparent,
        # OpenAI rounds to the nearest 10 ms and caps GIF's delay field (in 10 ms units).
        frame_duration_ms=min(MAX_FRAME_MS, max(10, (duration + 5) // 10 * 10)),
        svg_effort=effort or "medium",
    )


def check_streaming(asked: AskedFor, target: Target) -> None:
    if asked.stream and target.rules.legacy:
        raise InvalidRequestError(
            f"stream is only supported for GPT image models, not {target.described}.",
            param="stream",
            code="unsupported_parameter",
        )
    if asked.stream and asked.response_format == "url":
        raise InvalidRequestError(
            "response_format 'url' cannot be streamed: stream events carry b64_json. Omit "
            "response_format or send stream=false.",
            param="response_format",
            code="unsupported_value",
        )


def check_legacy(asked: AskedFor, target: Target) -> None:
    """response_format=url and style are legacy parameters of the retired models, which
    gpt-image-2 and later refuse; the older GPT names keep taking them here."""
    if not target.rules.refuses_legacy:
        return
    if asked.response_format == "url":
        raise InvalidRequestError(
            f"response_format 'url' is not supported for model {target.described}: GPT "
            "image models always return base64 (b64_json). It is a legacy parameter of the "
            "retired dall-e models.",
            param="response_format",
            code="unsupported_parameter",
        )
    if asked.style is not None:
        raise InvalidRequestError(
            f"style is not supported for model {target.described}: describe the style in "
            "the prompt. It is a legacy parameter of the retired dall-e-3.",
            param="style",
            code="unsupported_parameter",
        )


def _check_animated_or_vector(
    output_format: str, asked: AskedFor, target: Target, source: SourceImage | None
) -> None:
    """What GIF and SVG output leave out: streams, partial images, output_compression; GIF
    masks (and, here, every edit), SVG more than one image; SVG needs its tracer."""
    if not target.rules.animated_and_vector:
        raise InvalidRequestError(
            f"output_format '{output_format}' is only supported for GPT image models, not "
            f"{target.described}.",
            param="output_format",
            code="unsupported_value",
        )
    # "Custom" output_compression: 100, the default, is no compression to refuse.
    custom = asked.output_compression not in (None, 100)
    excluded = [("stream", asked.stream), ("partial_images", asked.partial_images is not None),
                ("output_compression", custom)]  # fmt: skip
    if output_format == "gif":
        excluded.append(("mask", source is not None and source.mask is not None))
    else:
        excluded.append(("n", (asked.n or 1) > 1))
    for param, present in excluded:
        if present:
            what = "more than one image" if param == "n" else param
            raise InvalidRequestError(
                f"output_format '{output_format}' does not support {what}.",
                param=param,
                code="unsupported_parameter",
            )
    if output_format == "gif" and source is not None:
        raise InvalidRequestError(
            f"output_format 'gif' is supported for generations; model {target.spec.id} cannot "
            "animate an edit.",
            param="output_format",
            code="unsupported_value",
        )
    if output_format == "svg":
        author = asked.svg.model if asked.svg else None
        if author not in (None, SVG_TRACER):
            raise InvalidRequestError(
                f"svg.model must be '{SVG_TRACER}', the tracer this server offers; got '{author}'.",
                param="svg.model",
                code="invalid_value",
            )
        if importlib.util.find_spec("vtracer") is None:
            raise InvalidRequestError(
                "output_format 'svg' needs the vtracer package on this server "
                "(pip install 'pixelsmith[svg]').",
                param="output_format",
                code="unsupported_value",
            )
