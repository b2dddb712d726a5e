"""storage = "s3://bucket/prefix" against a real S3-compatible server: moto in server mode on
127.0.0.1, started here. Images are uploaded, fetched through their presigned URLs over HTTP,
signed for the image's lifetime, and swept once it has expired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import httpx
import openai
import pytest
from conftest import RunningServer, free_port, make_settings
from moto.server import ThreadedMotoServer

from pixelsmith.app import create_app
from pixelsmith.builders import build_store
from pixelsmith.storage.s3 import S3ImageStore, parse_s3_location

BUCKET = "pixelsmith-images"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    patch = pytest.MonkeyPatch()
    # The usual AWS settings, as a user would set them for their store.
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    patch.delenv("AWS_PROFILE", raising=False)
    with closing(boto3.client("s3")) as client:
        client.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        patch.undo()
        server.stop()


def test_s3_locations_parse():
    assert parse_s3_location("s3://bucket") == ("bucket", "")
    assert parse_s3_location("s3://bucket/a/b") == ("bucket", "a/b/")
    with pytest.raises(ValueError):
        parse_s3_location("https://bucket/a")


def test_url_answers_are_presigned_and_expire(s3_endpoint, cache_dir: Path, tmp_path: Path):
    settings = make_settings(
        cache_dir,
        tmp_path,
        storage=f"s3://{BUCKET}/generated",
        url_ttl_seconds=3,
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client:
            result = client.images.generate(
                model="tiny", prompt="a lighthouse", size="64x64", response_format="url", n=2
            )
        urls = [item.url for item in result.data]
        assert all(url and url.startswith(f"{s3_endpoint}/{BUCKET}/generated/") for url in urls)
        assert all("X-Amz-Signature=" in url and "X-Amz-Expires=" in url for url in urls)
        for url in urls:
            image = httpx.get(url)
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/png"
            assert image.content.startswith(b"\x89PNG")
        with closing(boto3.client("s3")) as s3:
            listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="generated/")
            tags = s3.get_object_tagging(Bucket=BUCKET, Key=listed["Contents"][0]["Key"])
        assert len(listed["Contents"]) == 2
        # What the documented lifecycle rule selects.
        assert tags["TagSet"] == [{"Key": "pixelsmith", "Value": "image"}]
        # The local file route has nothing to serve with object storage.
        assert httpx.get(f"{running.base_url}/v1/images/files/x.png").status_code == 404

        # Expiry: the URL is signed for what is left of the image's lifetime. (moto serves
        # expired presigned URLs all the same; S3 and the other stores refuse them.)
        query = parse_qs(urlparse(urls[0]).query)
        assert 1 <= int(query["X-Amz-Expires"][0]) <= 3
        signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        age = datetime.now(timezone.utc).replace(tzinfo=None) - signed_at
        assert abs(age.total_seconds()) < 60

        time.sleep(3.5)  # past the lifetime: the sweep removes both
        store: S3ImageStore = running.server.config.app.state.image_store
        assert store.sweep() == 2
        with closing(boto3.client("s3")) as s3:
            listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="generated/")
        assert listed.get("KeyCount", 0) == 0


def test_a_bucket_that_cannot_be_used_stops_the_server(s3_endpoint, cache_dir, tmp_path):
    settings = make_settings(cache_dir, tmp_path, storage="s3://no-such-bucket/x")
    with pytest.raises(ValueError, match="no-such-bucket"):
        build_store(settings)
