"""/docs and /redoc in a real browser with no network: Debian's chromium, every request that
leaves 127.0.0.1 refused. The pages must render the API from this server's assets alone, under
their Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest
from conftest import RunningServer
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def docs_server(server: RunningServer) -> RunningServer:
    return server  # the session's server: the pages are static, the engine is not needed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


class OfflinePage:
    """A page whose requests off this machine are aborted and recorded, as are its script
    errors and the console's complaints (CSP violations are reported there)."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page: Page = self.context.new_page()
        self.left: list[str] = []
        self.problems: list[str] = []
        self.context.route("**/*", self._only_local)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on(
            "console",
            lambda message: message.type == "error" and self.problems.append(message.text),
        )

    def _only_local(self, route, request) -> None:  # type: ignore[no-untyped-def]
        if urlparse(request.url).hostname in ("127.0.0.1", None) or request.url.startswith(
            ("data:", "blob:")
        ):
            route.continue_()
        else:
            self.left.append(request.url)
            route.abort()


def test_swagger_ui_renders_offline(browser: Browser, docs_server: RunningServer):
    offline = OfflinePage(browser)
    offline.page.goto(f"{docs_server.base_url}/docs")
    expect(offline.page.locator(".swagger-ui .info .title")).to_contain_text("pixelsmith")
    expect(offline.page.get_by_text("/v1/images/generations").first).to_be_visible()
    assert offline.left == [], offline.left
    assert offline.problems == [], offline.problems
    offline.context.close()


def test_redoc_renders_offline(browser: Browser, docs_server: RunningServer):
    offline = OfflinePage(browser)
    offline.page.goto(f"{docs_server.base_url}/redoc")
    expect(offline.page.locator("h1").first).to_contain_text("pixelsmith")
    expect(offline.page.get_by_text("/v1/images/generations").first).to_be_attached()
    assert offline.left == [], offline.left
    # ReDoc's "API docs by Redocly" badge is an image on Redocly's CDN: the policy keeps it
    # from loading, which is all that can be asked of it.
    badge = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [problem for problem in offline.problems if badge not in problem] == []
    offline.context.close()


def test_the_pages_carry_a_strict_policy_and_the_favicon_is_served(docs_server: RunningServer):
    page = httpx.get(f"{docs_server.base_url}/docs")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "'sha256-" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "cdn" not in page.text
    icon = httpx.get(f"{docs_server.base_url}/favicon.ico")
    assert icon.status_code == 200 and icon.content.startswith(b"\x89PNG")
