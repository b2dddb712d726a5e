"""The edges a public network needs, each against a real server on 127.0.0.1: body caps, pixel
budgets, half-open connections, connection limits, protocol errors in the envelope, draining on
SIGTERM, shortened echoes, parse errors, private image files, clean-up after a crashed build."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, free_port, make_settings
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.engine.tiny import STAGING_OWNER, remove_stale_staging, tiny_model_dir


def flat_png(width: int, height: int) -> bytes:
    """A small file that decodes to many pixels."""
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def edge_server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(
        cache_dir,
        tmp_path_factory.mktemp("edge-images"),
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )
    with RunningServer(
        create_app(settings), header_timeout_seconds=0.5, max_connections=6
    ) as running:
        yield running


def still_serving(base_url: str) -> None:
    response = httpx.get(f"{base_url}/v1/models")
    assert response.status_code == 200


# --- bodies --------------------------------------------------------------------------------------


def test_json_bodies_are_capped_before_they_are_read(edge_server):
    url = f"{edge_server.base_url}/v1/images/generations"
    big = json.dumps({"prompt": "x" * 2_000_000}).encode()
    response = httpx.post(url, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "1 MB" in error["message"]
    assert response.headers["x-request-id"].startswith("req_")

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"prompt": "'
        for _ in range(30):
            yield b"x" * 100_000

    chunked = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "request_too_large"
    moderations = httpx.post(
        f"{edge_server.base_url}/v1/moderations",
        content=b"[" * 70_000_000,
        headers={"content-type": "application/json"},
    )
    assert moderations.status_code == 413
    still_serving(edge_server.base_url)


def test_moderation_images_share_one_pixel_budget(edge_server):
    huge = "data:image/png;base64," + base64.b64encode(flat_png(4096, 4096)).decode()
    parts = [{"type": "image_url", "image_url": {"url": huge}} for _ in range(32)]
    body = {"input": parts}
    assert len(json.dumps(body)) < 3_000_000  # small files, 537 million pixels in all
    response = httpx.post(f"{edge_server.base_url}/v1/moderations", json=body, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert error["param"] == "input[2].image_url.url"  # two fit the budget, the third does not
    two = httpx.post(
        f"{edge_server.base_url}/v1/moderations", json={"input": parts[:2]}, timeout=60
    )
    assert two.status_code == 200


def test_edit_images_share_one_pixel_budget(edge_server):
    data = flat_png(4096, 4096)
    files = [("image[]", (f"{index}.png", data, "image/png")) for index in range(5)]
    response = httpx.post(
        f"{edge_server.base_url}/v1/images/edits",
        data={"prompt": "x", "model": "tiny"},
        files=files,
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # Four fit (4 x 16.8 million pixels), the fifth does not; multipart names the field.
    assert error["code"] == "image_too_large" and error["param"] == "image", error
    assert "in all" in error["message"]


# --- connections ---------------------------------------------------------------------------------


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_half_open_connections_are_closed(edge_server):
    with (
        socket.create_connection(("127.0.0.1", edge_server.port)) as silent,
        socket.create_connection(("127.0.0.1", edge_server.port)) as half,
    ):
        half.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-")
        assert closed_within(silent, 5)
        assert closed_within(half, 5)
    # After a response, a keep-alive connection that starts a new request and stalls too.
    with socket.create_connection(("127.0.0.1", edge_server.port)) as reused:
        reused.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reused.settimeout(5)
        assert reused.recv(4096).startswith(b"HTTP/1.1 200")
        reused.sendall(b"GET /health HTTP/1.1\r\nHo")
        assert closed_within(reused, 5)
    # An idle keep-alive connection is the keep-alive timeout's (5 s), not the header
    # timeout's (0.5 s): it serves a second request after a pause.
    with socket.create_connection(("127.0.0.1", edge_server.port)) as idle:
        idle.settimeout(5)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    still_serving(edge_server.base_url)


def test_connections_over_the_limit_get_a_503_in_the_envelope(edge_server):
    held = [socket.create_connection(("127.0.0.1", edge_server.port)) for _ in range(6)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", edge_server.port)) as extra:
            extra.settimeout(5)
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        assert b"x-request-id: req_" in head
        assert json.loads(body)["error"]["code"] == "service_unavailable"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    still_serving(edge_server.base_url)


def test_protocol_errors_are_answered_in_the_envelope(edge_server):
    with socket.create_connection(("127.0.0.1", edge_server.port)) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"x-request-id: req_" in head
    assert json.loads(body)["error"]["code"] == "invalid_http_request"


# --- what is echoed, and how parse errors read ----------------------------------------------------


def test_unknown_model_names_are_not_echoed_whole(edge_server):
    response = httpx.post(
        f"{edge_server.base_url}/v1/images/generations",
        json={"prompt": "x", "model": "m" * 900_000},
    )
    assert response.status_code == 404
    assert len(response.content) < 2_000
    assert "(900000 characters)" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [b'{"prompt": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000, b'{"n": ' + b"9" * 5000 + b"}"],
    ids=["invalid-utf8", "deep-nesting", "huge-number"],
)
def test_unparseable_json_is_invalid_json(edge_server, body):
    response = httpx.post(
        f"{edge_server.base_url}/v1/images/generations",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_multipart_limits_name_the_part(edge_server):
    url = f"{edge_server.base_url}/v1/images/edits"
    image = ("image", ("a.png", flat_png(8, 8), "image/png"))
    too_long = httpx.post(url, data={"prompt": "x" * 2_000_000}, files=[image])
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "prompt"
    fields = {f"field{index}": "x" for index in range(70)}
    too_many = httpx.post(url, data={"prompt": "x", **fields}, files=[image])
    assert too_many.status_code == 400
    assert too_many.json()["error"]["param"].startswith("field")
    files = httpx.post(url, data={"prompt": "x"}, files=[image] * 70)
    assert files.status_code == 400
    assert files.json()["error"]["param"] == "image"


# --- storage and the tiny model's build ---------------------------------------------------------


def test_stored_images_are_private(edge_server):
    response = httpx.post(
        f"{edge_server.base_url}/v1/images/generations",
        json={"prompt": "a lighthouse", "size": "64x64", "response_format": "url"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    name = response.json()["data"][0]["url"].split("/")[-1].split("?")[0]
    storage: Path = edge_server.server.config.app.state.settings.resolved_storage_dir()
    assert (storage / name).stat().st_mode & 0o777 == 0o600


def test_a_crashed_tiny_build_is_cleaned_up(tmp_path: Path):
    models = tiny_model_dir(tmp_path).parent
    models.mkdir(parents=True)
    # A build killed mid-way: its process is gone.
    script = (
        "import os, sys, tempfile, pathlib, time;"
        f"d = pathlib.Path(tempfile.mkdtemp(prefix='.tiny-', dir={str(models)!r}));"
        f"(d / {STAGING_OWNER!r}).write_text(str(os.getpid()));"
        "(d / 'unet').mkdir(); print(d, flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as builder:
        assert builder.stdout is not None
        staging = Path(builder.stdout.readline().strip())
        assert staging.is_dir()
        assert remove_stale_staging(models) == 0  # alive: another process's build in progress
        builder.kill()
        builder.wait()
    assert remove_stale_staging(models) == 1
    assert not staging.exists()


# --- draining on SIGTERM --------------------------------------------------------------------------


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(cache_dir: Path, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "PIXELSMITH_CACHE_DIR": str(cache_dir),
        "PIXELSMITH_STORAGE_DIR": str(tmp_path),
        "PIXELSMITH_MODERATION_PROMPT_CLASSIFIER": "off",
        "PIXELSMITH_MODERATION_IMAGE_CLASSIFIER": "none",
        "PIXELSMITH_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "pixelsmith", "serve", "--model", "tiny", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            slow: dict[str, httpx.Response] = {}
            finish_body = threading.Event()

            def body():  # in flight until the test lets the rest of the body go
                yield b'{"prompt": "a lighthouse", '
                finish_body.wait(60)
                yield b'"size": "64x64"}'

            def generate() -> None:
                slow["response"] = httpx.post(
                    f"{base}/v1/images/generations",
                    content=body(),
                    headers={"content-type": "application/json"},
                    timeout=120,
                )

            thread = threading.Thread(target=generate)
            thread.start()
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            refused = httpx.post(f"{base}/v1/images/generations", json={"prompt": "x"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "service_unavailable"
            assert refused.headers["connection"] == "close"
            assert httpx.get(f"{base}/ready").status_code == 503
            assert httpx.get(f"{base}/health").status_code == 200
            finish_body.set()
            thread.join(timeout=120)
            assert slow["response"].status_code == 200, slow["response"].text
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
        assert server.stderr is not None
        log = server.stderr.read()
    assert server.returncode in (0, -signal.SIGTERM)
    # --log-format json: every log record is one JSON object per line (progress bars that
    # libraries print straight to stderr are not log records).
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any("draining" in record["message"] for record in records)
    access = [record for record in records if record["logger"] == "pixelsmith.access"]
    statuses = {(record["route"], record["status"]) for record in access}
    assert ("/v1/images/generations", 200) in statuses
    assert ("unmatched", 503) in statuses  # refused before routing
    served = next(record for record in access if record["status"] == 200 and record["images"])
    assert served["model"] == "tiny" and served["request_id"].startswith("req_")
    assert "lighthouse" not in log  # never the prompt
