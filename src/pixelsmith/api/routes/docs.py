"""The API documentation pages, `/docs` (Swagger UI) and `/redoc`, with their assets served by
this server: they work on a machine with no network. The assets come from the
`fastapi-offline` package (MIT; Swagger UI and ReDoc, each under its own licence), which ships
them for exactly this; the pages are FastAPI's own, pointed at them."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
FAVICON = Path(__file__).resolve().parents[2] / "web" / "favicon.png"
TITLE = "pixelsmith API"
# Relative URLs, like the playground's: the pages work behind a proxy that mounts the server
# under a path prefix.
OPENAPI_URL = "openapi.json"
ASSETS_URL = "docs/assets"

router = APIRouter(include_in_schema=False)


def _inline_script_hashes(html: str) -> str:
    """CSP sources for the page's inline scripts (the few lines that start the viewer), so
    that no other inline script can run."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in scripts
    )


def _policy(html: str) -> str:
    # The viewers set style attributes (hence 'unsafe-inline' for styles only), draw icons from
    # data: URLs, and ReDoc searches in a worker it makes from a blob.
    return (
        f"default-src 'self'; script-src 'self' {_inline_script_hashes(html)}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
        "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def _page(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    return HTMLResponse(
        html,
        headers={
            "content-security-policy": _policy(html),
            "x-content-type-options": "nosniff",
            "cache-control": "no-cache",
        },
    )


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return _page(
        get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=TITLE,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url="favicon.ico",
        )
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return _page(
        get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=TITLE,
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url="favicon.ico",
            with_google_fonts=False,
        )
    )


@router.get("/favicon.ico")
async def favicon() -> Response:
    return FileResponse(FAVICON, media_type="image/png", headers={"cache-control": "max-age=86400"})


def assets() -> StaticFiles:
    return StaticFiles(directory=ASSETS_DIR)
