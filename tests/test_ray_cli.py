"""`pixelsmith serve --replicas 2 --model tiny --storage s3://...` as a user runs it: the CLI
starts a local Ray cluster on 127.0.0.1, and the URLs that either replica's answers carry are
presigned URLs of a real S3-compatible server (moto, on 127.0.0.1) that download."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from pathlib import Path

import boto3
import httpx
import openai
from conftest import free_port
from moto.server import ThreadedMotoServer

BUCKET = "pixelsmith-ray"


def test_serve_with_replicas_and_s3_storage(cache_dir: Path, tmp_path: Path, postgres_url: str):
    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
    }
    port = free_port()
    env = {
        **os.environ,
        **aws,
        "PIXELSMITH_CACHE_DIR": str(cache_dir),
        "PIXELSMITH_MODERATION_PROMPT_CLASSIFIER": "off",
        "PIXELSMITH_MODERATION_IMAGE_CLASSIFIER": "none",
        "PIXELSMITH_RAY_ACTOR_OPTIONS": '{"num_cpus": 1}',
        # Files and batches under Ray: records in PostgreSQL, contents in the bucket.
        "PIXELSMITH_DATABASE_URL": postgres_url,
    }
    try:
        with closing(boto3.client("s3", **_client_options(aws))) as s3:
            s3.create_bucket(Bucket=BUCKET)
        command = [
            sys.executable, "-m", "pixelsmith", "serve", "--replicas", "2", "--model", "tiny",
            "--storage", f"s3://{BUCKET}/images", "--port", str(port),
        ]  # fmt: skip
        log = (tmp_path / "serve.log").open("w")
        with (
            log,
            subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            ) as server,
        ):
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, server)
                with ThreadPoolExecutor(4) as pool:
                    responses = list(pool.map(lambda _: _generate_url(base), range(8)))
                replicas = {response.headers["x-pixelsmith-replica"] for response in responses}
                for response in responses:
                    url = response.json()["data"][0]["url"]
                    assert url.startswith(f"http://127.0.0.1:{s3_port}/{BUCKET}/images/")
                    image = httpx.get(url)
                    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
                assert httpx.get(f"{base}/metrics").status_code == 200
                _run_a_batch(base)
                server.send_signal(signal.SIGTERM)
                assert server.wait(timeout=120) == 0
            finally:
                # The local cluster's processes are in the server's session: none outlives it.
                with suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
        assert len(replicas) == 2  # URLs from either replica work
    finally:
        moto.stop()


def _run_a_batch(base: str) -> None:
    """A batch through the Ray ingress: its file and its state are shared by both ingress
    replicas (the poll may reach either), and one runner works on it."""
    lines = [
        json.dumps({"custom_id": f"line-{index}", "method": "POST",
                    "url": "/v1/images/generations",
                    "body": {"model": "tiny", "prompt": f"a boat {index}", "size": "64x64"}})
        for index in range(4)
    ]  # fmt: skip
    with openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=2) as client:
        source = client.files.create(
            file=("boats.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
        )
        deadline = time.monotonic() + 120
        while (done := client.batches.retrieve(batch.id)).status != "completed":
            assert time.monotonic() < deadline, done.status
            time.sleep(0.5)
        assert done.request_counts.completed == 4
        output = client.files.content(done.output_file_id).read().decode().split("\n")[:-1]
        assert len(output) == 4


def _generate_url(base: str) -> httpx.Response:
    response = httpx.post(
        f"{base}/v1/images/generations",
        json={"prompt": "a lighthouse", "size": "128x128", "response_format": "url",
              "num_inference_steps": 12, "user": uuid.uuid4().hex},
        timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response


def _client_options(aws: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": aws["AWS_ENDPOINT_URL"],
        "aws_access_key_id": aws["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": aws["AWS_SECRET_ACCESS_KEY"],
        "region_name": aws["AWS_REGION"],
    }


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert server.poll() is None, "pixelsmith serve --replicas 2 exited: see serve.log"
        try:
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError("the Ray Serve application did not become ready")
