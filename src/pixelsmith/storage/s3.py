"""Images in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...), returned as presigned
URLs that expire like the local store's signed URLs.

`storage = "s3://bucket/prefix"`. The client is boto3's, configured the usual AWS way: the
endpoint from AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), the region from AWS_REGION or
AWS_DEFAULT_REGION, credentials from the environment, a profile (AWS_PROFILE), or an instance
role. Every replica of the server writes to the same bucket, so a URL made by one is served by
the store itself, whichever replica answers next.

Retention: a presigned URL stops working when it expires; the object itself is removed by the
bucket's lifecycle rule (docs/deployment.md has one) and, where listing and deleting is allowed,
by the server's sweep of objects older than the URL lifetime under its prefix.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

from pixelsmith.imaging import MEDIA_TYPES
from pixelsmith.storage.local import NAME_PATTERN, StoredImage

logger = logging.getLogger(__name__)

# The object tag that marks images (docs/deployment.md: the lifecycle rule filters on it).
LIFECYCLE_TAG = "pixelsmith"
# S3's DeleteObjects takes at most this many keys per call.
DELETE_BATCH = 1000


def parse_s3_location(location: str) -> tuple[str, str]:
    """("bucket", "prefix/") from "s3://bucket/prefix"; the prefix is empty or ends in /."""
    parsed = urlparse(location)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"storage {location!r} is not an s3://bucket/prefix location")
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parsed.netloc, prefix


class S3ImageStore:
    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        ttl_seconds: int,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        if client is None:
            import boto3
            from botocore.config import Config

            # SigV4 everywhere (presigned URLs of the default signer can be V2 on some stores),
            # and retries for the store's own transient errors.
            client = boto3.client(
                "s3", config=Config(signature_version="s3v4", retries={"mode": "standard"})
            )
        self._client = client

    def check(self) -> None:
        """Fail now, with the reason, when the bucket cannot be reached or written."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise ValueError(
                f"cannot use s3://{self.bucket}/{self.prefix} for image storage: {exc}. Check "
                "the bucket name, AWS_ENDPOINT_URL, AWS_REGION and the credentials."
            ) from exc

    def save(self, data: bytes, extension: str) -> StoredImage:
        name = f"{secrets.token_hex(16)}.{extension}"
        if not NAME_PATTERN.match(name):
            raise ValueError(f"unsupported image extension {extension!r}")
        self._client.put_object(
            Bucket=self.bucket,
            Key=self.prefix + name,
            Body=data,
            ContentType=MEDIA_TYPES[extension],
            # Caches may keep it exactly as long as its URL stays valid.
            CacheControl=f"private, max-age={self.ttl_seconds}",
            # What a lifecycle rule can select: images, not the Files API's contents.
            Tagging=f"{LIFECYCLE_TAG}=image",
        )
        return StoredImage(name=name, expires_at=int(time.time()) + self.ttl_seconds)

    def url(self, image: StoredImage, base_url: str) -> str:
        """A presigned GET URL that expires when the image's lifetime ends."""
        remaining = max(1, image.expires_at - int(time.time()))
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.prefix + image.name},
            ExpiresIn=remaining,
        )
        return url

    def load(self, name: str) -> bytes:
        if not NAME_PATTERN.match(name):
            raise FileNotFoundError(name)
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(name) from None
            raise
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.ttl_seconds)
        if response["LastModified"] < cutoff:
            raise FileNotFoundError(name)  # expired, not swept yet
        data: bytes = response["Body"].read()
        return data

    def close(self) -> None:
        self._client.close()

    def put_blob(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get_blob(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise
        data: bytes = response["Body"].read()
        return data

    def delete_blob(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def sweep(self) -> int:
        """Delete this server's images older than the URL lifetime (only names it makes, under
        its prefix). Returns how many were removed."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.ttl_seconds)
        expired: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                name = entry["Key"][len(self.prefix) :]
                if NAME_PATTERN.match(name) and entry["LastModified"] < cutoff:
                    expired.append(entry["Key"])
        for start in range(0, len(expired), DELETE_BATCH):
            batch = expired[start : start + DELETE_BATCH]
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        if expired:
            logger.info("removed %d expired images from s3://%s/%s", len(expired), self.bucket,
                        self.prefix)  # fmt: skip
        return len(expired)
