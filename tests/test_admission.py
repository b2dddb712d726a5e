"""Per-key limits: rate and concurrency, refused with 429 before anything runs."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import openai
import pytest
from conftest import RunningServer, make_settings

from pixelsmith.api.limits import KeyLimiter
from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.engine import GenerationJob
from pixelsmith.errors import RateLimitError


def test_token_bucket_refills_continuously():
    limiter = KeyLimiter(per_minute=2, max_concurrent=0)
    limiter.acquire("a", now=0.0)
    limiter.release("a")
    limiter.acquire("a", now=0.0)
    limiter.release("a")
    with pytest.raises(RateLimitError) as error:
        limiter.acquire("a", now=1.0)
    # One request every 30 s; 1 s has passed.
    assert error.value.headers["retry-after"] == "29"
    limiter.acquire("b", now=1.0)  # another client has its own bucket
    limiter.release("b")
    limiter.acquire("a", now=31.0)


def test_concurrency_limit_counts_requests_in_flight():
    limiter = KeyLimiter(per_minute=0, max_concurrent=2)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(RateLimitError, match="concurrent"):
        limiter.acquire("a")
    limiter.release("a")
    limiter.acquire("a")
    assert not KeyLimiter(per_minute=0, max_concurrent=0).enabled


def test_rate_limit_per_key_through_the_official_client(cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir, tmp_path, api_keys="key-one,key-two", rate_limit_per_minute=2
    )
    with RunningServer(create_app(settings)) as running:
        url = f"{running.base_url}/v1"
        one = openai.OpenAI(base_url=url, api_key="key-one", max_retries=0)
        two = openai.OpenAI(base_url=url, api_key="key-two", max_retries=0)
        wrong = openai.OpenAI(base_url=url, api_key="nope", max_retries=0)
        with one, two, wrong:
            check_rate_limits(one, two, wrong)


def check_rate_limits(one: openai.OpenAI, two: openai.OpenAI, wrong: openai.OpenAI) -> None:
    for _ in range(2):
        assert len(one.images.generate(prompt="a cat", size="64x64").data) == 1
    with pytest.raises(openai.RateLimitError) as error:
        one.images.generate(prompt="a cat", size="64x64")
    assert error.value.code == "rate_limit_exceeded"
    assert 1 <= int(error.value.response.headers["retry-after"]) <= 30
    assert error.value.response.headers["x-request-id"].startswith("req_")
    # Another key is not affected, and other endpoints are not limited.
    assert len(two.images.generate(prompt="a cat", size="64x64").data) == 1
    assert one.models.list().data
    # A wrong key is refused as unauthenticated, not counted.
    with pytest.raises(openai.AuthenticationError):
        wrong.images.generate(prompt="a cat")


def test_concurrency_limit_per_client_through_the_official_client(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, max_concurrent_per_key=1)
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch
    started, release = threading.Event(), threading.Event()

    def held_run_batch(jobs: list[GenerationJob]):
        started.set()
        release.wait(30)
        return real_run_batch(jobs)

    loaded.run_batch = held_run_batch  # type: ignore[method-assign]
    with RunningServer(create_app(settings, engine=engine)) as running:
        url = f"{running.base_url}/v1"
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        other_bearer = openai.OpenAI(base_url=url, api_key="y", max_retries=0)
        with client, other_bearer, concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.images.generate, prompt="first", size="64x64")
            assert started.wait(30)
            # No keys configured: the client's address is the identity, whatever its bearer.
            with pytest.raises(openai.RateLimitError, match="concurrent"):
                other_bearer.images.generate(prompt="second", size="64x64", stream=True)
            release.set()
            assert len(first.result(timeout=30).data) == 1
            # The slot is free again once the response has been sent.
            assert len(client.images.generate(prompt="third", size="64x64").data) == 1


def test_a_second_authorization_header_does_not_open_a_new_bucket(cache_dir: Path, tmp_path: Path):
    import httpx

    settings = make_settings(cache_dir, tmp_path, api_keys="key-one", rate_limit_per_minute=1)
    with RunningServer(create_app(settings)) as running:
        url = f"{running.base_url}/v1/images/generations"
        body = {"prompt": "a cat", "size": "64x64"}
        statuses = []
        for attempt in range(3):
            headers = [
                ("authorization", f"Bearer junk-{attempt}"),
                ("authorization", "Bearer key-one"),
            ]
            statuses.append(httpx.post(url, json=body, headers=headers, timeout=60).status_code)
        assert statuses[0] == 200 and statuses[1:] == [429, 429]
