"""The size of a request: the one to answer with, and the one to make it at on the serving
model's grid."""

from __future__ import annotations

from pixelsmith.errors import InvalidRequestError
from pixelsmith.service.plans import Target, one_of
from pixelsmith.sizes import ImageSize, parse_size


def plan_size(
    requested: str | None, target: Target, auto: ImageSize | None
) -> tuple[ImageSize, ImageSize]:
    """(the size to answer with, the size to make it at). They differ when a name's size
    rules allow a size off the serving model's grid: it is made on the grid, covering the
    size asked for, and cut to it."""
    spec, rules = target.spec, target.rules
    if rules.size_rules is not None:
        return _open_size(requested, target, auto)
    allowed = list(rules.sizes) if rules.sizes is not None else [*map(str, spec.sizes), "auto"]
    text = requested if requested is not None else rules.default_size
    size = parse_size(text)
    if text in allowed:
        size = (auto or spec.default_size) if text == "auto" else size
        assert size is not None  # every listed size is WIDTHxHEIGHT
        return size, size
    if size is None:
        raise InvalidRequestError(
            f"size must be WIDTHxHEIGHT (e.g. 1024x1024) and one of {one_of(allowed)} for "
            f"model {target.described}; got '{text}'.",
            param="size",
            code="invalid_value",
        )
    # Beyond its list, a model whose family allows it takes any size within its rules
    # (the OpenAI names with fixed lists, dall-e-2 and dall-e-3, keep their lists).
    if rules.sizes is None and spec.size_rules is not None:
        why = spec.size_rules.problem(size.width, size.height)
        if why is None:
            return size, size
        raise InvalidRequestError(
            f"size '{text}' is not possible for model {target.described}: {why}. Sizes "
            f"{one_of(allowed)} always work.",
            param="size",
            code="invalid_value",
        )
    raise InvalidRequestError(
        f"size must be one of {one_of(allowed)} for model {target.described}; got '{text}'.",
        param="size",
        code="invalid_value",
    )


def _open_size(
    requested: str | None, target: Target, auto: ImageSize | None
) -> tuple[ImageSize, ImageSize]:
    """gpt-image-2 and later: any size the name's rules allow, within the serving model's
    limits, made on the model's grid."""
    spec, rules = target.spec, target.rules
    assert rules.size_rules is not None
    text = requested if requested is not None else rules.default_size
    if text == "auto":
        return auto or spec.default_size, auto or spec.default_size
    size = parse_size(text)
    rule = (
        "both sides divisible by 16, an aspect ratio from 1:3 to 3:1, and at most 3840x2160 pixels"
    )
    why = "it is not WIDTHxHEIGHT" if size is None else rules.size_rules.problem(*_sides(size))
    if size is None or why is not None:
        raise InvalidRequestError(
            f"size '{text}' is not possible for model {target.described}: {why}. Sizes are "
            f"auto or WIDTHxHEIGHT with {rule}.",
            param="size",
            code="invalid_value",
        )
    if spec.size_rules is None:  # a model configured with a list of sizes makes only those
        if size not in spec.sizes:
            sizes = one_of([str(listed) for listed in spec.sizes])
            raise InvalidRequestError(
                f"size '{text}' is not possible for model {target.described}: the serving "
                f"model {spec.id} makes only {sizes}.",
                param="size",
                code="invalid_value",
            )
        return size, size
    limit = spec.size_rules.problem(*_sides(size), grid=False)
    if limit is not None:
        raise InvalidRequestError(
            f"size '{text}' is not possible for model {target.described}: the serving "
            f"model {spec.id} cannot make it ({limit}).",
            param="size",
            code="invalid_value",
        )
    on_grid = spec.size_rules.problem(*_sides(size)) is None
    return size, size if on_grid else spec.size_rules.covering(size)


def _sides(size: ImageSize) -> tuple[int, int]:
    return size.width, size.height
