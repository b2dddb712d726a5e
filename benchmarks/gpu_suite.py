"""The GPU measurements in one prepared run: in-process pipeline throughput (eager and
compiled), the same model through the HTTP API under concurrent official clients, and the CPU
side's cost per image against the GPU's image rate.

    python benchmarks/gpu_suite.py               # one CUDA GPU; fits in about 8 minutes
    python benchmarks/gpu_suite.py --smoke       # the same code paths on CPU, tiny sizes (< 2 min)
    python benchmarks/gpu_suite.py --json out.json

The models are architecture-only (`sd-turbo-arch`, `sdxl-arch`, `flux-schnell-arch`): the
real layer shapes with random weights, so the costs are the real models' without a download.
The published anchors and the goal (docs/performance.md, from ../shared/performance-notes.md):
SD-Turbo 512², 1 step, batch 1: 38 ms on an A100 (ONNX Runtime, CUDA graphs), 4 steps 69 ms;
SDXL-Turbo 512², 4 steps: 84 ms on an H100 (TensorRT); FLUX.1-schnell 1024², 4 steps: 0.78 s
on an H100 (compiled). Goal on one H100/H200: SD-Turbo architecture 512², 1 step, at least 60
images/s through the API under concurrent clients, p50 single-request latency at most 60 ms,
and the server's overhead at most 5% of the bare pipeline's images/s at the same batch size.

Each section prints as it goes; a time budget (`--budget-seconds`) skips what would not fit,
and says so. Not a test (tests/test_gpu_suite.py runs `--smoke`).
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from conftest import RunningServer, make_settings  # noqa: E402
from server_throughput import percentile, run_clients  # noqa: E402

from pixelsmith.app import create_app  # noqa: E402
from pixelsmith.builders import build_content_credentials, build_engine  # noqa: E402
from pixelsmith.engine import Engine  # noqa: E402
from pixelsmith.engine.tiny import ensure_tiny_model  # noqa: E402
from pixelsmith.imaging import encode_image  # noqa: E402
from pixelsmith.moderation import build_moderator  # noqa: E402
from pixelsmith.provenance import ImageOrigin  # noqa: E402
from pixelsmith.service.output import b64  # noqa: E402
from pixelsmith.settings import Settings  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
ANCHORS = {
    ("sd-turbo-arch", 512, 1): ("A100, ONNX Runtime + CUDA graphs, batch 1", 0.038),
    ("sd-turbo-arch", 512, 4): ("A100, ONNX Runtime + CUDA graphs, batch 1", 0.069),
    ("flux-schnell-arch", 1024, 4): ("H100, compiled, batch 1", 0.78),
}
GOAL_IMAGES_PER_SECOND = 60.0
GOAL_P50_SECONDS = 0.060
GOAL_OVERHEAD = 0.05


@dataclass(frozen=True)
class Case:
    model: str
    side: int  # square images, side x side
    steps: tuple[int, ...]
    batches: tuple[int, ...]
    clients: tuple[int, ...] = (1, 8, 32)
    requests_per_client: int = 8


FULL = (
    Case("sd-turbo-arch", 512, (1, 4), (1, 4, 8, 16)),
    Case("sdxl-arch", 1024, (4,), (1, 4, 8)),
    Case("flux-schnell-arch", 1024, (4,), (1, 4), clients=(1, 8), requests_per_client=2),
)
SMOKE = (Case("tiny", 64, (1, 2), (1, 2), clients=(1, 2), requests_per_client=2),)


@dataclass
class Results:
    machine: dict[str, Any]
    in_process: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    cpu_side: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def allows(self, seconds: float) -> bool:
        return time.monotonic() + seconds < self.deadline


def machine() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def settings_for(case: Case, cache: Path, storage: Path, **overrides: Any) -> Settings:
    return make_settings(
        cache,
        storage,
        model=case.model,
        offline=True,
        max_batch_size=max(case.batches),
        log_level="warning",
        **overrides,
    )


def timed_calls(call: Callable[[], None], runs: int, device: torch.device) -> list[float]:
    """Seconds per call for `runs` calls after one that warms up (and compiles)."""
    timings = []
    for run in range(runs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if run:
            timings.append(time.perf_counter() - started)
    return timings


def in_process(case: Case, engine: Engine, variant: str, results: Results, budget: Budget) -> None:
    """The bare diffusers call on the engine's own pipeline, per step count and batch size."""
    loaded = engine.pipeline(engine.registry.default)
    pipeline, device = loaded.pipeline, loaded.device
    for steps in case.steps:
        for batch in case.batches:
            if not budget.allows(5):
                results.skipped.append(f"in-process {case.model} {variant} {steps}x{batch}")
                continue

            def call(steps: int = steps, batch: int = batch) -> None:
                with torch.inference_mode():
                    pipeline(
                        prompt=[PROMPT] * batch,
                        num_inference_steps=steps,
                        guidance_scale=0.0,
                        width=case.side,
                        height=case.side,
                        generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
                    )

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            first = time.perf_counter()
            timings = timed_calls(call, runs=3 if device.type == "cuda" else 1, device=device)
            warm_and_timed = time.perf_counter() - first
            median = statistics.median(timings)
            row = {
                "model": case.model, "size": f"{case.side}x{case.side}", "steps": steps,
                "batch": batch, "variant": variant, "images_per_s": batch / median,
                "latency_s": median, "first_call_s": warm_and_timed - sum(timings),
                "peak_gpu_gb": (torch.cuda.max_memory_allocated() / 2**30
                                if device.type == "cuda" else None),
            }  # fmt: skip
            results.in_process.append(row)
            anchor = ANCHORS.get((case.model, case.side, steps)) if batch == 1 else None
            ratio = (
                f"  anchor {anchor[1] * 1000:.0f} ms: x{median / anchor[1]:.2f}" if anchor else ""
            )
            memory = f"  peak {row['peak_gpu_gb']:.1f} GB" if row["peak_gpu_gb"] else ""
            print(f"  {case.model:18} {variant:15} {steps} steps  batch {batch:2d}: "
                  f"{row['images_per_s']:8.2f} img/s  {median * 1000:8.1f} ms/call  first "
                  f"{row['first_call_s']:.1f} s{memory}{ratio}", flush=True)  # fmt: skip


def http(case: Case, settings: Settings, engine: Engine, results: Results, budget: Budget) -> None:
    """The same model through the API, with 1, 8 and 32 concurrent official clients, against
    the bare pipeline at the server's batch size."""
    steps = case.steps[0]
    batch = max(case.batches)
    bare = [
        row["images_per_s"] for row in results.in_process
        if row["model"] == case.model and row["steps"] == steps and row["batch"] == batch
        and row["variant"] == "eager"
    ]  # fmt: skip
    size = f"{case.side}x{case.side}"
    with RunningServer(create_app(settings, engine=engine)) as server:
        for clients in case.clients:
            if not budget.allows(10):
                results.skipped.append(f"http {case.model} {clients} clients")
                continue
            # One request each first: connections open, and the worker's first batches run.
            run_clients(f"{server.base_url}/v1", clients, 1, size, steps)
            latencies, errors, elapsed = run_clients(
                f"{server.base_url}/v1", clients, case.requests_per_client, size, steps
            )
            rate = len(latencies) / elapsed if elapsed else 0.0
            overhead = 1 - rate / bare[0] if bare and clients >= batch else None
            row = {
                "model": case.model, "size": size, "steps": steps, "clients": clients,
                "images_per_s": rate, "p50_s": percentile(latencies, 0.5) if latencies else None,
                "p95_s": percentile(latencies, 0.95) if latencies else None,
                "errors": len(errors), "bare_images_per_s_at_batch": bare[0] if bare else None,
                "overhead": overhead,
            }  # fmt: skip
            results.http.append(row)
            shown = f"  overhead {overhead:+.1%} of batch {batch}" if overhead is not None else ""
            p50 = f"{row['p50_s'] * 1000:8.1f}" if row["p50_s"] is not None else "       -"
            print(f"  {case.model:18} {clients:2d} clients: {rate:8.2f} img/s  p50 {p50} ms  "
                  f"errors {len(errors)}{shown}", flush=True)  # fmt: skip


def cpu_side(case: Case, settings: Settings, results: Results) -> None:
    """What the CPU spends per image after the GPU: the image check, PNG encoding, base64
    and the C2PA signature; and how many cores that takes at the GPU's best image rate."""
    image = Image.effect_noise((case.side, case.side), 64).convert("RGB")
    moderator = build_moderator(settings)
    credentials = build_content_credentials(settings)
    png = encode_image(image, "png")
    costs: dict[str, Callable[[], object]] = {
        "moderation": lambda: moderator.check_images([image], "auto"),
        "png": lambda: encode_image(image, "png"),
        "base64": lambda: b64(png),
    }
    if credentials is not None:
        costs["c2pa"] = lambda: credentials.sign(png, "png", ImageOrigin(model=case.model))
    row: dict[str, Any] = {"model": case.model, "size": f"{case.side}x{case.side}"}
    for name, work in costs.items():
        timings = timed_calls(lambda work=work: work(), runs=5, device=torch.device("cpu"))
        row[f"{name}_ms"] = statistics.median(timings) * 1000
    total_s = sum(value for key, value in row.items() if key.endswith("_ms")) / 1000
    best = max((r["images_per_s"] for r in results.in_process if r["model"] == case.model),
               default=0.0)  # fmt: skip
    row["cpu_ms_per_image"] = total_s * 1000
    row["cores_at_gpu_rate"] = best * total_s
    row["cores_at_goal"] = GOAL_IMAGES_PER_SECOND * total_s
    results.cpu_side.append(row)
    parts = "  ".join(
        f"{key[:-3]} {value:.1f}" for key, value in row.items() if key.endswith("_ms")
    )
    print(f"  {case.model:18} ms per image: {parts}; at {best:.1f} img/s the CPU side needs "
          f"{row['cores_at_gpu_rate']:.2f} cores, at {GOAL_IMAGES_PER_SECOND:.0f} img/s "
          f"{row['cores_at_goal']:.2f} (of {os.cpu_count()})", flush=True)  # fmt: skip


def run(
    cases: tuple[Case, ...], budget: Budget, compile_variants: list[tuple[str, dict[str, Any]]]
) -> Results:
    results = Results(machine=machine())
    print(f"machine: {results.machine}", flush=True)
    cache = Path(tempfile.mkdtemp(prefix="pixelsmith-gpu-suite-"))
    ensure_tiny_model(cache)
    for case in cases:
        storage = Path(tempfile.mkdtemp(prefix=f"{case.model}-", dir=cache))
        print(f"\n== {case.model} at {case.side}x{case.side}", flush=True)
        for variant, overrides in [("eager", {}), *compile_variants]:
            if not budget.allows(30):
                results.skipped.append(f"{case.model} {variant}")
                continue
            settings = settings_for(case, cache, storage, **overrides)
            engine = build_engine(settings)
            engine.load()
            in_process(case, engine, variant, results, budget)
            if variant == "eager":  # the served model: eager, as `serve` runs by default
                http(case, settings, engine, results, budget)
                cpu_side(case, settings, results)
            del engine  # its memory back before the next variant loads
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return results


def summary(results: Results) -> None:
    """The goal's three figures, where they were measured."""
    print("\n== against the goal (sd-turbo-arch 512x512, 1 step)")
    http_rows = [r for r in results.http if r["model"] == "sd-turbo-arch" and r["steps"] == 1]
    if not http_rows:
        print("  not measured in this run (smoke mode or skipped)")
        return
    best = max(row["images_per_s"] for row in http_rows)
    single = next((row["p50_s"] for row in http_rows if row["clients"] == 1), None)
    overheads = [row["overhead"] for row in http_rows if row["overhead"] is not None]
    print(f"  API images/s {best:.1f} (goal >= {GOAL_IMAGES_PER_SECOND:.0f}); p50 single "
          f"{(single or 0) * 1000:.1f} ms (goal <= {GOAL_P50_SECONDS * 1000:.0f}); overhead "
          f"{min(overheads, default=float('nan')):+.1%} (goal <= {GOAL_OVERHEAD:.0%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, the tiny model, tiny sizes")
    parser.add_argument("--budget-seconds", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        parser.error("no CUDA GPU here: run with --smoke for the CPU code paths")
    cases = FULL if on_gpu else SMOKE
    # Compiled variants: on a GPU the default mode and CUDA graphs; in smoke mode none (a CPU
    # compile takes minutes), but the compiled code path's settings are still exercised by
    # the engine's tests.
    variants: list[tuple[str, dict[str, Any]]] = (
        [("compiled", {"compile": True}),
         ("cuda-graphs", {"compile": True, "compile_mode": "reduce-overhead"})]
        if on_gpu else []
    )  # fmt: skip
    budget = Budget(args.budget_seconds or (460 if on_gpu else 110))
    results = run(cases, budget, variants)
    summary(results)
    if results.skipped:
        print(f"\nskipped for time: {', '.join(results.skipped)}")
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
