"""The playground: a static page that calls the public API from the browser. No build step:
the HTML, CSS and JavaScript ship inside the package (pixelsmith/web).

The page learns each model name's rules (sizes, qualities, how many images, whether it can
stream, how it answers) from /playground/models.json, which is built from the server's own
rules, so the page never offers a request the server would refuse for the name alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.engine.registry import ModelRegistry
from pixelsmith.errors import InvalidRequestError
from pixelsmith.service.names import QUALITY_TIERS, rules_for
from pixelsmith.service.plans import Target
from pixelsmith.service.sizing import plan_size

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# The page talks only to this server and loads nothing from elsewhere; images arrive as data:
# URLs, or as this server's signed URLs (response_format=url, the dall-e names' default).
# Injected content could not send an API key typed into it to another origin. (The key itself
# is kept in the tab's sessionStorage, which other pages of the origin cannot read.)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# The name the page selects first when the server answers to it: today's OpenAI name, which
# takes every quality tier the page offers.
PREFERRED_NAME = "gpt-image-2.5-flare"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> Response:
    # Relative, like every URL in the page: it works behind a proxy that mounts the server
    # under a path prefix.
    return RedirectResponse("playground", status_code=307)


@router.get("/playground")
async def playground() -> Response:
    return FileResponse(
        WEB_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        },
    )


# Like the page, it needs no API key: it tells what the names' public rules are and which
# model serves each, which /health already tells anyone.
@router.get("/playground/models.json")
async def playground_models(request: Request) -> Response:
    registry: ModelRegistry = request.app.state.engine.registry
    names = registry.names()
    return JSONResponse(
        {
            "default": PREFERRED_NAME if PREFERRED_NAME in names else names[0],
            "models": [_name_rules(registry, name) for name in names],
        },
        headers={"cache-control": "no-cache"},
    )


def _name_rules(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """What the page needs to know to make a request with `name` that its rules allow."""
    spec = registry.resolve(name)
    rules = rules_for(name)
    target = Target(spec, rules, name, name)
    listed = list(rules.sizes) if rules.sizes is not None else ["auto", *map(str, spec.sizes)]
    return {
        "id": name,
        "model": spec.id,
        "family": rules.family,
        # The sizes to offer: those of the list that the server's own size check accepts for
        # this name (gpt-image-2 and later take only the serving model's sizes on their grid).
        "sizes": [size for size in listed if _size_allowed(size, target)],
        # Whether other WIDTHxHEIGHT may be typed: a name without a fixed list, on a model
        # whose family has size rules (service/sizing.py decides which).
        "other_sizes": rules.sizes is None and spec.size_rules is not None,
        "default_size": rules.default_size,
        "qualities": list(rules.qualities),
        # The steps each quality name runs (what num_inference_steps overrides).
        "steps": {
            quality: getattr(spec.steps, QUALITY_TIERS[quality]) for quality in rules.qualities
        },
        "max_n": rules.max_n,
        # The dall-e names cannot stream (400 naming `stream`), so they get no previews.
        "stream": not rules.legacy,
        "transparent": not rules.legacy,
        "default_response_format": rules.default_response_format,
        "max_prompt_chars": min(rules.max_prompt_chars, spec.max_prompt_chars),
        "guidance_scale": spec.guidance_scale,
        "max_inference_steps": spec.max_inference_steps,
    }


def _size_allowed(size: str, target: Target) -> bool:
    try:
        plan_size(size, target, None)
    except InvalidRequestError:
        return False
    return True


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)
