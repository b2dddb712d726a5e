"""What a running batch costs interactive requests: the latency of interactive generations
alone, while a batch of `--lines` lines runs (its lines at batch priority, as served), and
while the same batch runs with its lines at interactive priority (plain first come, first
served, for comparison). Through the official `openai` client on a local server.

    .venv/bin/python benchmarks/batch_interference.py [--model tiny] [--size 256x256]
        [--steps 20] [--lines 200] [--requests 20]

Prints p50 and p95 per phase and their ratios to the idle figures, measured in one run;
docs/performance.md records a run. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import RunningServer, make_settings  # noqa: E402

import pixelsmith.api.batches  # noqa: E402
from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.engine.jobs import BATCH_PRIORITY, INTERACTIVE_PRIORITY  # noqa: E402
from pixelsmith.engine.tiny import ensure_tiny_model  # noqa: E402


def latencies(client: openai.OpenAI, args: argparse.Namespace) -> list[float]:
    seconds = []
    for index in range(args.requests):
        started = time.perf_counter()
        client.images.generate(
            model=args.model, prompt=f"an interactive lighthouse {index}", size=args.size,
            extra_body={"num_inference_steps": args.steps},
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
        time.sleep(0.2)  # a user's pace, not a flood
    return seconds


def run_batch_phase(client: openai.OpenAI, args: argparse.Namespace, tag: str) -> list[float]:
    lines = [
        json.dumps({"custom_id": f"{tag}-{index}", "method": "POST",
                    "url": "/v1/images/generations",
                    "body": {"model": args.model, "prompt": f"a catalogue item {index}",
                             "size": args.size, "num_inference_steps": args.steps}})
        for index in range(args.lines)
    ]  # fmt: skip
    source = client.files.create(
        file=(f"{tag}.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    while client.batches.retrieve(batch.id).status != "in_progress":
        time.sleep(0.1)
    measured = latencies(client, args)
    done = client.batches.retrieve(batch.id)
    if done.request_counts.completed + done.request_counts.failed >= args.lines:
        print(f"  (the {tag} batch ended before the measurement did: use more --lines)")
    client.batches.cancel(batch.id)
    while client.batches.retrieve(batch.id).status not in ("cancelled", "completed"):
        time.sleep(0.2)
    return measured


def summary(name: str, seconds: list[float], idle: list[float] | None) -> None:
    p50 = statistics.median(seconds)
    p95 = sorted(seconds)[max(0, int(len(seconds) * 0.95) - 1)]
    ratio = ""
    if idle:
        ratio = (f"   x{p50 / statistics.median(idle):.2f} p50, "
                 f"x{p95 / sorted(idle)[max(0, int(len(idle) * 0.95) - 1)]:.2f} p95")  # fmt: skip
    print(f"{name:<34} p50 {p50 * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="pixelsmith-bench-"))
    if args.model == "tiny":
        ensure_tiny_model(cache)
    settings = make_settings(
        cache, cache / "images", model=args.model, moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )  # fmt: skip
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"model {args.model}, {args.size}, {args.steps} steps, max_batch_size "
          f"{settings.max_batch_size}; {args.requests} interactive requests per phase, "
          f"a batch of {args.lines} lines")  # fmt: skip
    with RunningServer(create_app(settings)) as running:
        with openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x") as client:
            latencies(client, argparse.Namespace(**{**vars(args), "requests": 2}))  # warm up
            idle = latencies(client, args)
            summary("no batch", idle, None)
            prioritised = run_batch_phase(client, args, "prioritised")
            summary("batch running (batch priority)", prioritised, idle)
            pixelsmith.api.batches.BATCH_PRIORITY = INTERACTIVE_PRIORITY
            try:
                fifo = run_batch_phase(client, args, "fifo")
            finally:
                pixelsmith.api.batches.BATCH_PRIORITY = BATCH_PRIORITY
            summary("batch running (first come first served)", fifo, idle)


if __name__ == "__main__":
    main()
