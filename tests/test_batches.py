"""OpenAI's Batch API through the official client, on a real server with the tiny model:
a generations batch with an invalid and a moderated line, an edits batch with data URLs and
uploaded files, structural failures, cancel, pagination, owners, and a restart mid-batch."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import openai
import pytest
from conftest import RunningServer, clients_with_keys, make_settings
from PIL import Image

from pixelsmith.app import create_app

KEYS = ("sk-batch-one", "sk-batch-two")


def line(custom_id: str, body: dict, url: str = "/v1/images/generations") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def png_data_url(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_for(client: openai.OpenAI, batch_id: str, statuses: set[str], timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} is still {batch.status}")


def read_lines(client: openai.OpenAI, file_id: str) -> dict[str, dict]:
    text = client.files.content(file_id).read().decode()
    return {entry["custom_id"]: entry for entry in map(json.loads, text.splitlines())}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batches")


def batch_settings(cache_dir: Path, storage: Path):
    return make_settings(
        cache_dir,
        storage,
        api_keys=",".join(KEYS),
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )


@pytest.fixture(scope="module")
def server(cache_dir: Path, storage: Path):
    with RunningServer(create_app(batch_settings(cache_dir, storage))) as running:
        yield running


@pytest.fixture()
def clients(server):
    yield from clients_with_keys(server, KEYS)


def test_a_generations_batch_completes_with_its_error_lines(clients):
    one, _ = clients
    good = {"model": "tiny", "prompt": "a lighthouse", "size": "64x64"}
    source = one.files.create(
        file=(
            "requests.jsonl",
            jsonl(
                line("first", good),
                line("second", {**good, "prompt": "a red barn", "n": 2}),
                line("bad-size", {**good, "size": "13x13"}),
                line("moderated", {**good, "prompt": "gory decapitation"}),
            ),
        ),
        purpose="batch",
    )
    created = one.batches.create(
        input_file_id=source.id,
        endpoint="/v1/images/generations",
        completion_window="24h",
        metadata={"job": "catalogue"},
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert created.id.startswith("batch_") and created.status == "validating"
    assert created.metadata == {"job": "catalogue"}
    done = wait_for(one, created.id, {"completed", "failed"})
    assert done.status == "completed", done
    assert done.request_counts.model_dump() == {"total": 4, "completed": 2, "failed": 2}
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    outputs = read_lines(one, done.output_file_id)
    assert set(outputs) == {"first", "second"}
    second = outputs["second"]["response"]
    assert second["status_code"] == 200 and second["request_id"].startswith("req_")
    assert outputs["second"]["id"].startswith("batch_req_") and outputs["second"]["error"] is None
    images = [base64.b64decode(item["b64_json"]) for item in second["body"]["data"]]
    assert len(images) == 2
    assert Image.open(io.BytesIO(images[0])).size == (64, 64)
    errors = read_lines(one, done.error_file_id)
    assert errors["bad-size"]["response"]["status_code"] == 400
    assert errors["bad-size"]["response"]["body"]["error"]["param"] == "size"
    blocked = errors["moderated"]["response"]["body"]["error"]
    assert blocked["code"] == "moderation_blocked"
    output_file = one.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.expires_at == output_file.created_at + 7200  # output_expires_after


def test_an_edits_batch_takes_data_urls_and_uploaded_files(clients):
    one, _ = clients
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buffer, format="PNG")
    uploaded = one.files.create(file=("blue.png", buffer.getvalue()), purpose="vision")
    edit = {"model": "tiny", "prompt": "paint it", "size": "64x64"}
    url = "/v1/images/edits"
    red = png_data_url((255, 0, 0))
    source = one.files.create(
        file=(
            "edits.jsonl",
            jsonl(
                line("data-url", {**edit, "images": [{"image_url": red}]}, url),
                line("file-id", {**edit, "images": [{"file_id": uploaded.id}]}, url),
                line("missing-file", {**edit, "images": [{"file_id": "file-nope"}]}, url),
            ),
        ),
        purpose="batch",
    )
    batch = one.batches.create(input_file_id=source.id, endpoint=url, completion_window="24h")
    done = wait_for(one, batch.id, {"completed", "failed"})
    assert done.status == "completed" and done.request_counts.completed == 2
    assert set(read_lines(one, done.output_file_id)) == {"data-url", "file-id"}
    error = read_lines(one, done.error_file_id)["missing-file"]["response"]["body"]["error"]
    assert error["param"] == "images[0].file_id"


def test_a_malformed_file_fails_the_batch_in_validating(clients):
    one, _ = clients
    good = {"model": "tiny", "prompt": "x", "size": "64x64"}
    source = one.files.create(
        file=(
            "broken.jsonl",
            b"not json\n"
            + jsonl(line("a", good), line("a", good), line("b", good, url="/v1/images/edits")),
        ),
        purpose="batch",
    )
    batch = one.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    failed = wait_for(one, batch.id, {"failed", "completed"})
    assert failed.status == "failed" and failed.failed_at
    assert [(e.line, e.code) for e in failed.errors.data] == [
        (1, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_url"),
    ]
    with pytest.raises(openai.BadRequestError) as wrong_file:
        one.batches.create(
            input_file_id="file-nope", endpoint="/v1/images/generations", completion_window="24h"
        )
    assert wrong_file.value.param == "input_file_id"
    with pytest.raises(openai.BadRequestError) as endpoint:
        one.batches.create(
            input_file_id=source.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    assert endpoint.value.param == "endpoint"


def test_cancel_keeps_what_finished(clients):
    one, _ = clients
    lines = [
        line(f"line-{index}", {"model": "tiny", "prompt": f"a boat {index}", "size": "256x256",
                               "num_inference_steps": 30})
        for index in range(12)
    ]  # fmt: skip
    source = one.files.create(file=("many.jsonl", jsonl(*lines)), purpose="batch")
    batch = one.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    wait_for(one, batch.id, {"in_progress"})
    cancelling = one.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    cancelled = wait_for(one, batch.id, {"cancelled"})
    assert cancelled.cancelled_at and cancelled.request_counts.completed < 12
    if cancelled.request_counts.completed:
        assert len(read_lines(one, cancelled.output_file_id)) == cancelled.request_counts.completed


def test_list_pages_and_owners(clients):
    one, two = clients
    source = two.files.create(
        file=("x.jsonl", jsonl(line("only", {"model": "tiny", "prompt": "x", "size": "64x64"}))),
        purpose="batch",
    )
    made = [
        two.batches.create(
            input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    first = two.batches.list(limit=2)
    assert first.has_more and [b.id for b in first.data] == made[::-1][:2]
    assert [b.id for b in two.batches.list(limit=1)] == made[::-1]  # every page
    with pytest.raises(openai.NotFoundError):
        one.batches.retrieve(made[0])
    with pytest.raises(openai.NotFoundError):
        one.batches.cancel(made[0])
    assert not set(made) & {b.id for b in one.batches.list()}
    for batch_id in made:
        wait_for(two, batch_id, {"completed"})


def test_a_restart_mid_batch_resumes_and_runs_no_line_twice(cache_dir: Path, tmp_path: Path):
    settings = batch_settings(cache_dir, tmp_path)
    lines = [
        line(f"line-{index}", {"model": "tiny", "prompt": f"a tree {index}", "size": "256x256",
                               "num_inference_steps": 20})
        for index in range(10)
    ]  # fmt: skip
    with RunningServer(create_app(settings)) as first:
        client = openai.OpenAI(base_url=f"{first.base_url}/v1", api_key=KEYS[0], max_retries=0)
        with client:
            source = client.files.create(file=("trees.jsonl", jsonl(*lines)), purpose="batch")
            batch = client.batches.create(
                input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
            )
            deadline = time.monotonic() + 120
            while client.batches.retrieve(batch.id).request_counts.completed < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        store = first.server.config.app.state.batch_service.store
        before = {entry: result for entry, result in _finished(store, batch.id).items()}
    assert 2 <= len(before) < 10, "the server stopped with the batch half done"
    with RunningServer(create_app(settings)) as second:
        client = openai.OpenAI(base_url=f"{second.base_url}/v1", api_key=KEYS[0], max_retries=0)
        with client:
            done = wait_for(client, batch.id, {"completed"})
            assert done.request_counts.model_dump() == {"total": 10, "completed": 10, "failed": 0}
            outputs = read_lines(client, done.output_file_id)
        store = second.server.config.app.state.batch_service.store
        after = _finished(store, batch.id)
    assert set(outputs) == {f"line-{index}" for index in range(10)}
    # The lines finished before the restart kept their results: none ran again.
    assert all(after[line_number] == result for line_number, result in before.items())


def _finished(store, batch_id: str) -> dict[int, str]:
    rows = store.database.execute(
        "SELECT line, result FROM batch_lines WHERE batch_id = ? AND result IS NOT NULL",
        (batch_id,),
    )
    return {row["line"]: row["result"] for row in rows}


def test_the_cli_submits_follows_and_downloads(server, tmp_path: Path):
    import subprocess
    import sys

    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(
        jsonl(
            line("lighthouse", {"model": "tiny", "prompt": "a lighthouse", "size": "64x64"}),
            line("too-big", {"model": "tiny", "prompt": "x", "n": 99}),
        )
    )
    base = ["--base-url", f"{server.base_url}/v1", "--api-key", KEYS[0]]

    def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pixelsmith", "batch", *base, *arguments],
            capture_output=True,
            text=True,
            timeout=300,
        )

    submitted = cli("submit", str(requests), "--metadata", "team=catalogue", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.splitlines()[0]
    assert batch_id.startswith("batch_")
    assert "completed 1 completed, 1 failed of 2" in submitted.stdout
    assert "request" in submitted.stderr  # the progress bar
    status = cli("status", batch_id)
    assert status.returncode == 0 and "completed" in status.stdout
    downloaded = cli("download", batch_id, "--output", str(tmp_path / "out"), "--images")
    assert downloaded.returncode == 0, downloaded.stderr
    assert (tmp_path / "out" / f"{batch_id}_output.jsonl").is_file()
    assert (tmp_path / "out" / f"{batch_id}_error.jsonl").is_file()
    with Image.open(tmp_path / "out" / "00001-lighthouse-0.png") as image:
        assert image.size == (64, 64)
    missing = cli("status", "batch_nope")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_finished_batches_are_swept_after_thirty_days(clients, server):
    one, _ = clients
    store = server.server.config.app.state.batch_service.store
    source = one.files.create(
        file=("old.jsonl", jsonl(line("x", {"model": "tiny", "prompt": "x", "size": "64x64"}))),
        purpose="batch",
    )
    batch = one.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    wait_for(one, batch.id, {"completed"})
    assert store.sweep() == 0  # young
    assert store.sweep(older_than_seconds=-1) >= 1
    with pytest.raises(openai.NotFoundError):
        one.batches.retrieve(batch.id)


def test_line_separators_inside_json_strings_stay_in_their_line(clients):
    one, _ = clients
    body = {"model": "tiny", "prompt": "a lighthouse\u2028at dusk", "size": "64x64"}
    raw = json.dumps(
        {"custom_id": "sep", "method": "POST", "url": "/v1/images/generations", "body": body},
        ensure_ascii=False,  # U+2028 written as itself, as JSON allows
    )
    source = one.files.create(file=("sep.jsonl", (raw + "\n").encode()), purpose="batch")
    batch = one.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    done = wait_for(one, batch.id, {"completed", "failed"})
    assert done.status == "completed" and done.request_counts.completed == 1


def test_a_batch_past_its_window_expires_and_keeps_what_finished(clients, server):
    one, _ = clients
    store = server.server.config.app.state.batch_service.store
    lines = [
        line(f"late-{index}", {"model": "tiny", "prompt": f"a hill {index}", "size": "256x256",
                               "num_inference_steps": 30})
        for index in range(12)
    ]  # fmt: skip
    source = one.files.create(file=("late.jsonl", jsonl(*lines)), purpose="batch")
    batch = one.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    deadline = time.monotonic() + 120
    while one.batches.retrieve(batch.id).request_counts.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stored = store.get(None, batch.id)
    stored["expires_at"] = int(time.time()) - 1  # its 24 hours are over
    assert store.save(stored, expected="in_progress")
    expired = wait_for(one, batch.id, {"expired", "completed"})
    assert expired.status == "expired" and expired.expired_at
    finished = expired.request_counts.completed
    assert 1 <= finished < 12
    assert len(read_lines(one, expired.output_file_id)) == finished
