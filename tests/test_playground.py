"""The playground page in a real browser: Debian's chromium driven by Playwright, against a
server on 127.0.0.1 with the tiny model."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import RunningServer
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pixelsmith.app import create_app
from pixelsmith.engine import Engine
from pixelsmith.settings import Settings

CHROMIUM = "/usr/bin/chromium"


class RecordingEdits:
    """Wraps the app and keeps the raw body of every edit request: what the browser really
    sent (Chromium does not expose multipart bodies with files to Playwright)."""

    def __init__(self, app) -> None:
        self.app = app
        self.edits: list[tuple[str, bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/images/edits":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        headers = dict(scope["headers"])

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    content_type = headers.get(b"content-type", b"").decode()
                    self.edits.append((content_type, b"".join(chunks)))
            return message

        await self.app(scope, recording_receive, send)


@pytest.fixture(scope="module")
def recorder(tiny_settings: Settings, tiny_engine: Engine) -> RecordingEdits:
    return RecordingEdits(create_app(tiny_settings, engine=tiny_engine))


@pytest.fixture(scope="module")
def playground_server(recorder: RecordingEdits) -> Iterator[RunningServer]:
    with RunningServer(recorder) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Browser, playground_server: RunningServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.goto(f"{playground_server.base_url}/")  # redirects to /playground
    expect(opened.locator("body[data-ready=true]")).to_be_attached()
    expect(opened.locator("#model option[value='gpt-image-1']")).to_be_attached()
    yield opened
    context.close()
    assert not problems, problems  # no JavaScript errors


def test_root_redirects_to_a_page_that_loads_only_from_this_server(playground_server):
    response = httpx.get(f"{playground_server.base_url}/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "playground"
    page = httpx.get(f"{playground_server.base_url}/playground")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{playground_server.base_url}/playground/static/playground.js")
    assert script.status_code == 200 and "v1/images/generations" in script.text


def test_generate_shows_previews_then_the_image_with_its_seed(page: Page):
    page.fill("#prompt", "a lighthouse at dusk")
    page.fill("#size", "128x128")
    page.fill("#seed", "42")
    page.select_option("#quality", "high")  # 4 steps for the tiny model: room for 2 previews
    page.select_option("#partial-images", "2")
    page.click("#submit")
    result = page.locator("#results figure.result")
    expect(result).to_have_count(1)
    expect(result).to_have_attribute("data-seed", "42")
    expect(page.locator("#previews img.preview")).to_have_count(2)
    source = result.locator("img").get_attribute("src") or ""
    assert source.startswith("data:image/png;base64,")
    expect(result.locator("a[download]")).to_have_attribute("download", "pixelsmith-42.png")
    # The image really decoded in the browser at the requested size.
    width = result.locator("img").evaluate("image => image.naturalWidth")
    assert width == 128


def test_without_previews_the_json_answer_is_shown(page: Page):
    page.fill("#prompt", "a red fox")
    page.fill("#size", "64x64")
    page.fill("#n", "2")
    page.select_option("#partial-images", "0")
    page.click("#submit")
    expect(page.locator("#results figure.result")).to_have_count(2)
    expect(page.locator("#previews img")).to_have_count(0)


def test_an_invalid_size_shows_the_api_error_and_its_parameter(page: Page):
    page.fill("#prompt", "a red fox")
    page.fill("#size", "999x999")
    page.click("#submit")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text("999x999")
    expect(page.locator("#error-param")).to_have_text("parameter: size")
    expect(page.locator("#results figure")).to_have_count(0)


def test_the_api_key_stays_in_the_browser_and_is_sent_as_bearer(page: Page):
    page.click("summary")
    page.fill("#api-key", "sk-local-test")
    page.locator("#api-key").dispatch_event("change")
    # Kept for this tab only: no other page of the origin (the API docs) can read it.
    assert page.evaluate("sessionStorage.getItem('pixelsmith.apiKey')") == "sk-local-test"
    assert page.evaluate("localStorage.length") == 0
    page.fill("#prompt", "a cat")
    page.fill("#size", "64x64")
    page.select_option("#partial-images", "0")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    assert request.value.headers["authorization"] == "Bearer sk-local-test"


def _multipart_files(body: bytes, content_type: str) -> dict[str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def test_a_painted_mask_is_sent_with_the_edit_and_matches_the_strokes(
    page: Page, recorder: RecordingEdits, tmp_path: Path
):
    source = tmp_path / "photo.png"
    Image.new("RGB", (256, 256), (30, 120, 200)).save(source)
    page.check("input[name=mode][value=edit]")
    page.set_input_files("#image-file", str(source))
    canvas = page.locator("#edit-canvas")
    expect(canvas).to_have_attribute("width", "256")
    page.locator("#brush-size").fill("20")
    box = canvas.bounding_box()
    assert box is not None
    # One horizontal stroke across the middle, from x=40 to x=200 at y=128.
    page.mouse.move(box["x"] + 40, box["y"] + 128)
    page.mouse.down()
    for x in range(40, 201, 10):
        page.mouse.move(box["x"] + x, box["y"] + 128)
    page.mouse.up()
    page.fill("#prompt", "a red stripe")
    page.fill("#size", "auto")
    page.select_option("#partial-images", "0")
    page.click("#submit")
    result = page.locator("#results figure.result")
    expect(result).to_have_count(1)
    content_type, body = recorder.edits[-1]
    files = _multipart_files(body, content_type)
    mask = np.asarray(Image.open(io.BytesIO(files["mask"])).convert("RGBA"))[..., 3]
    assert mask.shape == (256, 256)
    assert (mask[128, 50:190] == 0).all()  # painted: to be repainted
    assert (mask[100, :] == 255).all() and (mask[156, :] == 255).all()  # 10 px brush radius
    assert (mask[128, :25] == 255).all() and (mask[128, 215:] == 255).all()
    assert files["prompt"] == b"a red stripe"
    # The server kept the unpainted pixels exactly.
    source_url = result.locator("img").get_attribute("src") or ""
    edited = Image.open(io.BytesIO(base64.b64decode(source_url.split(",", 1)[1]))).convert("RGB")
    assert edited.getpixel((128, 20)) == (30, 120, 200)


def test_screenshot_for_the_docs(page: Page, tmp_path: Path):
    """Renders the page as docs/playground.png shows it; the docs copy is refreshed with
    UPDATE_PLAYGROUND_SCREENSHOT=1."""
    import os

    page.fill("#prompt", "a lighthouse on a cliff at dusk, oil painting")
    page.fill("#size", "256x256")
    page.fill("#seed", "7")
    page.fill("#n", "2")
    page.click("#submit")
    expect(page.locator("#results figure.result")).to_have_count(2)
    target = tmp_path / "playground.png"
    if os.environ.get("UPDATE_PLAYGROUND_SCREENSHOT"):
        target = Path(__file__).resolve().parents[1] / "docs" / "playground.png"
    page.screenshot(path=str(target), full_page=True)
    with Image.open(target) as shot:
        assert shot.size[0] == 1200


def test_strokes_on_a_wide_image_land_where_they_are_drawn_and_no_strokes_send_no_mask(
    page: Page, recorder: RecordingEdits, tmp_path: Path
):
    source = tmp_path / "wide.png"
    Image.new("RGB", (1024, 512), (30, 120, 200)).save(source)
    page.check("input[name=mode][value=edit]")
    page.set_input_files("#image-file", str(source))
    canvas = page.locator("#edit-canvas")
    expect(canvas).to_have_attribute("width", "512")
    page.fill("#prompt", "a meadow")
    page.fill("#size", "auto")
    page.select_option("#partial-images", "0")
    # Nothing painted: no mask, the whole image is redrawn.
    page.click("#submit")
    expect(page.locator("#results figure.result")).to_have_count(1)
    content_type, body = recorder.edits[-1]
    assert "mask" not in _multipart_files(body, content_type)
    # The form column shows the canvas narrower than its 512-pixel buffer.
    box = canvas.bounding_box()
    assert box is not None and box["width"] < 512
    scale = box["width"] / 1024  # screen pixels per image pixel
    page.mouse.move(box["x"] + 200 * scale, box["y"] + 256 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 800 * scale, box["y"] + 256 * scale, steps=12)
    page.mouse.up()
    page.click("#submit")
    expect(page.locator("#results figure.result")).to_have_count(1)
    content_type, body = recorder.edits[-1]
    mask = np.asarray(Image.open(io.BytesIO(_multipart_files(body, content_type)["mask"])))
    alpha = mask[..., 3]
    assert alpha.shape == (512, 1024)
    assert (alpha[256, 220:780] == 0).all()  # under the stroke, in image pixels
    assert (alpha[256, :150] == 255).all() and (alpha[256, 850:] == 255).all()
    assert (alpha[150, :] == 255).all()
