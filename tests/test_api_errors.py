"""Every route answers errors in the one OpenAI envelope, with x-request-id."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import RunningServer, make_settings

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.engine import GenerationJob


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing-here", 404, "unknown_url"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
        ("GET", "/v1/images/generations", 405, "method_not_allowed"),
        ("GET", "/v1/models/not-a-model", 404, "model_not_found"),
        ("GET", "/v1/models/", 404, "unknown_url"),
        ("GET", "/v1/images/files/abc.png", 403, "invalid_image_url"),
    ],
)
def test_routing_errors(server, method, path, status, code):
    assert_envelope(httpx.request(method, server.base_url + path), status, code)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_type"),
        (b"{}", "prompt", "missing_required_parameter"),
        (b'{"prompt": 5}', "prompt", "invalid_type"),
        (b'{"prompt": "x", "n": "two"}', "n", "invalid_type"),
        (b'{"prompt": "x", "n": 2.5}', "n", "invalid_type"),
        (b'{"prompt": "x", "stream": "yes"}', "stream", "invalid_type"),
        (b'{"prompt": "x", "size": 1024}', "size", "invalid_type"),
        (b'{"prompt": "x", "n": 0}', "n", "integer_below_min_value"),
        (b'{"prompt": "x", "guidance_scale": -1}', "guidance_scale", "decimal_below_min_value"),
        (b'{"prompt": "x", "guidance_scale": true}', "guidance_scale", "invalid_type"),
        (b'{"prompt": "x", "quality": "ultra"}', "quality", "invalid_value"),
        (b'{"prompt": "x", "colour": "red"}', "colour", "unknown_parameter"),
    ],
)
def test_validation_errors_are_400_with_param(server, body, param, code):
    response = httpx.post(
        f"{server.base_url}/v1/images/generations",
        content=body,
        headers={"content-type": "application/json"},
    )
    error = assert_envelope(response, 400, code)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_a_body_that_is_not_json_is_400(server):
    response = httpx.post(f"{server.base_url}/v1/images/generations", data={"prompt": "cat"})
    error = assert_envelope(response, 400, "invalid_type")
    assert "application/json" in error["message"]


def test_success_carries_request_id_and_json_type(server):
    response = httpx.get(f"{server.base_url}/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")


def test_internal_errors_say_nothing_internal_and_the_server_keeps_serving(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = make_settings(cache_dir, tmp_path)
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch

    def run_batch(jobs: list[GenerationJob]):
        if any(job.prompt == "explode" for job in jobs):
            raise RuntimeError("secret /internal/path detail")
        return real_run_batch(jobs)

    loaded.run_batch = run_batch  # type: ignore[method-assign]
    import pixelsmith.service.output

    real_encode = pixelsmith.service.output.encode_image

    def encode(image, output_format, compression=100):
        if output_format == "webp":
            raise OSError("secret /internal/encoder detail")
        return real_encode(image, output_format, compression)

    monkeypatch.setattr(pixelsmith.service.output, "encode_image", encode)
    with RunningServer(create_app(settings, engine=engine)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client:
            # The model fails: 503, and no retry, since the same request would fail again.
            with pytest.raises(openai.InternalServerError) as error:
                client.images.generate(prompt="explode", size="64x64")
            assert error.value.status_code == 503
            assert "secret" not in str(error.value.body)
            assert "RuntimeError" in error.value.message
            assert error.value.response.headers["x-should-retry"] == "false"
            # Anything else: 500 with the request id to quote, and nothing internal.
            with pytest.raises(openai.InternalServerError) as error:
                client.images.generate(prompt="fine", size="64x64", output_format="webp")
            assert error.value.status_code == 500
            assert "secret" not in str(error.value.body)
            assert error.value.request_id.startswith("req_")
            assert error.value.request_id in error.value.message
            assert error.value.response.headers["x-should-retry"] == "false"
            assert len(client.images.generate(prompt="fine", size="64x64").data) == 1


def test_full_queue_is_429_with_retry_after(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, max_queue_size=1)
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch

    running_first = threading.Event()

    def slow_run_batch(jobs: list[GenerationJob]):
        running_first.set()
        time.sleep(1.0)
        return real_run_batch(jobs)

    loaded.run_batch = slow_run_batch  # type: ignore[method-assign]
    with RunningServer(create_app(settings, engine=engine)) as running:
        url = f"{running.base_url}/v1/images/generations"

        def post(_: int) -> httpx.Response:
            return httpx.post(url, json={"prompt": "x", "size": "64x64"}, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            # The first request is running (out of the queue) before the other three arrive,
            # so one of them waits in the queue's one place and two are refused, whatever the
            # timing of the worker.
            first = pool.submit(post, 0)
            assert running_first.wait(30)
            others = [pool.submit(post, index) for index in range(1, 4)]
            responses = [first.result(), *(other.result() for other in others)]
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) >= 2 and 429 in statuses
    for response in responses:
        if response.status_code == 429:
            assert_envelope(response, 429, "rate_limit_exceeded")
            assert int(response.headers["retry-after"]) >= 1


def test_open_server_without_keys_logs_a_warning(cache_dir: Path, tmp_path: Path, caplog):
    # The test server itself still binds 127.0.0.1; the warning looks at the configured host.
    settings = make_settings(cache_dir, tmp_path, host="0.0.0.0")
    with caplog.at_level("WARNING", logger="pixelsmith"):
        with RunningServer(create_app(settings)):
            pass
    assert any("No API keys are configured" in record.message for record in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="pixelsmith"):
        with RunningServer(create_app(make_settings(cache_dir, tmp_path, api_keys="k"))):
            pass
        with RunningServer(create_app(make_settings(cache_dir, tmp_path))):
            pass
    assert not any("No API keys" in record.message for record in caplog.records)


def test_a_request_whose_client_left_is_never_run(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path)
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch
    ran: list[str] = []

    def slow_run_batch(jobs: list[GenerationJob]):
        ran.extend(job.prompt for job in jobs)
        time.sleep(1.5)
        return real_run_batch(jobs)

    loaded.run_batch = slow_run_batch  # type: ignore[method-assign]
    with RunningServer(create_app(settings, engine=engine)) as running:
        url = f"{running.base_url}/v1/images/generations"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                httpx.post, url, json={"prompt": "first", "size": "64x64"}, timeout=30
            )
            time.sleep(0.5)  # "first" is running; the next request has to wait in the queue
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url, json={"prompt": "impatient", "size": "64x64"}, timeout=0.5)
            assert first.result().status_code == 200
        last = httpx.post(url, json={"prompt": "last", "size": "64x64"}, timeout=30)
        assert last.status_code == 200
    assert ran == ["first", "last"]


def test_auth_is_checked_before_the_body(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, api_keys="sk-right")
    with RunningServer(create_app(settings)) as running:
        response = httpx.post(
            f"{running.base_url}/v1/images/generations",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert_envelope(response, 401, "invalid_api_key")
        # Signed image URLs stay reachable without a key (their signature is the key).
        files = httpx.get(f"{running.base_url}/v1/images/files/x.png?expires=1&signature=0")
        assert_envelope(files, 403, "invalid_image_url")
