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


def test_the_npm_client_speaks_todays_api(server, tmp_path: Path):
    import xml.etree.ElementTree as ElementTree

    node = shutil.which("node")
    assert node is not None, "Node.js is needed for this test (make test installs the client)"
    paths = {}
    for name, image in {
        "image": Image.new("RGB", (64, 64), (40, 90, 160)),
        "second": Image.new("RGB", (64, 64), (230, 20, 20)),
        "markup": Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
    }.items():
        if name == "markup":
            image.paste((255, 0, 0, 255), (8, 8, 56, 24))
        paths[name] = tmp_path / f"{name}.png"
        image.save(paths[name])
    result = subprocess.run(
        [node, str(NODE_DIR / "today.mjs"), f"{server.base_url}/v1",
         str(paths["image"]), str(paths["second"]), str(paths["markup"])],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    def decoded(part: str) -> bytes:
        return base64.b64decode(summary[part]["b64_json"])

    assert {"gpt-image-2.5-flare", "gpt-image-2.6-sunburst", "chatgpt-image-latest"} <= set(
        summary["models"]
    )
    sized = summary["sized"]
    assert (sized["size"], sized["quality"], sized["safety_identifier"]) == (
        "336x208",
        "xhigh",
        "user-7",
    )
    assert Image.open(io.BytesIO(decoded("sized"))).size == (336, 208)
    with Image.open(io.BytesIO(decoded("gif"))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 3 and gif.info["duration"] == 150
    svg = ElementTree.fromstring(decoded("svg"))
    assert svg.tag.endswith("svg") and list(svg.iter("{http://www.w3.org/2000/svg}path"))
    assert summary["svg"]["output_format"] == "svg"
    for part in ("twoImages", "markedUp"):
        assert Image.open(io.BytesIO(decoded(part))).size == (64, 64)
    assert summary["error"] == {"status": 400, "param": "quality", "code": "invalid_value"}


def test_the_npm_client_runs_a_batch(server):
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for this test (make test installs the client)"
    result = subprocess.run(
        [node, str(NODE_DIR / "batch.mjs"), f"{server.base_url}/v1"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert sorted(summary["outputs"], key=lambda entry: entry["custom_id"]) == [
        {"custom_id": "a", "status_code": 200, "images": 1},
        {"custom_id": "b", "status_code": 200, "images": 1},
    ]
    assert summary["listed_first"]
