"""Shared fixtures. Everything is offline and CPU-only: the tiny model is built here once per
session (seeded random weights) and loaded back through diffusers' from_pretrained."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests never talk to a model hub: hub look-ups go to a closed port on this machine.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for name in list(os.environ):
    if name.startswith("PIXELSMITH_"):
        del os.environ[name]

from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.builders import build_engine  # noqa: E402
from pixelsmith.engine import Engine  # noqa: E402
from pixelsmith.engine.tiny import ensure_tiny_model  # noqa: E402
from pixelsmith.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pixelsmith cache with the tiny model already built."""
    directory = tmp_path_factory.mktemp("pixelsmith-cache")
    ensure_tiny_model(directory)
    return directory


def make_settings(cache_dir: Path, storage_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model": "tiny",
        "cache_dir": cache_dir,
        "storage_dir": storage_dir,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_settings(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(cache_dir, tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_settings: Settings) -> Engine:
    """A loaded (not started) engine on the tiny model."""
    engine = build_engine(tiny_settings)
    engine.load()
    return engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """A real server on 127.0.0.1 in a background thread, built as `pixelsmith serve` builds
    it (api/server.py: the hardened protocol, draining); `server_settings` override the app's
    settings for the server (timeouts, connection limits)."""

    def __init__(self, app: Any, **server_settings: Any) -> None:
        from pixelsmith.api.server import build_server

        self.port = free_port()
        inner = app
        while not hasattr(inner, "state"):  # a test's ASGI wrapper around the app
            inner = inner.app
        settings = inner.state.settings.model_copy(
            update={"host": "127.0.0.1", "port": self.port, **server_settings}
        )
        self.server = build_server(app, settings, log_level="warning", drain=inner.state.drain)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in 60 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def server(tiny_settings: Settings, tiny_engine: Engine) -> Iterator[RunningServer]:
    with RunningServer(create_app(tiny_settings, engine=tiny_engine)) as running:
        yield running


def clients_with_keys(server: RunningServer, keys: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """One official client per API key (as owners of files and batches), closed after."""
    import contextlib

    import openai

    with contextlib.ExitStack() as stack:
        yield tuple(
            stack.enter_context(
                openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
            )
            for key in keys
        )


@pytest.fixture()
def client(server: RunningServer):  # -> openai.OpenAI
    import openai

    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key="anything", max_retries=0
    ) as official_client:
        yield official_client


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    assert found, f"PostgreSQL's {name} is needed (make test installs Debian's postgresql)"
    return found


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server (Debian's) on 127.0.0.1 for this session, and its URL."""
    # Not under pytest's own temporary directory: the postgres user cannot enter root's.
    home = Path(tempfile.mkdtemp(prefix="pixelsmith-postgres-"))
    data = home / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    initdb = subprocess.run(
        _as_postgres([_postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "pixelsmith"]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert initdb.returncode == 0, initdb.stderr
    options = f"-p {port} -h 127.0.0.1 -k {data}"
    pg_ctl = _postgres_bin("pg_ctl")
    log = str(data / "log")
    started = subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-w", "-l", log, "start"]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        yield f"postgresql://pixelsmith@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def pixels(image: bytes | str | None) -> list[Any]:
    """The pixels of every frame of an encoded image (bytes or base64): what a seed decides.
    Two images of one seed differ in their bytes, as each carries its own signed C2PA
    manifest (a fresh id and signature)."""
    import base64
    import io

    import numpy as np
    from PIL import Image, ImageSequence

    data = base64.b64decode(image or "") if not isinstance(image, bytes) else image
    with Image.open(io.BytesIO(data)) as opened:
        return [np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(opened)]


def same_pixels(a: bytes | str | None, b: bytes | str | None) -> bool:
    first, second = pixels(a), pixels(b)
    return len(first) == len(second) and all(
        x.shape == y.shape and (x == y).all() for x, y in zip(first, second, strict=True)
    )
