"""The MCP tools through the official `mcp` client, over both transports: streamable HTTP at
/mcp of a real server on 127.0.0.1 (behind its API keys), and stdio to `pixelsmith mcp` run
as a subprocess, as an agent would start it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import c2pa
import httpx
import httpx2
import pytest
from conftest import RunningServer, make_settings
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine

KEY = "sk-mcp-test"
BLOCKED_PROMPT = "a sensual boudoir portrait of a woman"


@pytest.fixture(scope="module")
def keyed_server(
    cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    readable = tmp_path_factory.mktemp("readable")
    Image.new("RGB", (64, 64), (200, 40, 40)).save(readable / "red.png")
    settings = make_settings(
        cache_dir,
        tmp_path_factory.mktemp("mcp-images"),
        api_keys=KEY,
        mcp_readable_dirs=str(readable),
    )
    engine = build_engine(settings)
    engine.load()
    with RunningServer(create_app(settings, engine=engine)) as running:
        running.readable = readable  # type: ignore[attr-defined]
        yield running


@contextlib.asynccontextmanager
async def http_client(server: RunningServer, key: str = KEY) -> AsyncIterator[Client]:
    """The official client on streamable HTTP, its key in the Authorization header."""
    headers = {"authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


def image_of(result: CallToolResult, index: int = 0) -> Image.Image:
    images = [block for block in result.content if isinstance(block, ImageContent)]
    return Image.open(io.BytesIO(base64.b64decode(images[index].data)))


def credentials_actions(data: str) -> list[str]:
    """The C2PA actions an image's manifest records (its signer's trust is tested in
    tests/test_provenance.py)."""
    with c2pa.Reader("image/png", io.BytesIO(base64.b64decode(data))) as reader:
        assert reader.get_validation_state() in ("Valid", "Trusted")
        manifest = reader.get_active_manifest()
    actions = next(
        a["data"] for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")
    )
    return [action["action"] for action in actions["actions"]]


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


class Progress:
    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))


async def generate_and_edit(client: Client) -> dict[str, Any]:
    """The tour an agent takes: list the tools, generate with progress, edit the result by its
    URI, read it back as a resource, and meet a refusal."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    progress = Progress()
    generated = await client.call_tool(
        "generate_image",
        {"prompt": "a red fox in snow", "size": "64x64", "steps": 3, "seed": 7, "n": 2},
        progress_callback=progress,
    )
    assert not generated.is_error, text_of(generated)
    first = generated.structured_content["images"][0]
    edited = await client.call_tool(
        "edit_image",
        {"prompt": "the fox in a blue scarf", "images": [first["uri"]], "steps": 2, "seed": 3},
    )
    read_back = await client.read_resource(first["uri"])
    blocked = await client.call_tool("generate_image", {"prompt": BLOCKED_PROMPT, "size": "64x64"})
    bad_size = await client.call_tool("generate_image", {"prompt": "a fox", "size": "100x100"})
    models = await client.call_tool("list_models", {})
    return {
        "tools": tools,
        "progress": progress.reports,
        "generated": generated,
        "edited": edited,
        "read_back": read_back,
        "blocked": blocked,
        "bad_size": bad_size,
        "models": models,
    }


def check_tour(tour: dict[str, Any]) -> None:
    tools = tour["tools"]
    assert set(tools) == {"generate_image", "edit_image", "list_models"}
    generate_schema = tools["generate_image"].input_schema
    assert generate_schema["required"] == ["prompt"]
    assert "output_format" in generate_schema["properties"]
    assert set(tools["edit_image"].input_schema["required"]) == {"prompt", "images"}
    assert tools["generate_image"].output_schema is not None

    generated: CallToolResult = tour["generated"]
    structured = generated.structured_content
    assert structured["size"] == "64x64" and structured["output_format"] == "png"
    assert [image["seed"] for image in structured["images"]] == [7, 8]
    assert image_of(generated, 0).size == (64, 64) and image_of(generated, 1).size == (64, 64)
    links = [block for block in generated.content if isinstance(block, ResourceLink)]
    assert [str(link.uri) for link in links] == [image["uri"] for image in structured["images"]]
    assert structured["usage"]["output_tokens"] > 0

    # One report per denoising step, from the engine's step callback.
    steps = [(progress, total) for progress, total, _ in tour["progress"]]
    assert steps and steps[-1] == (3, 3), steps
    assert all(total == 3 for _, total in steps)
    assert tour["progress"][-1][2] == "step 3 of 3"

    edited: CallToolResult = tour["edited"]
    assert not edited.is_error, text_of(edited)
    assert image_of(edited).size == (64, 64)
    assert edited.structured_content["images"][0]["seed"] == 3

    # The tools' images are the service's: signed like every image the API returns.
    first_data = next(b for b in generated.content if isinstance(b, ImageContent)).data
    assert credentials_actions(first_data) == ["c2pa.created"]
    edited_data = next(b for b in edited.content if isinstance(b, ImageContent)).data
    assert "c2pa.edited" in credentials_actions(edited_data)

    blob = tour["read_back"].contents[0]
    assert blob.mime_type == "image/png"
    first_image = next(block for block in generated.content if isinstance(block, ImageContent))
    assert blob.blob == first_image.data

    blocked: CallToolResult = tour["blocked"]
    assert blocked.is_error
    assert blocked.structured_content["error"]["code"] == "moderation_blocked"
    assert "safety system" in text_of(blocked)

    bad_size: CallToolResult = tour["bad_size"]
    assert bad_size.is_error
    assert bad_size.structured_content["error"]["param"] == "size"
    assert "100x100" in text_of(bad_size)

    models = tour["models"].structured_content
    assert models["default_model"] == "tiny"
    assert models["models"][0]["id"] == "tiny"


def test_tools_over_streamable_http_behind_the_api_keys(keyed_server: RunningServer):
    async def tour() -> dict[str, Any]:
        async with http_client(keyed_server) as client:
            return await generate_and_edit(client)

    check_tour(asyncio.run(tour()))
    # The server goes on serving the HTTP API beside it.
    assert httpx.get(f"{keyed_server.base_url}/health").status_code == 200


def test_mcp_without_a_key_is_refused_with_the_api_envelope(keyed_server: RunningServer):
    response = httpx.post(
        f"{keyed_server.base_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"

    async def connect_with_a_wrong_key() -> None:
        async with http_client(keyed_server, key="sk-wrong") as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017  (the SDK's error type for a 401 varies)
        asyncio.run(connect_with_a_wrong_key())


def test_edit_inputs_as_data_urls_paths_and_signed_urls(keyed_server: RunningServer):
    readable: Path = keyed_server.readable  # type: ignore[attr-defined]
    red = (readable / "red.png").read_bytes()
    data_url = "data:image/png;base64," + base64.b64encode(red).decode()
    outside = Path(os.path.realpath("/etc/hostname"))

    async def calls() -> list[CallToolResult]:
        async with http_client(keyed_server) as client:
            as_url = await client.call_tool(
                "generate_image",
                {"prompt": "a fox", "size": "64x64", "steps": 2, "response_format": "url"},
            )
            signed_url = as_url.structured_content["images"][0]["url"]
            unknown = "pixelsmith://images/" + "0" * 32 + ".png"
            edits = [
                {"images": [data_url]},
                {"images": [base64.b64encode(red).decode()]},
                {"images": [str(readable / "red.png")]},
                {"images": [signed_url]},
                {"images": [str(outside)]},
                {"images": ["../../etc/passwd"]},
                {"images": [unknown]},
                {"images": [data_url], "mask": "junk!"},
            ]
            base = {"prompt": "make it blue", "steps": 2, "size": "64x64"}
            return [as_url] + [
                await client.call_tool("edit_image", {**base, **edit}) for edit in edits
            ]

    as_url, from_data_url, from_base64, from_path, from_signed_url, *refused = asyncio.run(calls())
    # URLs instead of bytes: a link the client can fetch, no image content.
    assert not any(isinstance(block, ImageContent) for block in as_url.content)
    url = as_url.structured_content["images"][0]["url"]
    assert url.startswith(keyed_server.base_url + "/v1/images/files/")
    assert httpx.get(url).content.startswith(b"\x89PNG")
    for result in (from_data_url, from_base64, from_path, from_signed_url):
        assert not result.is_error, text_of(result)
        assert image_of(result).size == (64, 64)
    outside_dirs, relative, unknown, bad_mask = refused
    for result in (outside_dirs, relative):
        assert result.is_error
        assert "mcp_readable_dirs" in text_of(result)
        assert result.structured_content["error"]["param"] == "images[0]"
    assert unknown.is_error and "no such image" in text_of(unknown)
    assert bad_mask.is_error and bad_mask.structured_content["error"]["param"] == "mask"


def test_tool_calls_count_against_the_keys_limits(cache_dir: Path, tmp_path: Path):
    settings = make_settings(cache_dir, tmp_path, api_keys=KEY, rate_limit_per_minute=2)
    engine = build_engine(settings)
    engine.load()

    async def three_calls(server: RunningServer) -> list[CallToolResult]:
        async with http_client(server) as client:
            arguments = {"prompt": "a fox", "size": "64x64", "steps": 1}
            return [await client.call_tool("generate_image", arguments) for _ in range(3)]

    with RunningServer(create_app(settings, engine=engine)) as running:
        results = asyncio.run(three_calls(running))
        # The HTTP API shares the same bucket: it is empty now.
        response = httpx.post(
            f"{running.base_url}/v1/images/generations",
            json={"prompt": "a fox", "size": "64x64"},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert [result.is_error for result in results] == [False, False, True]
    assert results[2].structured_content["error"]["code"] == "rate_limit_exceeded"
    assert response.status_code == 429


def test_tools_over_stdio_from_pixelsmith_mcp(cache_dir: Path, tmp_path: Path):
    """`pixelsmith mcp --model tiny`, started by the client as an agent starts it."""
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "pixelsmith", "mcp", "--model", "tiny", "--storage-dir", str(tmp_path)],
        env={**os.environ, "PIXELSMITH_CACHE_DIR": str(cache_dir)},
    )

    async def tour() -> dict[str, Any]:
        async with Client(parameters, read_timeout_seconds=180) as client:
            return await generate_and_edit(client)

    check_tour(asyncio.run(tour()))


def test_a_rebound_host_name_is_refused_on_loopback(keyed_server: RunningServer):
    """A web page that rebinds its own name to 127.0.0.1 must not reach the tools."""
    response = httpx.post(
        f"{keyed_server.base_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "authorization": f"Bearer {KEY}",
            "accept": "application/json, text/event-stream",
            "host": "evil.example",
        },
    )
    assert response.status_code == 421


def test_the_public_name_a_proxy_forwards_is_let_through():
    from pixelsmith.mcp_server import _transport_security

    guard = _transport_security("127.0.0.1", "https://img.example.com")
    assert guard.enable_dns_rebinding_protection
    assert "img.example.com" in guard.allowed_hosts
    assert "https://img.example.com" in guard.allowed_origins
    assert not _transport_security("0.0.0.0", None).enable_dns_rebinding_protection
