"""What streaming costs: the same request streamed with partial_images=0 and 3, against the
non-streamed call, through the official `openai` client on a local server.

    .venv/bin/python benchmarks/streaming_overhead.py [--model sd-small-arch] [--size 512x512]
        [--steps 4] [--runs 5]

The default model is an architecture-only one (real layer shapes, random weights, no download)
so that, as with a real checkpoint, the denoising compute dominates. Prints medians and ratios
measured in one run; docs/api.md records a run. Not a test.
"""

from __future__ import annotations

import argparse
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

from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.engine.tiny import ensure_tiny_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="sd-small-arch")
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="pixelsmith-bench-"))
    if args.model == "tiny":
        ensure_tiny_model(cache)
    settings = make_settings(
        cache, cache / "images", model=args.model, moderation_prompt_classifier="off"
    )
    request = {
        "model": "gpt-image-1",
        "prompt": "a lighthouse at dusk",
        "size": args.size,
        "extra_body": {"seed": 1, "num_inference_steps": args.steps},
    }
    with RunningServer(create_app(settings)) as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)

        def plain() -> None:
            client.images.generate(**request)

        def streamed(partials: int) -> None:
            events = list(client.images.generate(**request, stream=True, partial_images=partials))
            assert events[-1].type == "image_generation.completed"

        cases = {
            "non-streamed": plain,
            "stream, partial_images=0": lambda: streamed(0),
            "stream, partial_images=3": lambda: streamed(3),
        }
        for case in cases.values():  # warm up
            case()
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so drift hits every case alike
            for name, case in cases.items():
                started = time.perf_counter()
                case()
                timings[name].append(time.perf_counter() - started)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; model {args.model}, "
          f"{args.size}, {args.steps} steps, {args.runs} runs each")  # fmt: skip
    base = statistics.median(timings["non-streamed"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:26} median {median * 1000:8.1f} ms   ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
