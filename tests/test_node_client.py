"""The official npm `openai` client (tests/node, installed by `make test` with npm ci) streams
generations and edits from the server and reads its errors."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

from PIL import Image

NODE_DIR = Path(__file__).resolve().parent / "node"


def test_the_npm_client_streams_generations_and_edits(server, tmp_path: Path):
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for this test (make test installs the client)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run: cd tests/node && npm ci"
    source = tmp_path / "input.png"
    Image.new("RGB", (128, 128), (40, 90, 160)).save(source)
    result = subprocess.run(
        [node, str(NODE_DIR / "stream.mjs"), f"{server.base_url}/v1", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    generated = summary["generated"]
    assert [event["type"] for event in generated] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [event["partial_image_index"] for event in generated[:2]] == [0, 1]
    for event in generated:
        image = Image.open(io.BytesIO(base64.b64decode(event["b64_json"])))
        assert image.size == (128, 128) and event["size"] == "128x128"
    assert generated[-1]["usage"]["input_tokens"] > 0

    edited = summary["edited"]
    assert [event["type"] for event in edited] == [
        "image_edit.partial_image",
        "image_edit.completed",
    ]
    final = Image.open(io.BytesIO(base64.b64decode(edited[-1]["b64_json"])))
    assert final.size == (128, 128)

    assert summary["error"] == {"status": 400, "param": "size", "code": "invalid_value"}
