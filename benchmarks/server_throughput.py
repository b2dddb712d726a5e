"""What the server costs and what it gets out of the hardware, through the official `openai`
client on a local server, against in-process pipeline calls on the same weights.

    .venv/bin/python benchmarks/server_throughput.py [--model sd-small-arch] [--size 512x512]
        [--steps 4] [--load-size 256x256] [--clients 1,4,8,16] [--rss-requests 500]

Figures (printed, measured in one run; docs/performance.md records runs):
  a. single-request latency / in-process pipeline call (same model, size, steps, seed);
  b. 1..16 concurrent clients: images/s, p50/p95 latency, errors, against in-process serial
     (batch 1) and in-process batched (batch = max_batch_size) calls;
  c. encode time per output format at 1024x1024, and base64 + JSON;
  d. peak RSS over many requests, against the RSS after a warm-up.

The default model, `sd-small-arch`, is an architecture-only model (real SD layer shapes, random
weights, no download) big enough that compute dominates on a CPU. On a GPU, pass
`--model sd-turbo-arch` for SD-Turbo's real costs. Not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
import orjson
import psutil
import pybase64
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import RunningServer, make_settings  # noqa: E402

from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.builders import build_engine  # noqa: E402
from pixelsmith.engine import Engine  # noqa: E402
from pixelsmith.imaging import encode_image  # noqa: E402
from pixelsmith.settings import ModelConfig  # noqa: E402
from pixelsmith.sizes import model_size  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class InProcess:
    """Direct pipeline calls on the server's own pipeline object (same weights), made while
    the server is idle."""

    def __init__(self, engine: Engine, steps: int) -> None:
        self.pipeline = engine.pipeline(engine.registry.default).pipeline
        self.steps = steps

    def images_per_second(self, size: str, batch: int, calls: int) -> tuple[float, float]:
        """(images/s, median seconds per call) for `calls` calls of `batch` images."""
        parsed = model_size(size)
        width, height = parsed.width, parsed.height
        timings = []
        for call in range(calls + 1):  # the first call warms up
            started = time.perf_counter()
            with torch.inference_mode():
                self.pipeline(
                    prompt=[PROMPT] * batch,
                    num_inference_steps=self.steps,
                    guidance_scale=0.0,
                    width=width,
                    height=height,
                    generator=[
                        torch.Generator("cpu").manual_seed(call * batch + i) for i in range(batch)
                    ],
                    output_type="pil",
                )
            if call:
                timings.append(time.perf_counter() - started)
        median = statistics.median(timings)
        return batch / median, median


def single_latency(
    client: openai.OpenAI, in_process: InProcess, size: str, steps: int, runs: int
) -> None:
    served = []
    for run in range(runs + 1):
        started = time.perf_counter()
        client.images.generate(
            model="gpt-image-1",
            prompt=PROMPT,
            size=size,  # type: ignore[arg-type]
            extra_body={"seed": run, "num_inference_steps": steps},
        )
        if run:
            served.append(time.perf_counter() - started)
    _, direct = in_process.images_per_second(size, 1, runs)
    latency = statistics.median(served)
    print(f"(a) single request, {size}, {steps} steps, median of {runs}:")
    print(f"    server {latency * 1000:9.1f} ms   in-process {direct * 1000:9.1f} ms   "
          f"ratio {latency / direct:.3f}   (target <= 1.03)")  # fmt: skip


def run_clients(
    base_url: str, count: int, per_client: int, size: str, steps: int
) -> tuple[list[float], list[str], float]:
    """`count` official clients on threads, each making `per_client` requests in a row:
    (latencies of the successes, error names, seconds for all)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one_client(index: int) -> None:
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600) as client:
            for request in range(per_client):
                started = time.perf_counter()
                try:
                    client.images.generate(
                        prompt=f"{PROMPT} {index}",
                        size=size,  # type: ignore[arg-type]
                        extra_body={"seed": index * 1000 + request, "num_inference_steps": steps},
                    )
                except openai.APIError as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(one_client, range(count)))
    return latencies, errors, time.perf_counter() - started


def concurrency(
    base_url: str,
    in_process: InProcess,
    size: str,
    steps: int,
    clients: list[int],
    per_client: int,
    max_batch: int,
) -> None:
    serial, _ = in_process.images_per_second(size, 1, 3)
    batched, _ = in_process.images_per_second(size, max_batch, 2)
    print(f"(b) concurrent clients, {size}, {steps} steps, {per_client} requests each; in-process:")
    print(f"    serial {serial:.3f} img/s, batch of {max_batch} {batched:.3f} img/s")
    print("    clients   img/s   vs serial  vs batched   p50 ms    p95 ms  errors")
    for count in clients:
        latencies, errors, elapsed = run_clients(base_url, count, per_client, size, steps)
        rate = len(latencies) / elapsed
        print(f"    {count:7d} {rate:7.3f} {rate / serial:10.2f} {rate / batched:11.2f} "
              f"{percentile(latencies, 0.5) * 1000:8.0f} {percentile(latencies, 0.95) * 1000:9.0f}"
              f"  {len(errors)}")  # fmt: skip
    print("    (target at 8 clients: >= 0.90 x in-process batched)")


def encoding() -> None:
    rng = np.random.default_rng(0)
    smooth = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
    smooth = smooth.resize((1024, 1024), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(3)
    )
    grain = np.asarray(smooth).astype(np.int16) + rng.integers(-6, 6, (1024, 1024, 3))
    image = Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8))
    print("(c) encoding one 1024x1024 image (min of 5), and its base64 + JSON:")
    for fmt, compression in (
        ("png", 100),
        ("jpeg", 100),
        ("jpeg", 80),
        ("webp", 100),
        ("webp", 80),
    ):
        best, data = 1e9, b""
        for _ in range(5):
            started = time.perf_counter()
            data = encode_image(image, fmt, compression)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - started)
        b64_best = 1e9
        for _ in range(5):
            started = time.perf_counter()
            orjson.dumps({"data": [{"b64_json": pybase64.b64encode(data).decode("ascii")}]})
            b64_best = min(b64_best, time.perf_counter() - started)
        print(f"    {fmt:5} q{compression:<3} {best * 1000:7.1f} ms  {len(data) / 1e6:5.2f} MB  "
              f"base64+JSON {b64_best * 1000:5.2f} ms")  # fmt: skip
    print("    (target: PNG <= 10 ms)")
    Image.open(io.BytesIO(encode_image(image, "png"))).load()  # a standard PNG


def memory(client: openai.OpenAI, requests: int, steps: int) -> None:
    process = psutil.Process()
    warmup = max(20, requests // 10)
    baseline = peak = 0
    for index in range(requests):
        client.images.generate(
            prompt=f"{PROMPT} {index % 7}",
            size="128x128",  # type: ignore[arg-type]
            response_format="url" if index % 2 else "b64_json",
            extra_body={"seed": index, "num_inference_steps": 1},
        )
        rss = process.memory_info().rss
        if index + 1 == warmup:
            baseline = rss
        elif index + 1 > warmup:
            peak = max(peak, rss)
    print(f"(d) RSS over {requests} requests (128x128, 1 step, b64 and url alternating):")
    print(f"    after {warmup} warm-up requests {baseline / 2**20:8.1f} MiB   peak after "
          f"{peak / 2**20:8.1f} MiB   growth {(peak - baseline) / baseline * 100:+.1f}% "
          "(target <= 5%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sd-small-arch")
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load-size", default="256x256", help="size for the concurrency runs")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.02)
    parser.add_argument("--rss-requests", type=int, default=500)
    parser.add_argument("--only", default="abcd", help="which figures to measure, e.g. 'ac'")
    args = parser.parse_args()

    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"no GPU, {cpu}"
    print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"{device}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"model {args.model}; max_batch_size {args.max_batch_size}, "
          f"batch_timeout {args.batch_timeout}")  # fmt: skip
    if "c" in args.only:
        encoding()
    if not set(args.only) & set("abd"):
        return
    cache = Path(tempfile.mkdtemp(prefix="pixelsmith-bench-"))
    # The benchmark sizes may lie outside the preset's list (which follows OpenAI's sizes).
    sizes = list(dict.fromkeys([args.size, args.load_size, "128x128"]))
    model = ModelConfig(source=args.model, sizes=sizes, default_size=args.size)
    settings = make_settings(
        cache,
        cache / "images",
        models=[model],
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        max_queue_size=1000,
    )
    engine = build_engine(settings)
    engine.load()
    in_process = InProcess(engine, args.steps)
    with RunningServer(create_app(settings, engine=engine)) as server:
        base_url = f"{server.base_url}/v1"
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600) as client:
            if "a" in args.only:
                single_latency(client, in_process, args.size, args.steps, args.runs)
            if "b" in args.only:
                clients = [int(count) for count in args.clients.split(",")]
                concurrency(base_url, in_process, args.load_size, args.steps, clients,
                            args.per_client, args.max_batch_size)  # fmt: skip
            if "d" in args.only:
                memory(client, args.rss_requests, args.steps)


if __name__ == "__main__":
    main()
