"""The rule layer: category term lists matched on word boundaries over every normalised view
of a prompt, with one Aho-Corasick automaton (pyahocorasick) for all terms of all categories."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import ahocorasick

from pixelsmith.moderation.normalize import collapse_repeats, spaced_run_windows, views

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALWAYS_SCORE = 1.0  # blocks at moderation=auto and low
AUTO_SCORE = 0.7  # blocks at moderation=auto only
ALLOW = "allow"
MINOR = "minor"
# Letter-by-letter runs shorter than this are abbreviations ("U.S.A.", "A B C"), not evasion.
EVASION_RUN_LENGTH = 4
# Around such runs, terms this long are searched without word boundaries.
SQUASHED_MIN_LENGTH = 4
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@dataclass
class RuleMatch:
    scores: dict[str, float] = field(default_factory=dict)
    mentions_minor: bool = False
    terms: list[str] = field(default_factory=list)  # what matched, for the server log


def _expand(term: str, groups: list[str]) -> list[str]:
    return [term.replace("{group}", group) for group in groups] if "{group}" in term else [term]


class TermMatcher:
    def __init__(self, data: dict[str, Any]) -> None:
        groups: list[str] = data["groups"]["protected"]
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[str, str, float]]] = {}

        def add(term: str, kind: str, category: str, score: float) -> None:
            forms = {term.lower()}
            if " " not in term and kind != ALLOW:
                forms |= {term.lower() + "s", term.lower() + "es"}  # plurals: "penises"
            collapsed = collapse_repeats(term.lower())
            if len(collapsed) >= 4:  # "xxx" must not become a bare "x"
                forms.add(collapsed)
            for form in forms:
                entries.setdefault(form, []).append((kind, category, score))

        for category, tiers in data["categories"].items():
            for tier, score in (("always", ALWAYS_SCORE), ("auto", AUTO_SCORE)):
                for term in tiers.get(tier, []):
                    for expanded in _expand(term, groups):
                        add(expanded, "term", category, score)
        for term in data["minors"]["terms"]:
            add(term, MINOR, MINOR, 0.0)
        for phrase in data["allow"]["phrases"]:
            add(phrase, ALLOW, ALLOW, 0.0)
        self._squashed = ahocorasick.Automaton()
        squashed: dict[str, list[tuple[str, str, float]]] = {}
        for key, values in entries.items():
            self._automaton.add_word(key, (key, values))
            compact = _NOT_ALNUM.sub("", key)
            if len(compact) >= SQUASHED_MIN_LENGTH:
                squashed.setdefault(compact, []).extend(values)
        for key, values in squashed.items():
            self._squashed.add_word(key, (key, values))
        self._automaton.make_automaton()
        self._squashed.make_automaton()
        self._minor_patterns = [re.compile(p) for p in data["minors"]["patterns"]]

    def match(self, text: str) -> RuleMatch:
        result = RuleMatch()
        for view in views(text):
            for candidate in {view, collapse_repeats(view)}:
                self._match_view(self._automaton, candidate, result, boundaries=True)
            for window, run_start, run_end in spaced_run_windows(view, EVASION_RUN_LENGTH):
                self._match_view(
                    self._squashed, window, result, boundaries=False, within=(run_start, run_end)
                )
        return result

    def _match_view(
        self,
        automaton: Any,
        view: str,
        result: RuleMatch,
        *,
        boundaries: bool,
        within: tuple[int, int] | None = None,
    ) -> None:
        hits: list[tuple[int, int, str, list[tuple[str, str, float]]]] = []
        allowed: list[tuple[int, int]] = []
        for end, (key, values) in automaton.iter(view):
            start = end - len(key) + 1
            before = view[start - 1] if start > 0 else " "
            after = view[end + 1] if end + 1 < len(view) else " "
            if boundaries and (before.isalnum() or after.isalnum()):
                continue  # not on word boundaries: "cocktail" is not "cock"
            if within is not None and (end < within[0] or start >= within[1]):
                continue  # the hit must overlap the spelled-out run
            if any(kind == ALLOW for kind, _, _ in values):
                allowed.append((start, end))
            hits.append((start, end, key, values))
        for start, end, key, values in hits:
            if any(a_start <= start and end <= a_end for a_start, a_end in allowed):
                continue
            for kind, category, score in values:
                if kind == MINOR:
                    result.mentions_minor = True
                elif kind == "term" and score > result.scores.get(category, 0.0):
                    result.scores[category] = score
                    result.terms.append(f"{category}:{key}")
        if not result.mentions_minor and any(p.search(view) for p in self._minor_patterns):
            result.mentions_minor = True


@cache
def default_matcher() -> TermMatcher:
    """The matcher for the bundled term lists, built once per process (a few ms)."""
    text = files("pixelsmith.moderation").joinpath("data/terms.toml").read_text(encoding="utf-8")
    return TermMatcher(tomllib.loads(text))
