"""The rule layer: category term lists matched on word boundaries over every normalised view
of a prompt, with one Aho-Corasick automaton (pyahocorasick) for all terms of all categories.

Terms are normalised like prompts (normalize.clean), so that terms in any script match:
accents and combining marks go on both sides. Terms in scripts written without spaces
(Chinese, Japanese, Thai) are matched anywhere, since they have no word boundaries.

Three kinds of entry besides category terms: minor words (a minor is mentioned; see the
minors rule in moderator.py), text-in-image cues ("a sign that says", "poster", "flag"), and
`in_text` terms that only count next to such a cue (a slur that is also an everyday word, an
extremist group's name, which a history lesson may use).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import ahocorasick

from pixelsmith.moderation.normalize import (
    clean,
    collapse_repeats,
    spaced_run_windows,
    views,
    without_optional_marks,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALWAYS_SCORE = 1.0  # blocks at moderation=auto and low
AUTO_SCORE = 0.7  # blocks at moderation=auto only
CUE_SCORE = 0.35  # blocks nothing alone; a sexual signal for the minors and real-person rules
ALLOW = "allow"
MINOR = "minor"
TEXT_CUE = "text-cue"
IN_TEXT = "in-text"
GROUP = "group"
APPROVAL_CUE = "approval-cue"
# Letter-by-letter runs shorter than this are abbreviations ("U.S.A.", "A B C"), not evasion.
EVASION_RUN_LENGTH = 4
# Around such runs, terms this long are searched without word boundaries.
SQUASHED_MIN_LENGTH = 4
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
# Scripts without spaces between words: Han, kana, Thai.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _without_marks(pattern: str) -> str:
    """A pattern normalised as prompts are (NFKC, no optional marks), with its case kept
    ("\\W" is not "\\w")."""
    return unicodedata.normalize(
        "NFC", without_optional_marks(unicodedata.normalize("NFKC", pattern))
    )


def _is_word_character(character: str) -> bool:
    # Devanagari and Bengali vowel signs are marks, not letters, but are inside words.
    return character.isalnum() or unicodedata.category(character).startswith("M")


@dataclass
class RuleMatch:
    scores: dict[str, float] = field(default_factory=dict)
    mentions_minor: bool = False
    terms: list[str] = field(default_factory=list)  # what matched, for the server log
    text_in_image: bool = False
    approving: bool = False  # a rally, a march, glory: a group shown approvingly
    # (category, term) of in_text terms seen, which count once a text-in-image cue is seen
    in_text: list[tuple[str, str]] = field(default_factory=list)
    # (category, term) of extremist group names seen, which count next to either kind of cue
    groups: list[tuple[str, str]] = field(default_factory=list)


def _expand(term: str, groups: list[str]) -> list[str]:
    return [term.replace("{group}", group) for group in groups] if "{group}" in term else [term]


class TermMatcher:
    def __init__(self, data: dict[str, Any]) -> None:
        groups: list[str] = data["groups"]["protected"]
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[str, str, float]]] = {}

        def add(term: str, kind: str, category: str, score: float) -> None:
            term = clean(term)
            forms = {term}
            if " " not in term and kind != ALLOW and term.isascii():
                forms |= {term + "s", term + "es"}  # plurals: "penises"
            collapsed = collapse_repeats(term)
            if len(collapsed) >= 4:  # "xxx" must not become a bare "x"
                forms.add(collapsed)
            for form in forms:
                entries.setdefault(form, []).append((kind, category, score))

        for category, tiers in data["categories"].items():
            for tier, score in (("always", ALWAYS_SCORE), ("auto", AUTO_SCORE), ("cue", CUE_SCORE)):
                for term in tiers.get(tier, []):
                    for expanded in _expand(term, groups):
                        add(expanded, "term", category, score)
            for term in tiers.get("in_text", []):
                add(term, IN_TEXT, category, AUTO_SCORE)
            for term in tiers.get("groups", []):
                add(term, GROUP, category, AUTO_SCORE)
        for term in data["minors"]["terms"]:
            add(term, MINOR, MINOR, 0.0)
        for term in data["text_in_image"]["cues"]:
            add(term, TEXT_CUE, TEXT_CUE, 0.0)
        for term in data["text_in_image"].get("approval", []):
            add(term, APPROVAL_CUE, APPROVAL_CUE, 0.0)
        for phrase in [*data["allow"]["phrases"], *data.get("benign_names", {})]:
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
        self._minor_patterns = [re.compile(_without_marks(p)) for p in data["minors"]["patterns"]]
        self._negations = frozenset(clean(word) for word in data["negation"]["words"])
        self._negatable = frozenset(data["negation"]["categories"])

    def _negated(self, view: str, start: int) -> bool:
        """Whether the hit at `start` follows a negation ("no", "sin", "без", "没有")."""
        before = view[max(0, start - 12) : start].rstrip()
        if not before:
            return False
        words = before.split()
        if words[-1] in self._negations or " ".join(words[-2:]) in self._negations:
            return True
        # Chinese and Japanese negations are not spaced off from the word they negate.
        return any(before.endswith(word) for word in self._negations if _UNSPACED.search(word))

    def match(self, text: str) -> RuleMatch:
        result = RuleMatch()
        for view in views(text):
            for candidate in {view, collapse_repeats(view)}:
                self._match_view(self._automaton, candidate, result, boundaries=True)
            for window, run_start, run_end in spaced_run_windows(view, EVASION_RUN_LENGTH):
                self._match_view(
                    self._squashed, window, result, boundaries=False, within=(run_start, run_end)
                )
        counted = result.in_text if result.text_in_image else []
        if result.text_in_image or result.approving:
            counted = counted + result.groups
        for category, key in dict.fromkeys(counted):
            if AUTO_SCORE > result.scores.get(category, 0.0):
                result.scores[category] = AUTO_SCORE
            where = "in text in the image" if result.text_in_image else "shown approvingly"
            result.terms.append(f"{category}:{key} ({where})")
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
            if (
                boundaries
                and (_is_word_character(before) or _is_word_character(after))
                and not _UNSPACED.search(key)
            ):
                continue  # not on word boundaries: "cocktail" is not "cock"
            if within is not None and (end < within[0] or start >= within[1]):
                continue  # the hit must overlap the spelled-out run
            if any(kind == ALLOW for kind, _, _ in values):
                allowed.append((start, end))
            hits.append((start, end, key, values))
        for start, end, key, values in hits:
            if any(a_start <= start and end <= a_end for a_start, a_end in allowed):
                continue
            negated = self._negated(view, start)
            for kind, category, score in values:
                if negated and (kind == TEXT_CUE or category in self._negatable):
                    continue  # "no gore", "sem bandeiras": the prompt asks for its absence
                if kind == MINOR:
                    result.mentions_minor = True
                elif kind == TEXT_CUE:
                    result.text_in_image = True
                elif kind == APPROVAL_CUE:
                    result.approving = True
                elif kind == IN_TEXT:
                    result.in_text.append((category, key))
                elif kind == GROUP:
                    result.groups.append((category, key))
                elif kind == "term" and score > result.scores.get(category, 0.0):
                    result.scores[category] = score
                    result.terms.append(f"{category}:{key}")
        if not result.mentions_minor and any(p.search(view) for p in self._minor_patterns):
            result.mentions_minor = True


@cache
def _bundled_terms() -> dict[str, Any]:
    text = files("pixelsmith.moderation").joinpath("data/terms.toml").read_text(encoding="utf-8")
    terms: dict[str, Any] = tomllib.loads(text)
    return terms


@cache
def default_matcher() -> TermMatcher:
    """The matcher for the bundled term lists, built once per process (a few ms)."""
    return TermMatcher(_bundled_terms())


# Letters of the scripts written with spaces, Devanagari's vowel signs included (they are
# marks, not \w): a name must not match inside a longer word.
_LETTER = r"[\w\u0900-\u097f]"
_NAME_SEPARATOR = r"[\s\-]+"  # "naked mole-rat", "naked mole rat"


class PlainNames:
    """[benign_names]: allowed names whose words read as refused content, each replaced by a
    plain name ("naked mole-rat" -> "mole-rat"), for the learned check to read."""

    def __init__(self, names: dict[str, str]) -> None:
        # Longest first, so that "naked mole-rats" wins over "naked mole-rat". Each name is
        # its own group: the match says which name it was, whatever case or spacing it had
        # (case-insensitive matching and case folding disagree on letters such as "İ").
        ordered = sorted(names.items(), key=lambda item: len(item[0]), reverse=True)
        self._plain = [plain for _, plain in ordered]
        alternatives = []
        for name, _ in ordered:
            words = re.split(_NAME_SEPARATOR, name.strip())
            pattern = _NAME_SEPARATOR.join(re.escape(word) for word in words)
            if not _UNSPACED.search(name):
                pattern = rf"(?<!{_LETTER}){pattern}(?!{_LETTER})"
            alternatives.append(f"({pattern})")
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE) if names else None

    def replace(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: self._plain[(match.lastindex or 1) - 1], text)


@cache
def plain_names() -> PlainNames:
    return PlainNames(_bundled_terms().get("benign_names", {}))
