"""`pixelsmith batch submit | status | download`: the Batch API of a running server, from the
shell. It speaks HTTP to the server like any client (httpx), so it works against a remote
server too; it needs no models.

    pixelsmith batch submit requests.jsonl --wait          # upload, create, follow
    pixelsmith batch status batch_1a2b --wait
    pixelsmith batch download batch_1a2b --output out/ --images
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pybase64
from tqdm import tqdm

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
FINAL = ("completed", "failed", "cancelled", "expired")
POLL_SECONDS = 2.0


def add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch", help="Submit, follow and download batch jobs on a running server."
    )
    batch.add_argument(
        "--base-url",
        default=os.environ.get("PIXELSMITH_BASE_URL", DEFAULT_BASE_URL),
        help=f"The server's API (env PIXELSMITH_BASE_URL; default {DEFAULT_BASE_URL}).",
    )
    batch.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_API_KEY", "none"),
        help="API key (env OPENAI_API_KEY).",
    )
    actions = batch.add_subparsers(dest="batch_command", required=True)
    submit = actions.add_parser("submit", help="Upload a JSONL file and create a batch.")
    submit.add_argument("file", type=Path, help="JSONL: one request per line.")
    submit.add_argument(
        "--endpoint",
        default="/v1/images/generations",
        choices=["/v1/images/generations", "/v1/images/edits"],
    )
    submit.add_argument("--metadata", action="append", default=[], help="KEY=VALUE (repeat).")
    submit.add_argument("--wait", action="store_true", help="Follow it until it ends.")
    status = actions.add_parser("status", help="Show a batch.")
    status.add_argument("id")
    status.add_argument("--wait", action="store_true", help="Follow it until it ends.")
    download = actions.add_parser("download", help="Download a batch's output and error files.")
    download.add_argument("id")
    download.add_argument("-o", "--output", type=Path, default=Path("."), help="Directory.")
    download.add_argument(
        "--images", action="store_true", help="Also write each image as <custom_id>-<n>.<format>."
    )


def run_batch_command(args: argparse.Namespace) -> int:
    with httpx.Client(
        base_url=args.base_url.rstrip("/") + "/",
        headers={"authorization": f"Bearer {args.api_key}"},
        timeout=120,
    ) as client:
        try:
            if args.batch_command == "submit":
                return _submit(client, args)
            if args.batch_command == "status":
                batch = _get(client, f"batches/{args.id}")
                return _follow(client, batch) if args.wait else _show(batch)
            return _download(client, args)
        except BatchCommandError as exc:
            print(f"pixelsmith batch: {exc}", file=sys.stderr)
            return 1
        except httpx.TransportError as exc:
            print(f"pixelsmith batch: cannot reach {args.base_url}: {exc}", file=sys.stderr)
            return 1


class BatchCommandError(Exception):
    pass


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise BatchCommandError(f"{response.status_code}: {message}")
    return response.json()


def _get(client: httpx.Client, path: str) -> dict[str, Any]:
    found: dict[str, Any] = _checked(client.get(path))
    return found


def _submit(client: httpx.Client, args: argparse.Namespace) -> int:
    metadata = {}
    for pair in args.metadata:
        key, equals, value = pair.partition("=")
        if not equals:
            raise BatchCommandError(f"--metadata {pair!r}: expected KEY=VALUE")
        metadata[key] = value
    with args.file.open("rb") as handle:
        uploaded = _checked(
            client.post(
                "files", files={"file": (args.file.name, handle)}, data={"purpose": "batch"}
            )
        )
    body: dict[str, Any] = {
        "input_file_id": uploaded["id"],
        "endpoint": args.endpoint,
        "completion_window": "24h",
    }
    if metadata:
        body["metadata"] = metadata
    batch = _checked(client.post("batches", json=body))
    print(batch["id"])
    return _follow(client, batch) if args.wait else 0


def _show(batch: dict[str, Any]) -> int:
    counts = batch.get("request_counts") or {}
    print(
        f"{batch['id']} {batch['status']} "
        f"{counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed "
        f"of {counts.get('total', 0)}"
    )
    for error in (batch.get("errors") or {}).get("data", []):
        print(f"  line {error.get('line')}: {error.get('code')}: {error.get('message')}")
    return 0 if batch["status"] != "failed" else 1


def _follow(client: httpx.Client, batch: dict[str, Any]) -> int:
    """A progress bar until the batch ends; then its summary."""
    with tqdm(total=0, unit="request", desc=batch["id"], file=sys.stderr) as bar:
        while batch["status"] not in FINAL:
            time.sleep(POLL_SECONDS)
            batch = _get(client, f"batches/{batch['id']}")
            counts = batch.get("request_counts") or {}
            bar.total = counts.get("total", 0)
            bar.n = counts.get("completed", 0) + counts.get("failed", 0)
            bar.set_postfix_str(batch["status"])
            bar.refresh()
    return _show(batch)


def _download(client: httpx.Client, args: argparse.Namespace) -> int:
    batch = _get(client, f"batches/{args.id}")
    args.output.mkdir(parents=True, exist_ok=True)
    written = 0
    for key, suffix in (("output_file_id", "output"), ("error_file_id", "error")):
        file_id = batch.get(key)
        if not file_id:
            continue
        response = client.get(f"files/{file_id}/content")
        if response.status_code >= 400:
            _checked(response)
        path = args.output / f"{batch['id']}_{suffix}.jsonl"
        path.write_bytes(response.content)
        print(path)
        if args.images and suffix == "output":
            written += _write_images(response.text, args.output)
    if args.images:
        print(f"{written} images written to {args.output}")
    if not batch.get("output_file_id") and not batch.get("error_file_id"):
        raise BatchCommandError(f"batch {batch['id']} has no results yet ({batch['status']})")
    return 0


def _write_images(text: str, directory: Path) -> int:
    """Each image as <n>-<custom_id>-<i>.<format>: n, the line's place in the file, keeps
    two custom ids that read alike once made safe for a file name apart."""
    count = 0
    lines = [line for line in text.split("\n") if line.strip()]  # JSON may hold U+2028
    for number, line in enumerate(lines, 1):
        entry = json.loads(line)
        body = (entry.get("response") or {}).get("body") or {}
        extension = body.get("output_format", "png")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in entry["custom_id"])
        for index, item in enumerate(body.get("data", [])):
            if item.get("b64_json"):
                path = directory / f"{number:05d}-{safe[:80]}-{index}.{extension}"
                path.write_bytes(pybase64.b64decode(item["b64_json"]))
                count += 1
    return count
