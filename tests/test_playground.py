"""The playground page in a real browser: Debian's chromium driven by Playwright, against a
server on 127.0.0.1 with the tiny model. Screenshots of each test are kept as artefacts in
test-artifacts/playground/ (git-ignored); docs/playground.png is refreshed with
UPDATE_PLAYGROUND_SCREENSHOT=1.

Every request has a fixed seed: the tiny model draws noise, and the image check blocks some
of it as it would a real picture."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import RunningServer, make_settings, pixels
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pixelsmith.app import create_app
from pixelsmith.engine import Engine
from pixelsmith.service.names import rules_for
from pixelsmith.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "playground"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
DESKTOP, PHONE, SMALLEST_PHONE = 1280, 390, 320


class RecordingEdits:
    """Wraps the app and keeps the raw body of every edit request: what the browser really
    sent (Chromium does not expose multipart bodies with files to Playwright); and counts the
    generations whose client hung up before the answer ended."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.edits: list[tuple[str, bytes]] = []
        self.hung_up = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/images/generations":
            await self._watch_hang_ups(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] != "/v1/images/edits":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        headers = dict(scope["headers"])

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    content_type = headers.get(b"content-type", b"").decode()
                    self.edits.append((content_type, b"".join(chunks)))
            return message

        await self.app(scope, recording_receive, send)

    async def _watch_hang_ups(self, scope: Any, receive: Any, send: Any) -> None:
        finished = False

        async def watching_send(message: Any) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def watching_receive() -> Any:
            message = await receive()
            nonlocal finished
            if message["type"] == "http.disconnect" and not finished:
                self.hung_up += 1
                finished = True  # the app may ask again: one hang-up per request
            return message

        await self.app(scope, watching_receive, watching_send)


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


OpenPage = Callable[..., Page]


@pytest.fixture()
def open_page(
    browser: Browser, playground_server: RunningServer, request: pytest.FixtureRequest
) -> Iterator[OpenPage]:
    """Opens the playground at a viewport width; at the end of the test it keeps a screenshot
    of each page opened and checks that none had a JavaScript error."""
    opened: list[tuple[Page, list[str], int]] = []

    def open_at(width: int = DESKTOP, height: int = 900) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            permissions=["clipboard-read", "clipboard-write"],
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        # What the page's Content-Security-Policy blocked (an inline style, a foreign image).
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text and problems.append(message.text)
            ),
        )
        page.goto(f"{playground_server.base_url}/")  # redirects to /playground
        expect(page.locator("body[data-ready=true]")).to_be_attached()
        expect(page.locator("#model option[value='gpt-image-1']")).to_be_attached()
        opened.append((page, problems, width))
        return page

    yield open_at
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = request.node.originalname
    for page, problems, width in opened:
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        page.context.close()
        assert not problems, problems  # no JavaScript errors, nothing the CSP blocked


@pytest.fixture()
def page(open_page: OpenPage) -> Page:
    return open_page()


def done_cards(page: Page) -> Any:
    return page.locator("#results figure.result.done")


def natural_width(image: Any) -> int:
    """The width the browser decoded the image at (once it has loaded, from a URL too)."""
    return int(image.evaluate("image => image.decode().then(() => image.naturalWidth)"))


def fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_root_redirects_to_a_page_that_loads_only_from_this_server(playground_server):
    response = httpx.get(f"{playground_server.base_url}/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "playground"
    page = httpx.get(f"{playground_server.base_url}/playground")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self';" in page.headers["content-security-policy"]
    script = httpx.get(f"{playground_server.base_url}/playground/static/playground.js")
    assert script.status_code == 200 and "v1/images/generations" in script.text


def test_the_model_rules_the_page_uses_are_the_servers_own(playground_server):
    body = httpx.get(f"{playground_server.base_url}/playground/models.json").json()
    models = {entry["id"]: entry for entry in body["models"]}
    assert body["default"] == "gpt-image-2.5-flare"
    for name in ("dall-e-2", "dall-e-3"):
        rules = rules_for(name)
        assert models[name]["sizes"] == list(rules.sizes or ())
        assert models[name]["other_sizes"] is False
        assert models[name]["default_size"] == "1024x1024"
        assert models[name]["stream"] is False  # the server answers stream=true with a 400
        assert models[name]["default_response_format"] == "url"
    assert models["dall-e-3"]["max_n"] == 1
    assert models["dall-e-3"]["qualities"] == ["auto", "standard", "hd"]
    # The tiny model: its own sizes, `auto`, and any other size its family's rules allow.
    assert models["tiny"]["sizes"][:3] == ["auto", "64x64", "128x128"]
    assert models["tiny"]["other_sizes"] is True and models["tiny"]["stream"] is True
    assert models["tiny"]["steps"]["high"] == 4
    refused = httpx.post(
        f"{playground_server.base_url}/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a fox", "stream": True},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "stream"


def test_the_model_rules_need_no_key_where_the_api_does(cache_dir: Path, tmp_path: Path):
    """Like the page itself: with API keys configured, the page can still offer the names."""
    app = create_app(make_settings(cache_dir, tmp_path, api_keys="sk-only"))
    with RunningServer(app) as running:
        assert httpx.get(f"{running.base_url}/v1/models").status_code == 401
        rules = httpx.get(f"{running.base_url}/playground/models.json")
        assert rules.status_code == 200 and rules.json()["models"][0]["id"] == "tiny"


def test_every_control_has_a_label(page: Page, tmp_path: Path):
    source = tmp_path / "photo.png"
    Image.new("RGB", (64, 64)).save(source)
    page.check("input[name=mode][value=edit]")
    page.set_input_files("#image-file", str(source))
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button, canvas")]
            .filter((control) => control.checkVisibility())
            .filter((control) => !(control.labels && control.labels.length)
                && !control.getAttribute("aria-label") && !control.textContent.trim())
            .map((control) => control.id || control.outerHTML)"""
    )
    assert unlabelled == []


@pytest.mark.parametrize("width", [DESKTOP, PHONE, 360, SMALLEST_PHONE])
def test_the_page_fits_the_screen_and_phones_scroll_to_the_results(
    open_page: OpenPage, width: int, tmp_path: Path
):
    page = open_page(width, 700)
    assert fits_the_screen(page)
    submit = page.locator("#submit").bounding_box()
    assert submit is not None and submit["x"] + submit["width"] <= width
    # The edit panel (canvas and tools) fits too.
    source = tmp_path / "photo.png"
    Image.new("RGB", (512, 512), (30, 120, 200)).save(source)
    page.check("input[name=mode][value=edit]")
    page.set_input_files("#image-file", str(source))
    expect(page.locator("#edit-canvas")).to_have_attribute("width", "512")
    assert fits_the_screen(page)
    page.check("input[name=mode][value=generate]")
    page.fill("#prompt", "a lighthouse")
    page.fill("#seed", "3")
    page.fill("#size", "64x64")
    page.fill("#n", "2")
    page.click("#submit")
    expect(done_cards(page)).to_have_count(2)
    expect(page.locator("#code-panel")).to_be_visible()
    assert fits_the_screen(page)  # with results, code and history shown
    shown = page.locator("#results img").first.bounding_box()
    assert shown is not None and shown["width"] >= min(320, width - 40)  # larger than 64 px
    if width < 800:  # stacked: the results start below the form, and the page went there
        expect(page.locator("#results")).to_be_in_viewport()
        assert page.evaluate("window.scrollY") > 0


def test_previews_are_labelled_per_image_then_replaced_by_the_results(page: Page):
    # What each card said while the run went on: the events are too fast to watch.
    page.evaluate(
        """() => {
            window.labels = [];
            const seen = () => {
                for (const label of document.querySelectorAll("#results .label"))
                    if (!window.labels.includes(label.textContent))
                        window.labels.push(label.textContent);
            };
            new MutationObserver(seen).observe(
                document.getElementById("results"),
                {subtree: true, childList: true, characterData: true},
            );
        }"""
    )
    page.fill("#prompt", "a lighthouse at dusk")
    page.fill("#size", "128x128")
    page.fill("#seed", "42")
    page.fill("#n", "2")
    page.select_option("#quality", "high")  # 4 steps for the tiny model: room for 2 previews
    page.select_option("#partial-images", "2")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    assert request.value.post_data_json["stream"] is True
    cards = done_cards(page)
    expect(cards).to_have_count(2)
    # Each card showed both previews of its image, labelled (the events of one network read
    # can come too fast for the observer to see every label, so the last one is checked).
    expect(cards.nth(0)).to_have_attribute("data-previews", "2")
    expect(cards.nth(1)).to_have_attribute("data-previews", "2")
    labels = page.evaluate("window.labels")
    # "step k of n" from the events' step fields: the second preview is after step 3 of 4.
    assert {"Image 1 · step 3 of 4", "Image 2 · step 3 of 4"} <= set(labels)
    expect(page.locator("#results .pending")).to_have_count(0)  # every preview was replaced
    expect(cards.nth(0)).to_have_attribute("data-seed", "42")
    expect(cards.nth(1)).to_have_attribute("data-seed", "43")
    caption = cards.nth(0).locator("figcaption")
    expect(caption).to_contain_text("128x128")
    expect(caption).to_contain_text("seed 42")
    expect(caption).to_contain_text("tokens (")  # the image's usage
    source = cards.nth(0).locator("img").get_attribute("src") or ""
    assert source.startswith("data:image/png;base64,")
    expect(cards.nth(0).locator("a[download]")).to_have_attribute("download", "pixelsmith-42.png")
    assert natural_width(cards.nth(0).locator("img")) == 128
    box = cards.nth(0).locator("img").bounding_box()
    assert box is not None and box["width"] > 320
    # A click opens it at its own size, in a dialog that Escape closes.
    cards.nth(0).locator("button.open").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-title")).to_contain_text("seed 42")
    full = page.locator("#viewer-image").bounding_box()
    assert full is not None and round(full["width"]) == 128
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(cards.nth(0).locator("button.open")).to_be_focused()


def test_without_previews_the_json_answer_is_shown(page: Page):
    page.fill("#prompt", "a red fox")
    page.fill("#seed", "11")
    page.fill("#size", "64x64")
    page.fill("#n", "2")
    page.select_option("#partial-images", "0")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    assert "stream" not in request.value.post_data_json
    expect(done_cards(page)).to_have_count(2)
    expect(done_cards(page).nth(1).locator("figcaption")).to_contain_text("for all 2 images")


def test_dall_e_2_follows_its_rules_and_shows_the_image_from_its_url(
    page: Page, playground_server: RunningServer
):
    page.select_option("#model", "dall-e-2")
    expect(page.locator("#size")).to_have_value("1024x1024")  # its default: no `auto`
    expect(page.locator("#partial-images")).to_be_disabled()
    expect(page.locator("#model-note")).to_contain_text("cannot stream")
    options = page.locator("#sizes option").evaluate_all("options => options.map(o => o.value)")
    assert options == ["256x256", "512x512", "1024x1024"]
    page.fill("#prompt", "a red fox")
    page.fill("#seed", "12")
    page.fill("#size", "256x256")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    assert "stream" not in request.value.post_data_json
    card = done_cards(page)
    expect(card).to_have_count(1)
    source = card.locator("img").get_attribute("src") or ""
    assert source.startswith(f"{playground_server.base_url}/v1/images/files/")
    assert natural_width(card.locator("img")) == 256
    expect(card.locator("figcaption")).to_contain_text("256x256")
    # Editing a URL answer fetches it from this server.
    card.locator("button.edit-this").click()
    expect(page.locator("#edit-canvas")).to_have_attribute("width", "256")


def test_dall_e_3_takes_its_sizes_one_image_and_shows_the_revised_prompt(page: Page):
    page.fill("#n", "3")
    page.select_option("#model", "dall-e-3")
    expect(page.locator("#size")).to_have_value("1024x1024")
    expect(page.locator("#n")).to_have_value("1")
    expect(page.locator("#n")).to_have_attribute("max", "1")
    qualities = page.locator("#quality option").evaluate_all("options => options.map(o => o.value)")
    assert qualities == ["auto", "standard", "hd"]
    page.fill("#prompt", "a red fox")
    page.fill("#seed", "13")
    page.fill("#steps", "1")  # its sizes are large: one step keeps the test quick
    page.click("#submit")
    card = done_cards(page)
    expect(card).to_have_count(1)
    expect(card.locator(".revised")).to_contain_text("Revised prompt: a red fox. Style: vivid")
    expect(page.locator("#partial-images")).to_have_value("0")  # shown as it is sent: off
    # Back to a GPT name: previews again, as they were chosen.
    page.select_option("#model", "gpt-image-1")
    expect(page.locator("#partial-images")).to_be_enabled()
    expect(page.locator("#partial-images")).to_have_value("2")


@pytest.mark.parametrize("width", [DESKTOP, SMALLEST_PHONE])
def test_an_error_marks_its_field_and_is_announced(open_page: OpenPage, width: int):
    page = open_page(width)
    page.fill("#prompt", "a red fox")
    page.fill("#size", "999x999")
    page.click("#submit")
    error = page.locator("#error[role=alert]")
    expect(error).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text("999x999")
    expect(page.locator("#error-param")).to_have_text("parameter: size")
    expect(page.locator("#size")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#size")).to_be_focused()
    assert "error" in (page.locator("#size").get_attribute("aria-describedby") or "")
    expect(page.locator("#results figure.done")).to_have_count(0)
    page.keyboard.type("x")  # fixing the field clears its mark
    expect(page.locator("#size")).not_to_have_attribute("aria-invalid", "true")
    # A field inside the closed extensions is found too.
    page.fill("#size", "64x64")
    page.fill("#steps", "100000")
    page.click("#submit")
    expect(page.locator("#error-param")).to_have_text("parameter: num_inference_steps")
    expect(page.locator("#steps")).to_be_focused()
    assert fits_the_screen(page)


def test_the_request_as_python_curl_and_javascript_runs_and_never_shows_the_key(
    page: Page, playground_server: RunningServer, tmp_path: Path
):
    page.click("summary")
    page.fill("#api-key", "sk-typed-secret")
    page.locator("#api-key").dispatch_event("change")
    page.fill("#prompt", "a lighthouse")
    page.fill("#size", "64x64")
    page.fill("#seed", "7")
    page.fill("#steps", "3")
    page.fill("#guidance", "1.5")
    page.select_option("#partial-images", "1")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    sent = request.value.post_data_json
    assert sent["num_inference_steps"] == 3 and sent["guidance_scale"] == 1.5
    expect(done_cards(page)).to_have_count(1)
    shown = base64.b64decode(done_cards(page).locator("img").get_attribute("src").split(",")[1])
    code: dict[str, str] = {}
    for language, label in [("python", "Python"), ("curl", "curl"), ("javascript", "JavaScript")]:
        page.click(f"button.copy[data-language={language}]")
        expect(page.locator("#copy-status")).to_have_text(f"Copied as {label}.")
        code[language] = page.evaluate("navigator.clipboard.readText()")
        assert code[language] == page.locator("#code").text_content()
        assert "sk-typed-secret" not in code[language] and "OPENAI_API_KEY" in code[language]
    extensions = '{"seed": 7, "num_inference_steps": 3, "guidance_scale": 1.5}'
    assert f"extra_body={extensions}" in code["python"]
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    # Python, with the official client: the same request gives the same image.
    (tmp_path / "request.py").write_text(code["python"])
    subprocess.run([sys.executable, "request.py"], cwd=tmp_path, env=env, check=True, timeout=60)
    assert _same_image((tmp_path / "image-0.png").read_bytes(), shown)
    # curl prints the stream's events.
    events = subprocess.run(
        ["bash", "-c", code["curl"]], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "event: image_generation.completed" in events
    # JavaScript, with the official npm client where tests/node has it installed.
    node = shutil.which("node")
    if node and (NODE_MODULES / "openai").is_dir():
        (tmp_path / "node_modules").symlink_to(NODE_MODULES)
        (tmp_path / "request.mjs").write_text(code["javascript"])
        (tmp_path / "image-0.png").unlink()
        subprocess.run([node, "request.mjs"], cwd=tmp_path, env=env, check=True, timeout=60)
        assert _same_image((tmp_path / "image-0.png").read_bytes(), shown)


def _same_image(a: bytes, b: bytes) -> bool:
    first, second = pixels(a), pixels(b)
    return len(first) == len(second) and all(
        x.shape == y.shape and np.abs(x.astype(int) - y.astype(int)).max() <= 2
        for x, y in zip(first, second, strict=True)
    )


def test_the_api_key_stays_in_the_browser_and_is_sent_as_bearer(page: Page):
    page.click("summary")
    page.fill("#api-key", "sk-local-test")
    page.locator("#api-key").dispatch_event("change")
    # Kept for this tab only: no other page of the origin (the API docs) can read it.
    assert page.evaluate("sessionStorage.getItem('pixelsmith.apiKey')") == "sk-local-test"
    assert page.evaluate("localStorage.length") == 0
    page.fill("#prompt", "a cat")
    page.fill("#seed", "14")
    page.fill("#size", "64x64")
    page.select_option("#partial-images", "0")
    with page.expect_request("**/v1/images/generations") as request:
        page.click("#submit")
    assert request.value.headers["authorization"] == "Bearer sk-local-test"


def test_cancel_closes_the_stream(page: Page, recorder: RecordingEdits):
    hung_up = recorder.hung_up
    page.fill("#prompt", "a long run")
    page.fill("#seed", "15")
    page.fill("#size", "256x256")
    page.fill("#steps", "150")  # the most the tiny model takes: long enough to cancel
    page.select_option("#partial-images", "3")
    page.click("#submit")
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page.locator("#results .label")).to_contain_text(re.compile(r"step \d+ of 150"))
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("Cancelled.")
    expect(page.locator("#results .label")).to_contain_text("cancelled")
    expect(done_cards(page)).to_have_count(0)
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#submit")).to_be_focused()
    # The server saw the connection close: that is what stops its run (test_e2e_streaming.py).
    deadline = time.monotonic() + 5
    while recorder.hung_up == hung_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorder.hung_up == hung_up + 1


def test_edit_this_image_loads_a_result_as_the_edit_input(page: Page, recorder: RecordingEdits):
    page.fill("#prompt", "a meadow")
    page.fill("#size", "64x64")
    page.fill("#seed", "5")
    page.select_option("#partial-images", "0")
    page.click("#submit")
    expect(done_cards(page)).to_have_count(1)
    result = base64.b64decode(done_cards(page).locator("img").get_attribute("src").split(",")[1])
    done_cards(page).locator("button.edit-this").click()
    expect(page.locator("#edit-panel")).to_be_visible()
    expect(page.locator("#submit")).to_have_text("Edit")
    expect(page.locator("#edit-canvas")).to_have_attribute("width", "64")
    expect(page.locator("#edit-canvas")).to_be_focused()
    chosen = page.locator("#image-file").evaluate("input => input.files[0].name")
    assert chosen == "pixelsmith-5.png"
    page.fill("#prompt", "a meadow in snow")
    page.click("#submit")
    expect(done_cards(page)).to_have_count(1)
    content_type, body = recorder.edits[-1]
    files = _multipart_files(body, content_type)
    assert files["image"] == result  # the result's own bytes, not a re-encoding
    assert "mask" not in files


def _multipart_files(body: bytes, content_type: str) -> dict[str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def _sent_mask(recorder: RecordingEdits) -> np.ndarray:
    content_type, body = recorder.edits[-1]
    mask = _multipart_files(body, content_type)["mask"]
    return np.asarray(Image.open(io.BytesIO(mask)).convert("RGBA"))[..., 3]


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
    page.fill("#seed", "16")
    page.fill("#size", "auto")
    page.select_option("#partial-images", "0")
    page.click("#submit")
    result = done_cards(page)
    expect(result).to_have_count(1)
    content_type, body = recorder.edits[-1]
    files = _multipart_files(body, content_type)
    mask = _sent_mask(recorder)
    assert mask.shape == (256, 256)
    assert (mask[128, 50:190] == 0).all()  # painted: to be repainted
    assert (mask[100, :] == 255).all() and (mask[156, :] == 255).all()  # 10 px brush radius
    assert (mask[128, :25] == 255).all() and (mask[128, 215:] == 255).all()
    assert files["prompt"] == b"a red stripe"
    # The server kept the unpainted pixels exactly.
    source_url = result.locator("img").get_attribute("src") or ""
    edited = Image.open(io.BytesIO(base64.b64decode(source_url.split(",", 1)[1]))).convert("RGB")
    assert edited.getpixel((128, 20)) == (30, 120, 200)


@pytest.mark.parametrize("width", [DESKTOP, SMALLEST_PHONE])
def test_the_mask_is_painted_erased_and_undone_from_the_keyboard(
    open_page: OpenPage, width: int, recorder: RecordingEdits, tmp_path: Path
):
    page = open_page(width)
    source = tmp_path / "photo.png"
    Image.new("RGB", (256, 256), (30, 120, 200)).save(source)
    page.check("input[name=mode][value=edit]")
    page.set_input_files("#image-file", str(source))
    canvas = page.locator("#edit-canvas")
    expect(canvas).to_have_attribute("width", "256")
    box = canvas.bounding_box()
    assert box is not None
    per_pixel = box["width"] / 256  # screen pixels per image pixel (the canvas may shrink)
    page.locator("#brush-size").fill("12")
    page.focus("#image-file")
    page.keyboard.press("Tab")  # the canvas is the next stop
    expect(canvas).to_be_focused()
    assert canvas.evaluate("c => c.matches(':focus-visible')")  # the focus ring shows
    page.keyboard.press(" ")  # paint at the centre (128, 128)
    expect(page.locator("#mask-status")).to_have_text("Painted at 128, 128.")
    for _ in range(4):
        page.keyboard.press("ArrowDown")  # 4 x 8 screen pixels down
    below = 128 + 4 * 8 / per_pixel
    page.keyboard.press(" ")
    page.keyboard.press("u")  # undoes that spot
    expect(page.locator("#mask-status")).to_have_text("Undone.")
    for _ in range(4):
        page.keyboard.press("ArrowUp")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowRight")  # 4 x 32 screen pixels to the right
    page.keyboard.press("ArrowLeft")  # and 8 back
    right = 128 + (4 * 32 - 8) / per_pixel
    page.keyboard.press("Enter")  # paint there
    page.keyboard.press("e")  # the eraser
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Enter")  # erases the spot just painted
    page.keyboard.press("Control+z")  # undoes the erasing: the spot is painted again
    page.keyboard.press("e")
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "false")
    page.fill("#prompt", "two spots")
    page.fill("#seed", "17")
    page.select_option("#partial-images", "0")
    page.click("#submit")
    expect(done_cards(page)).to_have_count(1)
    mask = _sent_mask(recorder)
    radius = 12 / 2 / per_pixel
    assert mask[128, 128] == 0  # painted
    assert mask[128, round(right)] == 0  # painted, erased, and the erasing undone
    assert (mask[128, round(128 + radius + 2) : round(right - radius - 2)] == 255).all()
    assert mask[round(below), 128] == 255  # painted and undone
    assert (mask[round(128 + radius + 2) :, :] == 255).all()  # nothing below the spots


def test_the_history_stays_in_this_tab_and_opens_its_images(page: Page):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.fill("#size", "64x64")
    page.select_option("#partial-images", "0")
    for prompt in ("a fox", "a cat"):
        page.fill("#prompt", prompt)
        page.fill("#seed", "18")
        page.click("#submit")
        expect(page.locator("#status")).to_contain_text("1 image in")
    history = page.locator("#history li")
    expect(history).to_have_count(2)
    assert page.evaluate("JSON.parse(sessionStorage.getItem('pixelsmith.history')).length") == 2
    assert page.evaluate("localStorage.length") == 0
    # Nothing but the two requests went to the server.
    assert [url for url in requests if "/v1/" in url or "playground" in url] == [
        url for url in requests if url.endswith("/v1/images/generations")
    ]
    page.reload()
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    expect(history).to_have_count(2)  # kept for the tab
    label = re.compile(r"^Open Image 1: 64x64, seed [0-9]+ \(a cat\)$")  # newest first
    expect(history.nth(0).locator("button")).to_have_attribute("aria-label", label)
    history.nth(1).locator("button").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-title")).to_contain_text("a fox")
    page.click("#viewer-close")
    page.click("#clear-history")
    expect(page.locator("#history-panel")).to_be_hidden()


def test_screenshot_for_the_docs(page: Page, tmp_path: Path):
    """Renders the page as docs/playground.png shows it: 1280 px wide, palette PNG to stay
    small; the docs copy is refreshed with UPDATE_PLAYGROUND_SCREENSHOT=1."""
    page.fill("#prompt", "a lighthouse on a cliff at dusk, oil painting")
    page.fill("#size", "64x64")
    page.fill("#seed", "7")
    page.fill("#n", "2")
    page.click("#submit")
    expect(done_cards(page)).to_have_count(2)
    page.evaluate("window.scrollTo(0, 0)")
    target = tmp_path / "playground.png"
    if os.environ.get("UPDATE_PLAYGROUND_SCREENSHOT"):
        target = ROOT / "docs" / "playground.png"
    shot = Image.open(io.BytesIO(page.screenshot(full_page=False)))
    assert shot.size[0] == DESKTOP
    shot.convert("RGB").quantize(colors=128).save(target, optimize=True)
    assert target.stat().st_size < 250_000
