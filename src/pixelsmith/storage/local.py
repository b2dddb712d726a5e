"""Local-disk image storage with HMAC-signed, expiring URLs.

A URL is `/v1/images/files/<name>?expires=<unix>&signature=<hex>` where the signature is
HMAC-SHA256(key, "<name>:<expires>"). Names are random hex plus an extension and are checked
against a strict pattern before touching the disk, so no path can leave the storage directory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from pixelsmith.imaging import MEDIA_TYPES

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(rf"^[0-9a-f]{{32}}\.({'|'.join(MEDIA_TYPES)})$")
EXPIRES_PATTERN = re.compile(r"^[0-9]{1,12}$")
SIGNATURE_PATTERN = re.compile(r"^[0-9a-f]{64}$")
BLOB_KEY_PATTERN = re.compile(r"^[a-z]+/[a-z]+-[0-9a-f]{8,64}$")
MIN_KEY_BYTES = 32
SIGNING_KEY_FILE = ".signing-key"


@dataclass(frozen=True)
class StoredImage:
    name: str
    expires_at: int


class InvalidImageURL(Exception):
    """The name, signature or expiry of an image URL is not acceptable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ImageStore(Protocol):
    """What the service needs from image storage: keep an image, give a URL that reaches it
    until it expires, and forget expired ones."""

    kind: str  # for metrics and logs: "local", "s3"

    def save(self, data: bytes, extension: str) -> StoredImage: ...

    def url(self, image: StoredImage, base_url: str) -> str:
        """An expiring URL for `image`; `base_url` is where clients reach this server."""
        ...

    def load(self, name: str) -> bytes:
        """The bytes of a saved image by its name, while it has not expired (the MCP tools
        read earlier results back); FileNotFoundError otherwise."""
        ...

    def sweep(self) -> int: ...

    def close(self) -> None:
        """Release connections (at shutdown)."""
        ...

    # Blobs: other contents kept where the images are (uploaded and batch files), under
    # server-made keys such as "files/file-1a2b"; no URLs, no sweep (their owners expire them).
    def put_blob(self, key: str, data: bytes) -> None: ...

    def get_blob(self, key: str) -> bytes: ...

    def delete_blob(self, key: str) -> None: ...


class LocalImageStore:
    """Images on local disk, served by this server at signed, expiring URLs."""

    kind = "local"
    url_prefix = "/v1/images/files"

    def __init__(
        self,
        directory: Path,
        *,
        ttl_seconds: int,
        signing_key: bytes | None = None,
        file_mode: int = 0o600,
    ):
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self.file_mode = file_mode
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = signing_key or self._persistent_key()

    def _persistent_key(self) -> bytes:
        """A random key kept beside the images, so URLs stay valid across restarts.

        Written to a private temp file and linked into place, so two processes sharing the
        directory agree on one key and never read a half-written one.
        """
        path = self.directory / SIGNING_KEY_FILE
        for _ in range(2):
            try:
                key = bytes.fromhex(path.read_text().strip())
            except FileNotFoundError:
                pass
            else:
                if len(key) < MIN_KEY_BYTES:
                    raise ValueError(
                        f"{path} holds a signing key shorter than {MIN_KEY_BYTES} bytes; "
                        "delete it to have a new one made"
                    )
                return key
            temporary = self.directory / f".signing-key.{secrets.token_hex(8)}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_bytes(MIN_KEY_BYTES).hex())
            try:
                os.link(temporary, path)  # fails if another process got there first
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        raise RuntimeError(f"could not create or read {path}")

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._key, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()

    def save(self, data: bytes, extension: str) -> StoredImage:
        name = f"{secrets.token_hex(16)}.{extension}"
        if not NAME_PATTERN.match(name):
            raise ValueError(f"unsupported image extension {extension!r}")
        temporary = self.directory / f".{name}.partial"
        # Created with the configured mode (not the umask's 0644): images are the users'.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, self.file_mode)  # the umask may have taken bits away
        os.replace(temporary, self.directory / name)  # readers never see half a file
        return StoredImage(name=name, expires_at=int(time.time()) + self.ttl_seconds)

    def url(self, image: StoredImage, base_url: str) -> str:
        return base_url.rstrip("/") + self.signed_path(image)

    def signed_path(self, image: StoredImage) -> str:
        query = urlencode(
            {
                "expires": image.expires_at,
                "signature": self._signature(image.name, image.expires_at),
            }
        )
        return f"{self.url_prefix}/{image.name}?{query}"

    def open_verified(self, name: str, expires: str, signature: str) -> Path:
        """Return the file for a URL, or raise InvalidImageURL."""
        if not (
            NAME_PATTERN.match(name)
            and EXPIRES_PATTERN.match(expires)
            and SIGNATURE_PATTERN.match(signature)
        ):
            raise InvalidImageURL("Invalid image URL.", "invalid_image_url")
        expected = self._signature(name, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidImageURL("Invalid image URL signature.", "invalid_signature")
        if int(expires) < time.time():
            raise InvalidImageURL(
                "This image URL has expired. Image URLs are valid for "
                f"{self.ttl_seconds} seconds after generation.",
                "url_expired",
            )
        path = self.directory / name
        if not path.is_file():
            raise InvalidImageURL("The image no longer exists.", "image_not_found")
        return path

    def load(self, name: str) -> bytes:
        if not NAME_PATTERN.match(name):
            raise FileNotFoundError(name)
        path = self.directory / name
        try:
            if path.stat().st_mtime < time.time() - self.ttl_seconds:
                raise FileNotFoundError(name)  # expired, not swept yet
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(name) from None

    def close(self) -> None:
        pass  # nothing held open

    def _blob_path(self, key: str) -> Path:
        if not BLOB_KEY_PATTERN.match(key):
            raise ValueError(f"invalid blob key {key!r}")
        return self.directory / key

    def put_blob(self, key: str, data: bytes) -> None:
        path = self._blob_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.partial")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)

    def get_blob(self, key: str) -> bytes:
        return self._blob_path(key).read_bytes()

    def delete_blob(self, key: str) -> None:
        self._blob_path(key).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Delete images older than the URL lifetime. Returns how many were removed."""
        cutoff = time.time() - self.ttl_seconds
        removed = 0
        for path in self.directory.iterdir():
            if not (NAME_PATTERN.match(path.name) or path.name.endswith(".partial")):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            logger.info("removed %d expired images from %s", removed, self.directory)
        return removed
