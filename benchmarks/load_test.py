"""Load test on loopback: many official clients at once for a fixed time, then proof that
every image belongs to its request.

    .venv/bin/python benchmarks/load_test.py [--clients 32] [--seconds 120] [--model tiny]

Each client sends generations in a loop (own prompt, unique seed, n of 1 or 2), with the
client's retries off so that every 429 is counted. The server runs with a short queue so that
backpressure happens. Passing means: no errors but 429s, and every returned image equals, within
batching tolerance, the image the same prompt and seed give when generated alone in-process.
Prints the counts and exits non-zero on failure. Not a test (it runs for minutes).
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openai
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import RunningServer, make_settings  # noqa: E402

from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.builders import build_engine  # noqa: E402
from pixelsmith.engine import GenerationJob  # noqa: E402
from pixelsmith.engine.tiny import ensure_tiny_model  # noqa: E402
from pixelsmith.settings import ModelConfig  # noqa: E402

SIZE = 64
STEPS = 2
PROMPTS = ["a red fox", "a blue whale", "a lighthouse at dusk", "a bowl of ramen"]


@dataclass
class Result:
    prompt: str
    seeds: tuple[int, ...]
    returned_seeds: tuple[int, ...]
    images: list[bytes]


def client_loop(base_url: str, index: int, deadline: float, results: list[Result],
                outcomes: Counter[str], lock: threading.Lock) -> None:  # fmt: skip
    rng = random.Random(index)
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120) as client:
        request = 0
        while time.monotonic() < deadline:
            prompt = f"{rng.choice(PROMPTS)} #{index}"
            n = rng.choice((1, 1, 2))
            first_seed = index * 1_000_000 + request * 10
            request += 1
            try:
                response = client.images.generate(
                    prompt=prompt,
                    n=n,
                    size=f"{SIZE}x{SIZE}",  # type: ignore[arg-type]
                    extra_body={"seed": first_seed, "num_inference_steps": STEPS},
                )
            except openai.RateLimitError as exc:
                with lock:
                    outcomes["429"] += 1
                retry_after = float(exc.response.headers.get("retry-after", "1"))
                time.sleep(min(retry_after, 2) * rng.uniform(0.5, 1.0))
                continue
            except openai.APIError as exc:
                with lock:
                    outcomes[f"error {type(exc).__name__}: {exc}"[:120]] += 1
                continue
            result = Result(
                prompt=prompt,
                seeds=tuple(first_seed + i for i in range(n)),
                returned_seeds=tuple(item.seed for item in response.data),  # type: ignore[attr-defined]
                images=[base64.b64decode(item.b64_json or "") for item in response.data],
            )
            with lock:
                outcomes["200"] += 1
                results.append(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--queue", type=int, default=16, help="max_queue_size (backpressure)")
    parser.add_argument("--verify", type=int, default=3000, help="most requests to re-check")
    args = parser.parse_args()

    cache = Path(tempfile.mkdtemp(prefix="pixelsmith-load-"))
    if args.model == "tiny":
        ensure_tiny_model(cache)
    settings = make_settings(
        cache,
        cache / "images",
        models=[ModelConfig(source=args.model, sizes=[f"{SIZE}x{SIZE}"])],
        max_queue_size=args.queue,
        max_batch_size=4,
        batch_timeout=0.01,
    )
    engine = build_engine(settings)
    engine.load()
    results: list[Result] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    with RunningServer(create_app(settings, engine=engine)) as server:
        base_url = f"{server.base_url}/v1"
        deadline = time.monotonic() + args.seconds
        with ThreadPoolExecutor(args.clients) as pool:
            for index in range(args.clients):
                pool.submit(client_loop, base_url, index, deadline, results, outcomes, lock)
    images = sum(len(result.images) for result in results)
    print(f"{args.clients} clients for {args.seconds:.0f} s on {args.model} {SIZE}x{SIZE}, "
          f"{STEPS} steps, max_queue_size {args.queue}:")  # fmt: skip
    for outcome, count in sorted(outcomes.items()):
        print(f"    {outcome:10} {count}")
    print(f"    images     {images} ({images / args.seconds:.1f}/s)")

    loaded = engine.pipeline(engine.registry.default)
    checked = (
        results if len(results) <= args.verify else random.Random(0).sample(results, args.verify)
    )
    mismatched = 0
    worst = 0
    for result in checked:
        alone = loaded.run(
            GenerationJob(
                prompt=result.prompt,
                width=SIZE,
                height=SIZE,
                num_inference_steps=STEPS,
                guidance_scale=loaded.spec.guidance_scale,
                seeds=result.seeds,
            )  # fmt: skip
        )
        ok = result.returned_seeds == result.seeds and len(result.images) == len(result.seeds)
        for data, reference in zip(result.images, alone.images, strict=False):
            served = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
            difference = int(np.abs(served - np.asarray(reference, dtype=np.int16)).max())
            worst = max(worst, difference)
            ok = ok and difference <= 2
        mismatched += not ok
    print(f"    verified   {len(checked)} requests against in-process runs: {mismatched} "
          f"mismatched (largest pixel difference {worst})")  # fmt: skip
    failures = sum(count for outcome, count in outcomes.items() if outcome.startswith("error"))
    passed = failures == 0 and mismatched == 0 and outcomes["200"] > 0
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
