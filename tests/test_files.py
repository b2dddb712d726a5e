"""OpenAI's Files API through the official client, on a real server: upload, retrieve,
list with pagination, content, delete, expiry, limits, and owners who never see each other's
files."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import RunningServer, clients_with_keys, make_settings

from pixelsmith.api import body_limits
from pixelsmith.app import create_app
from pixelsmith.service import files as file_service

KEYS = ("sk-files-one", "sk-files-two")
JSONL = b'{"custom_id": "a", "method": "POST", "url": "/v1/images/generations", "body": {}}\n'


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(
        cache_dir,
        tmp_path_factory.mktemp("files"),
        api_keys=",".join(KEYS),
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )
    with RunningServer(create_app(settings)) as running:
        yield running


@pytest.fixture()
def clients(server):
    yield from clients_with_keys(server, KEYS)


def test_upload_retrieve_content_delete(clients):
    one, _ = clients
    created = one.files.create(file=("input.jsonl", JSONL), purpose="batch")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose) == (
        len(JSONL),
        "input.jsonl",
        "batch",
    )
    assert created.status == "processed"
    # Batch files expire after 30 days unless told otherwise.
    assert created.expires_at == created.created_at + 30 * 24 * 3600
    assert one.files.retrieve(created.id).model_dump() == created.model_dump()
    assert one.files.wait_for_processing(created.id).status == "processed"
    assert one.files.content(created.id).read() == JSONL
    deleted = one.files.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "file")
    with pytest.raises(openai.NotFoundError):
        one.files.retrieve(created.id)


def test_a_key_never_sees_another_keys_files(clients):
    one, two = clients
    mine = one.files.create(file=("mine.jsonl", JSONL), purpose="batch")
    for call in (two.files.retrieve, two.files.content, two.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert mine.id not in [listed.id for listed in two.files.list()]
    assert one.files.retrieve(mine.id).id == mine.id  # still there for its owner


def test_list_pages_in_order_and_filters_by_purpose(clients):
    _, two = clients
    made = [
        two.files.create(file=(f"{index}.png", b"x" * (index + 1)), purpose="user_data").id
        for index in range(3)
    ]
    first = two.files.list(limit=1, purpose="user_data")
    assert first.has_more and [f.id for f in first.data] == [made[-1]]  # newest first
    assert [f.id for f in two.files.list(limit=1, purpose="user_data")] == made[::-1]
    ascending = [f.id for f in two.files.list(limit=2, order="asc", purpose="user_data")]
    assert ascending == made
    assert all(f.purpose == "user_data" for f in two.files.list(purpose="user_data"))
    raw = httpx.get(
        f"{two.base_url}files",
        params={"limit": 1, "purpose": "user_data"},
        headers={"authorization": f"Bearer {KEYS[1]}"},
    ).json()
    assert raw["object"] == "list" and raw["first_id"] == raw["last_id"] == made[-1]


def test_bad_uploads_name_the_parameter(clients, monkeypatch):
    one, _ = clients
    with pytest.raises(openai.BadRequestError) as purpose:
        one.files.create(file=("a.jsonl", JSONL), purpose="fine-tune")
    assert purpose.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as not_jsonl:
        one.files.create(file=("a.txt", JSONL), purpose="batch")
    assert not_jsonl.value.param == "file"
    with pytest.raises(openai.BadRequestError) as expiry:
        one.files.create(
            file=("a.jsonl", JSONL),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 60},
        )
    assert expiry.value.param == "expires_after.seconds"
    monkeypatch.setattr(file_service, "MAX_BATCH_FILE_BYTES", 100)
    with pytest.raises(openai.APIStatusError) as too_big:
        one.files.create(file=("a.jsonl", JSONL * 10), purpose="batch")
    assert too_big.value.status_code == 413 and too_big.value.body["param"] == "file"
    monkeypatch.setitem(body_limits.BODY_LIMITS, "/v1/files", (1000, 1000))
    with pytest.raises(openai.APIStatusError) as body:
        one.files.create(file=("a.jsonl", JSONL * 100), purpose="batch")
    assert body.value.status_code == 413


def test_expired_files_are_gone_and_swept(clients, server):
    one, _ = clients
    service = server.server.config.app.state.file_service
    created = one.files.create(
        file=("soon.jsonl", JSONL),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600
    service.database.execute(
        "UPDATE files SET expires_at = ? WHERE id = ?", (int(time.time()) - 1, created.id)
    )
    with pytest.raises(openai.NotFoundError):
        one.files.retrieve(created.id)
    assert service.sweep() == 1
    rows = service.database.execute("SELECT deleted FROM files WHERE id = ?", (created.id,))
    assert rows[0]["deleted"] == 1  # kept as a tombstone for cursors, its contents gone
    with pytest.raises(FileNotFoundError):
        service.store.get_blob(f"files/{created.id}")


def test_paging_goes_on_after_the_cursor_file_is_deleted(clients):
    _, two = clients
    made = {two.files.create(file=(f"d{i}.bin", b"x"), purpose="user_data").id for i in range(4)}
    seen = []
    for listed in two.files.list(limit=1, purpose="user_data"):
        if listed.id in made:
            seen.append(listed.id)
            two.files.delete(listed.id)  # the next page starts after a deleted file
    assert set(seen) == made


def test_json_edits_take_the_callers_uploaded_images(clients, server):
    import io

    from PIL import Image

    one, _ = clients
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 128, 0)).save(buffer, format="PNG")
    uploaded = one.files.create(file=("green.png", buffer.getvalue()), purpose="vision")
    body = {"model": "tiny", "prompt": "a leaf", "size": "64x64",
            "images": [{"file_id": uploaded.id}]}  # fmt: skip
    edited = httpx.post(
        f"{server.base_url}/v1/images/edits",
        json=body,
        headers={"authorization": f"Bearer {KEYS[0]}"},
        timeout=120,
    )
    assert edited.status_code == 200, edited.text
    assert len(edited.json()["data"]) == 1
    other = httpx.post(
        f"{server.base_url}/v1/images/edits",
        json=body,
        headers={"authorization": f"Bearer {KEYS[1]}"},
        timeout=120,
    )
    assert other.status_code == 400 and other.json()["error"]["param"] == "images[0].file_id"
