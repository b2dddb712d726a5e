"""Signed, expiring image URLs on local disk."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from pixelsmith.storage.local import InvalidImageURL, LocalImageStore


def query(path: str) -> tuple[str, str, str]:
    url = urlparse(path)
    params = {key: value[0] for key, value in parse_qs(url.query).items()}
    return url.path.rsplit("/", 1)[1], params["expires"], params["signature"]


def test_round_trip_and_tampering(tmp_path: Path):
    store = LocalImageStore(tmp_path, ttl_seconds=60)
    stored = store.save(b"png-bytes", "png")
    name, expires, signature = query(store.signed_path(stored))
    assert store.open_verified(name, expires, signature).read_bytes() == b"png-bytes"
    for bad in [
        (name, expires, "0" * 64),
        (name, str(int(expires) + 10), signature),
        ("f" * 32 + ".png", expires, signature),
    ]:
        with pytest.raises(InvalidImageURL) as error:
            store.open_verified(*bad)
        assert error.value.code == "invalid_signature"


@pytest.mark.parametrize(
    "name", ["../secret.png", "..%2Fsecret.png", "/etc/passwd", ".signing-key", "a" * 32 + ".exe"]
)
def test_names_outside_the_pattern_are_refused(tmp_path: Path, name: str):
    store = LocalImageStore(tmp_path, ttl_seconds=60)
    with pytest.raises(InvalidImageURL) as error:
        store.open_verified(name, str(int(time.time()) + 60), "0" * 64)
    assert error.value.code == "invalid_image_url"


@pytest.mark.parametrize(
    ("expires", "signature"),
    [("²", "0" * 64), ("9" * 5000, "0" * 64), ("1", "é"), ("1", "0" * 63), ("-1", "0" * 64)],
)
def test_malformed_queries_are_refused_not_crashed(tmp_path: Path, expires, signature):
    store = LocalImageStore(tmp_path, ttl_seconds=60)
    stored = store.save(b"x", "png")
    with pytest.raises(InvalidImageURL) as error:
        store.open_verified(stored.name, expires, signature)
    assert error.value.code == "invalid_image_url"


def test_a_short_signing_key_file_is_refused(tmp_path: Path):
    (tmp_path / ".signing-key").write_text("")
    with pytest.raises(ValueError, match="shorter than"):
        LocalImageStore(tmp_path, ttl_seconds=60)


def test_expired_url_is_refused(tmp_path: Path):
    store = LocalImageStore(tmp_path, ttl_seconds=60)
    stored = store.save(b"x", "webp")
    old = type(stored)(name=stored.name, expires_at=int(time.time()) - 1)
    with pytest.raises(InvalidImageURL) as error:
        store.open_verified(*query(store.signed_path(old)))
    assert error.value.code == "url_expired"


def test_signing_key_survives_restart_unless_configured(tmp_path: Path):
    first = LocalImageStore(tmp_path, ttl_seconds=60)
    stored = first.save(b"x", "jpeg")
    path = first.signed_path(stored)
    assert LocalImageStore(tmp_path, ttl_seconds=60).open_verified(*query(path))
    assert (tmp_path / ".signing-key").stat().st_mode & 0o777 == 0o600
    other_key = LocalImageStore(tmp_path, ttl_seconds=60, signing_key=b"another key")
    with pytest.raises(InvalidImageURL):
        other_key.open_verified(*query(path))


def test_sweep_deletes_only_expired_images(tmp_path: Path):
    store = LocalImageStore(tmp_path, ttl_seconds=60)
    old = store.save(b"old", "png")
    fresh = store.save(b"fresh", "png")
    (tmp_path / "notes.txt").write_text("not ours")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / old.name, (an_hour_ago, an_hour_ago))
    assert store.sweep() == 1
    assert not (tmp_path / old.name).exists()
    assert (tmp_path / fresh.name).exists()
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / ".signing-key").exists()
