"""pixelsmith on a real local Ray cluster (127.0.0.1): two CPU replicas of `tiny` behind two
ingress replicas, reached through Serve's HTTP proxy with the official client. Requests spread
over both replicas, streams and the MCP tools work through Serve, a replica killed mid-load
loses no request that the client's retry does not recover (and is replaced), and per-key
limits hold across the ingress replicas."""

from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import ray
import yaml
from conftest import free_port, make_settings
from ray import serve

from pixelsmith.ray import INGRESS_NAME, app, autoscaling_config, build_app, deployment_name

ROOT = Path(__file__).resolve().parents[1]
RATE_LIMIT = 3  # per minute and end user; the tests give every other request its own user


@pytest.fixture(scope="module")
def cluster(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    # Through the application builder, with text arguments, as `serve run` calls it.
    application = app(
        {
            "model": "tiny",
            "cache_dir": str(cache_dir),
            "storage_dir": str(tmp_path_factory.mktemp("ray-images")),
            "replicas": "2",
            "ingress_replicas": "2",
            "ray_actor_options": '{"num_cpus": 1}',
            "ingress_cpus": "0.5",
            "rate_limit_per_minute": str(RATE_LIMIT),
            "moderation_prompt_classifier": "off",
            "moderation_image_classifier": "none",
            "log_level": "warning",
        }
    )
    port = free_port()
    ray.init(
        num_cpus=6,
        include_dashboard=False,
        namespace="pixelsmith-tests",
        _node_ip_address="127.0.0.1",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(application, name=INGRESS_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def official_client(base_url: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=retries, timeout=120)


def replica_pids(expected: int, timeout: float = 90) -> set[int]:
    handle = serve.get_deployment_handle(deployment_name("tiny"), app_name=INGRESS_NAME)
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    while time.monotonic() < deadline:
        found = {handle.identity.remote().result()["pid"] for _ in range(12)}
        if len(found) >= expected:
            return found
        pids |= found
        time.sleep(0.5)
    raise TimeoutError(f"saw replicas {pids}, expected {expected}")


def generate(base_url: str, **fields: object) -> httpx.Response:
    body = {"prompt": "a lighthouse", "size": "64x64", "user": uuid.uuid4().hex, **fields}
    return httpx.post(f"{base_url}/v1/images/generations", json=body, timeout=120)


def test_requests_spread_over_both_replicas(cluster):
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: generate(cluster, size="128x128", num_inference_steps=12), range(8))
        )
    assert all(response.status_code == 200 for response in responses), [
        response.text for response in responses if response.status_code != 200
    ]
    served_by = {response.headers["x-pixelsmith-replica"] for response in responses}
    assert len(served_by) == 2, served_by
    assert all(response.json()["data"][0]["b64_json"] for response in responses)


def test_streaming_through_serve(cluster):
    with official_client(cluster) as client:
        stream = client.images.generate(
            model="tiny",
            prompt="a lighthouse",
            size="64x64",
            quality="high",  # enough steps for two previews
            stream=True,
            partial_images=2,
            user=uuid.uuid4().hex,
        )
        kinds = [event.type for event in stream]
    assert kinds.count("image_generation.partial_image") == 2
    assert kinds[-1] == "image_generation.completed"


def test_mcp_tools_through_serve_report_the_replicas_steps(cluster):
    """/mcp is served by the ingress replicas; the steps come from the model replica."""
    import asyncio

    from mcp import Client

    reports: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total))

    async def call() -> object:
        async with Client(f"{cluster}/mcp") as client:
            return await client.call_tool(
                "generate_image",
                {"prompt": "a lighthouse", "size": "64x64", "steps": 4},
                progress_callback=on_progress,
            )

    result = asyncio.run(call())
    assert not result.is_error, result.content  # type: ignore[attr-defined]
    assert result.structured_content["size"] == "64x64"  # type: ignore[attr-defined]
    assert reports and reports[-1] == (4, 4), reports


def test_errors_come_back_as_on_one_process(cluster):
    with official_client(cluster) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.images.generate(model="no-such-model", prompt="x", user=uuid.uuid4().hex)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as blocked:
            client.images.generate(model="tiny", prompt="gory decapitation", user=uuid.uuid4().hex)
        assert blocked.value.code == "moderation_blocked"
        # One request id, Serve's, in the header and in the message.
        request_id = blocked.value.response.headers.get_list("x-request-id")
        assert len(request_id) == 1 and request_id[0] in blocked.value.message
    ready = httpx.get(f"{cluster}/ready")
    assert ready.status_code == 200 and ready.json()["queue_depth"] == {"tiny": 0}
    deadline = time.monotonic() + 30
    while 'pixelsmith_replicas{model="tiny"} 2.0' not in httpx.get(f"{cluster}/metrics").text:
        assert time.monotonic() < deadline, "the ingress never reported 2 replicas"
        time.sleep(0.5)


def test_per_key_limits_hold_across_ingress_replicas(cluster):
    user = uuid.uuid4().hex
    statuses = [generate(cluster, user=user).status_code for _ in range(RATE_LIMIT + 3)]
    assert statuses.count(200) == RATE_LIMIT, statuses
    assert set(statuses[RATE_LIMIT:]) == {429}, statuses


def test_a_killed_replica_loses_no_request_and_is_replaced(cluster):
    before = replica_pids(2)
    victim = sorted(before)[0]
    client = official_client(cluster, retries=4)
    request_closing = client  # closed below, with its connections

    def one(index: int) -> int:
        result = client.images.generate(
            model="tiny",
            prompt=f"a lighthouse, take {index}",
            size="256x256",
            extra_body={"num_inference_steps": 60},
            user=uuid.uuid4().hex,
        )
        return len(result.data)

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(one, index) for index in range(10)]
        time.sleep(1.0)  # the replicas are busy
        os.kill(victim, signal.SIGKILL)
        results = [future.result(timeout=300) for future in futures]
    request_closing.close()
    assert results == [1] * 10  # every request answered, after a retry where it had to
    after = replica_pids(2)
    assert victim not in after  # Serve started a new replica in its place


def test_the_documented_serve_config_is_valid(cache_dir: Path, tmp_path: Path):
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "deploy" / "serve-config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    application = schema.applications[0]
    assert application.import_path == "pixelsmith.ray:app"
    built = app(dict(application.args))  # nothing loads: the models are only named
    assert built is not None
    settings = make_settings(cache_dir, tmp_path, replicas=4, ray_autoscaling_config="{}")
    assert autoscaling_config(settings)["max_replicas"] == 4
    assert build_app(settings) is not None


def test_zz_serve_joins_a_running_cluster(cluster, cache_dir: Path, tmp_path: Path):
    """`pixelsmith serve --ray-address` joins a cluster that is already running (this
    module's) and deploys onto it, replacing the application of the same name. Last in the
    module, since it takes the application over."""
    import subprocess
    import sys

    address = ray.get_runtime_context().gcs_address
    env = {
        **os.environ,
        "PIXELSMITH_CACHE_DIR": str(cache_dir),
        "PIXELSMITH_STORAGE_DIR": str(tmp_path),
        "PIXELSMITH_MODERATION_PROMPT_CLASSIFIER": "off",
        "PIXELSMITH_MODERATION_IMAGE_CLASSIFIER": "none",
        "PIXELSMITH_RAY_ACTOR_OPTIONS": '{"num_cpus": 1}',
        "PIXELSMITH_INGRESS_CPUS": "0.1",
    }
    command = [
        sys.executable, "-m", "pixelsmith", "serve", "--ray-address", address, "--model", "tiny",
        "--rate-limit-per-minute", "0", "--port", str(free_port()),
    ]  # fmt: skip
    with (
        (tmp_path / "serve.log").open("w") as log,
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True) as cli,
    ):
        try:
            assert cli.stdout is not None
            assert "pixelsmith on Ray Serve" in cli.stdout.readline()
            # Serve was running: the application answers on the cluster's HTTP port. The
            # new one has no per-key limits, which the old one had.
            user = uuid.uuid4().hex
            statuses = [generate(cluster, user=user).status_code for _ in range(RATE_LIMIT + 1)]
            assert statuses == [200] * (RATE_LIMIT + 1), statuses
            cli.send_signal(signal.SIGTERM)
            assert cli.wait(timeout=120) == 0
        finally:
            if cli.poll() is None:
                cli.kill()
