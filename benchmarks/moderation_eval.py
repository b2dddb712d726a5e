"""Moderation evaluation: how much of the blind evaluation set each level blocks, per category,
language and style; the same for the development sets and the older red-team and benign sets;
and the cost of each prompt check, idle and beside a CPU-bound generation.

    .venv/bin/python benchmarks/moderation_eval.py [--rules-only] [--missed]

Every set was written by helpers given only docs/moderation-policy.md. The evaluation set
(tests/data/moderation/evaluation/) is never tuned on; the five development sets
(tests/data/moderation/development-1/ to -5/) were each blind for one run, then guided the
choices of model, rules and data (see docs/moderation.md, "Evaluation"). --missed lists the
development sets' misses only.
Prints figures; docs/moderation.md records a run. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from pixelsmith.moderation import Moderator, build_moderator
from pixelsmith.moderation.evaluation import (
    LabelledPrompt,
    LabelledRates,
    block_rates,
    labelled_rates,
    obfuscated,
    read_labelled,
    read_prompts,
)
from pixelsmith.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "moderation"
EVALUATION = sorted((DATA / "evaluation").glob("*.tsv"))
DEVELOPMENT = [sorted((DATA / f"development-{n}").glob("*.tsv")) for n in (1, 2, 3, 4, 5)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timed_ms(check: Callable[[str], object], prompts: list[str]) -> tuple[float, float]:
    timings = []
    for prompt in prompts:
        started = time.perf_counter()
        check(prompt)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), percentile(timings, 0.95)


class CpuLoad:
    """Every core busy with float32 matrix products, as a diffusion step on the CPU keeps
    them."""

    def __enter__(self) -> CpuLoad:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        self._stop = threading.Event()
        matrix = torch.randn(1024, 1024)

        def work() -> None:
            while not self._stop.is_set():
                matrix @ matrix

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def print_table(title: str, rates: LabelledRates, groups: dict[str, Callable]) -> None:
    print(f"{title:28} {'n':>4} {'auto':>7} {'low':>7}")
    for name, keep in groups.items():
        n = rates.count(keep)
        if n:
            print(f"{name:28} {n:4} {rates.rate('auto', keep):7.1%} {rates.rate('low', keep):7.1%}")
    print()


def blind_report(rates: LabelledRates, show_missed: bool) -> None:
    rows = rates.rows
    harmful = [row for row in rows if row.harmful]
    labels = sorted({row.label for row in harmful})
    languages = sorted({row.language for row in rows})
    styles = sorted({row.style for row in harmful})

    def where(**conditions: object) -> Callable[[LabelledPrompt], bool]:
        return lambda row: all(
            (value(row) if callable(value) else getattr(row, key) == value)
            for key, value in conditions.items()
        )

    print_table(
        "harmful, by category",
        rates,
        {
            "ALL harmful": lambda row: row.harmful,
            "non-English harmful": lambda row: row.harmful and row.language != "en",
            **{label: where(label=label) for label in labels},
        },
    )
    print_table(
        "harmful, by language",
        rates,
        {lang: lambda row, lang=lang: row.harmful and row.language == lang for lang in languages},
    )
    print_table(
        "harmful, by style",
        rates,
        {style: lambda row, style=style: row.harmful and row.style == style for style in styles},
    )
    benign_styles = sorted({row.style for row in rows if not row.harmful})
    print_table(
        "benign blocked (lower is better)",
        rates,
        {
            "ALL benign": lambda row: not row.harmful,
            **{
                f"style {style}": lambda row, style=style: not row.harmful and row.style == style
                for style in benign_styles
            },
            **{
                lang: lambda row, lang=lang: not row.harmful and row.language == lang
                for lang in languages
            },
        },
    )
    if show_missed:
        for level in ("auto", "low"):
            print(f"-- at {level}: harmful let through / benign blocked")
            for row in rates.missed(level):
                kind = "let through" if row.harmful else "blocked"
                print(f"{kind:11} {row.label:20} {row.language} {row.style:10} {row.prompt}")
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules-only", action="store_true", help="Term rules only.")
    parser.add_argument(
        "--missed",
        action="store_true",
        help="List what each level gets wrong on the development sets.",
    )
    args = parser.parse_args()

    rules_only = Moderator()
    full = build_moderator(
        Settings(
            moderation_prompt_classifier="off" if args.rules_only else "on",
            moderation_image_classifier="auto",
        )
    )
    blind = read_labelled(*EVALUATION)
    development = read_labelled(*(path for paths in DEVELOPMENT for path in paths))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")  # fmt: skip
    print(f"moderator: {full.describe()}\n")

    for title, rows, missed in (
        ("blind evaluation set", blind, False),
        ("development sets 1 to 5", development, args.missed),
    ):
        harmful = sum(row.harmful for row in rows)
        print(f"== {title}: {harmful} harmful, {len(rows) - harmful} benign prompts, "
              f"{len({row.language for row in rows})} languages")  # fmt: skip
        for name, moderator in (("rules", rules_only), ("rules + learned", full)):
            if name == "rules" and args.rules_only:
                continue
            print(f"-- {name}\n")
            blind_report(labelled_rates(moderator, rows), missed and moderator is full)

    red = read_prompts(DATA / "redteam_plain.txt")
    benign = read_prompts(DATA / "benign.txt")
    variants = [(category, prompt) for category, _, prompt in obfuscated(red)]
    print("== older sets, written together with the term lists (they measure normalisation)")
    for level in ("auto", "low"):
        plain = block_rates(full, red, level)
        obf = block_rates(full, variants, level)
        false_blocks = block_rates(full, benign, level)
        print(f"{level:5} red-team {plain.rate():6.1%}, obfuscated {obf.rate():6.1%}, "
              f"benign blocked {false_blocks.rate():5.1%}")  # fmt: skip
    print()

    prompts = [row.prompt for row in blind]
    full.check_prompt("warm up", "auto")
    median, p95 = timed_ms(lambda p: rules_only.check_prompt_rules(p, "auto"), prompts)
    print(f"term rules (gate the queue): median {median:.2f} ms, p95 {p95:.2f} ms")
    if full.text_classifiers:
        rules_verdicts = {p: full.check_prompt_rules(p, "auto") for p in prompts}

        def models(prompt: str) -> object:
            return full.check_prompt_models(prompt, rules_verdicts[prompt])

        median, p95 = timed_ms(models, prompts)
        print(f"learned check (beside generation), idle: median {median:.1f} ms, p95 {p95:.1f} ms")
        with CpuLoad():
            median, p95 = timed_ms(models, prompts[:200])
        print(f"learned check while every core runs matrix products: median {median:.1f} ms, "
              f"p95 {p95:.1f} ms")  # fmt: skip

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
