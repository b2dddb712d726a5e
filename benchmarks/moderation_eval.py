"""Moderation evaluation: block rates on the red-team set (plain and obfuscated), false-block
rate on the benign near-miss set, per category and level, and the cost of each check.

    .venv/bin/python benchmarks/moderation_eval.py [--no-semantic]

Prints figures; docs/moderation.md records a run. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from PIL import Image

from pixelsmith.moderation import Moderator, build_moderator
from pixelsmith.moderation.evaluation import block_rates, obfuscated, read_prompts
from pixelsmith.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "moderation"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def prompt_latency_ms(
    moderator: Moderator, prompts: list[str], repeats: int
) -> tuple[float, float]:
    timings = []
    for _ in range(repeats):
        for prompt in prompts:
            started = time.perf_counter()
            moderator.check_prompt(prompt, "auto")
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), percentile(timings, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-semantic", action="store_true", help="Term rules only.")
    args = parser.parse_args()

    red = read_prompts(DATA / "redteam_plain.txt")
    benign = read_prompts(DATA / "benign.txt")
    variants = [(category, prompt) for category, _, prompt in obfuscated(red)]
    rules_only = Moderator()
    full = build_moderator(Settings(moderation_semantic="off" if args.no_semantic else "auto"))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"moderator: {full.describe()}")
    print(f"sets: {len(red)} red-team prompts, {len(variants)} obfuscated variants, "
          f"{len(benign)} benign near-misses\n")  # fmt: skip

    categories = sorted({category for category, _ in red})
    for name, moderator in (("rules", rules_only), ("rules+models", full)):
        print(f"== {name}")
        print(f"{'level':5} {'category':18} {'plain':>7} {'obfusc.':>8}")
        for level in ("auto", "low"):
            plain = block_rates(moderator, red, level)
            obf = block_rates(moderator, variants, level)
            for category in categories:
                print(
                    f"{level:5} {category:18} {plain.rate(category):7.1%} {obf.rate(category):8.1%}"
                )
            false_blocks = block_rates(moderator, benign, level)
            print(f"{level:5} {'ALL':18} {plain.rate():7.1%} {obf.rate():8.1%}   "
                  f"benign blocked: {false_blocks.rate():.1%}")  # fmt: skip
        print()

    prompts = [prompt for _, prompt in red + benign]
    full.check_prompt("warm up", "auto")
    median, p95 = prompt_latency_ms(rules_only, prompts, repeats=3)
    print(f"prompt check before queueing (rules): median {median:.2f} ms, p95 {p95:.2f} ms")
    median, p95 = prompt_latency_ms(full, prompts, repeats=1)
    print(f"all prompt layers (models run beside generation): median {median:.2f} ms, "
          f"p95 {p95:.2f} ms")  # fmt: skip

    if full.image_classifiers:
        image = Image.effect_noise((1024, 1024), 64).convert("RGB")
        full.check_images([image], "auto")
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            full.check_images([image], "auto")
            timings.append((time.perf_counter() - started) * 1000)
        print(f"image check, 1024x1024 ({full.describe().split('images: ')[1]}): "
              f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
