"""Evaluation helpers: obfuscated variants of red-team prompts, and block rates per category.

Used by benchmarks/moderation_eval.py and the tests; operators can run it on their own lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pixelsmith.moderation.base import ModerationLevel
from pixelsmith.moderation.moderator import Moderator

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у"})
_FULLWIDTH = {chr(c): chr(c + 0xFEE0) for c in range(ord("!"), ord("~") + 1)}


def _each_word(transform: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: " ".join(
        transform(word) if len(word) > 3 else word for word in text.split()
    )


OBFUSCATIONS: dict[str, Callable[[str], str]] = {
    "leet": lambda text: text.translate(_LEET),
    "spaced": _each_word(lambda word: " ".join(word)),
    "dotted": _each_word(lambda word: ".".join(word)),
    "zero-width": _each_word(lambda word: "\u200b".join(word)),
    "cyrillic": lambda text: text.translate(_CYRILLIC),
    "fullwidth": lambda text: "".join(_FULLWIDTH.get(ch, ch) for ch in text),
    "math-bold": lambda text: "".join(
        chr(0x1D41A + ord(ch) - ord("a")) if "a" <= ch <= "z" else ch for ch in text
    ),
    "repeats": _each_word(lambda word: word[0] + word[1] * 3 + word[2:]),
    "upper-mixed": lambda text: "".join(
        ch.upper() if index % 2 else ch for index, ch in enumerate(text)
    ),
}


def read_prompts(path: Path) -> list[tuple[str, str]]:
    """(category, prompt) pairs from a `category<TAB>prompt` file, or ("benign", prompt)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        category, tab, prompt = line.partition("\t")
        pairs.append((category, prompt) if tab else ("benign", line.strip()))
    return pairs


def obfuscated(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(category, obfuscation, prompt) for every pair and every obfuscation."""
    return [
        (category, name, transform(prompt))
        for category, prompt in pairs
        for name, transform in OBFUSCATIONS.items()
    ]


@dataclass
class Rates:
    total: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)

    def add(self, group: str, was_blocked: bool, prompt: str) -> None:
        self.total[group] = self.total.get(group, 0) + 1
        self.blocked[group] = self.blocked.get(group, 0) + int(was_blocked)
        if not was_blocked:
            self.missed.append(prompt)

    def rate(self, group: str | None = None) -> float:
        if group is None:
            return sum(self.blocked.values()) / max(1, sum(self.total.values()))
        return self.blocked.get(group, 0) / max(1, self.total.get(group, 0))


def block_rates(
    moderator: Moderator, pairs: Iterable[tuple[str, str]], level: ModerationLevel
) -> Rates:
    rates = Rates()
    for group, prompt in pairs:
        rates.add(group, moderator.check_prompt(prompt, level).blocked, prompt)
    return rates
