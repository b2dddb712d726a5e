"""The playground: a static page that calls the public API from the browser. No build step:
the HTML, CSS and JavaScript ship inside the package (pixelsmith/web)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# The page talks only to this server and loads nothing from elsewhere; images arrive as data:
# URLs. Injected content could not send an API key typed into it to another origin. (The key
# itself is kept in the tab's sessionStorage, which other pages of the origin cannot read.)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

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


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)
