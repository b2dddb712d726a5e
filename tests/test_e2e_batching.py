"""Dynamic batching seen from the official client: concurrent requests share one pipeline call
and each gets exactly its own images."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
from conftest import RunningServer, make_settings
from PIL import Image

from pixelsmith.app import create_app
from pixelsmith.builders import build_engine
from pixelsmith.engine import GenerationJob


def test_concurrent_requests_are_batched_and_each_gets_its_own_images(
    cache_dir: Path, tmp_path: Path
):
    settings = make_settings(
        cache_dir, tmp_path, max_batch_size=4, batch_timeout=1.0, moderation_prompt_classifier="off"
    )
    engine = build_engine(settings)
    engine.load()
    loaded = engine.pipeline(engine.registry.default)
    real_run_batch = loaded.run_batch
    batches: list[list[tuple[int, ...]]] = []
    lock = threading.Lock()

    def recording_run_batch(jobs: list[GenerationJob]):
        with lock:
            batches.append([job.seeds for job in jobs])
        return real_run_batch(jobs)

    loaded.run_batch = recording_run_batch  # type: ignore[method-assign]
    requests = [
        {"prompt": "a red fox", "n": 1, "seed": 100},
        {"prompt": "a blue whale under the sea", "n": 2, "seed": 200},
        {"prompt": "a bowl of ramen", "n": 1, "seed": 300},
    ]
    with RunningServer(create_app(settings, engine=engine)) as running:
        client = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0)

        def send(request: dict):
            return client.images.generate(
                prompt=request["prompt"],
                n=request["n"],
                size="64x64",
                extra_body={"seed": request["seed"], "num_inference_steps": 2},
            )

        with client, ThreadPoolExecutor(len(requests)) as pool:
            responses = list(pool.map(send, requests))
    # All three waited for company (batch_timeout) and ran in one call of four images.
    assert len(batches) == 1 and sorted(batches[0]) == [(100,), (200, 201), (300,)]
    for request, response in zip(requests, responses, strict=True):
        seeds = tuple(request["seed"] + i for i in range(request["n"]))
        assert tuple(item.seed for item in response.data) == seeds  # type: ignore[attr-defined]
        alone = loaded.run(
            GenerationJob(
                prompt=request["prompt"],
                width=64,
                height=64,
                num_inference_steps=2,
                guidance_scale=0.0,
                seeds=seeds,
            )
        )
        for item, reference in zip(response.data, alone.images, strict=True):
            served = Image.open(io.BytesIO(base64.b64decode(item.b64_json or "")))
            difference = np.abs(
                np.asarray(served, dtype=np.int16) - np.asarray(reference, dtype=np.int16)
            )
            assert difference.max() <= 2
