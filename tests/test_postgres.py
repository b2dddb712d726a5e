"""Files and batches on a real PostgreSQL server (Debian's, started by conftest on 127.0.0.1),
shared by two servers as two replicas would share it: a file uploaded through one is read
through the other, a batch created through one runs once, each line once, whichever runner
takes it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
from conftest import RunningServer, make_settings

from pixelsmith.app import create_app


def test_two_servers_share_files_and_run_each_batch_line_once(
    postgres_url: str, cache_dir: Path, tmp_path: Path
):
    settings = make_settings(
        cache_dir,
        tmp_path,  # the blobs: one directory here; object storage across machines
        database_url=postgres_url,
        api_keys="sk-pg",
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )
    lines = [
        json.dumps({"custom_id": f"line-{index}", "method": "POST",
                    "url": "/v1/images/generations",
                    "body": {"model": "tiny", "prompt": f"a tree {index}", "size": "64x64"}})
        for index in range(8)
    ]  # fmt: skip
    with (
        RunningServer(create_app(settings)) as first,
        RunningServer(create_app(settings)) as second,
    ):
        one = openai.OpenAI(base_url=f"{first.base_url}/v1", api_key="sk-pg", max_retries=0)
        two = openai.OpenAI(base_url=f"{second.base_url}/v1", api_key="sk-pg", max_retries=0)
        with one, two:
            source = one.files.create(
                file=("trees.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
            )
            assert two.files.retrieve(source.id).bytes == source.bytes  # the other replica
            batch = two.batches.create(
                input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
            )
            deadline = time.monotonic() + 180
            while (done := one.batches.retrieve(batch.id)).status != "completed":
                assert time.monotonic() < deadline, done.status
                time.sleep(0.2)
            assert done.request_counts.model_dump() == {"total": 8, "completed": 8, "failed": 0}
            output = two.files.content(done.output_file_id).read().decode().split("\n")[:-1]
            custom_ids = [json.loads(entry)["custom_id"] for entry in output]
            assert sorted(custom_ids) == sorted(f"line-{index}" for index in range(8))
            assert [b.id for b in one.batches.list()] == [b.id for b in two.batches.list()]
            # One runner held the batch at a time: the lease names who.
            rows = first.server.config.app.state.batch_service.store.database.execute(
                "SELECT lease_owner FROM batches WHERE id = ?", (batch.id,)
            )
            runners = {
                first.server.config.app.state.batch_service.runner_id,
                second.server.config.app.state.batch_service.runner_id,
            }
            assert rows[0]["lease_owner"] in runners
