"""Prompt normalisation against evasion: every prompt becomes a few "views" to match terms on.

Views, each case-folded text with word boundaries kept:
  * folded: NFKC (full-width and mathematical letters), invisible and bidi characters removed,
    combining marks (zalgo, accents) removed, look-alike letters from other scripts folded to
    the Latin letter they imitate (Unicode's confusables data).
  * transliterated: `unidecode` of the cleaned text (other scripts spelled in Latin letters).
  * cleaned: the text before folding, where that differs, for terms written in other scripts.
  * leet-decoded: digits and symbols read as letters (n00d -> nood, s3x -> sex), two ways for
    "1" (i and l).
  * Cyrillic reading: in words that mix Cyrillic with Latin look-alikes or leet digits, those
    read as the Cyrillic letters they imitate ("тoплec" with Latin o, e, c -> "топлес").
Folding and transliteration are for Latin-script prompts with foreign letters mixed in; in a
prompt written mostly in another script, only the words that mix scripts are folded.
In every view, runs of single characters split by spaces or punctuation are joined
("n u d e", "n.u.d.e" -> "nude"), and such runs are also searched without word boundaries
(rules.py). Repeated letters ("nuuude") are collapsed on both the view and the term side.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib.resources import files

from unidecode import unidecode

_LEET = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l",
}  # fmt: skip
_LEET_L = _LEET | {"1": "l"}
# Separators an evader puts between letters; apostrophes are left alone ("don't").
_SPACED_LETTERS = re.compile(r"(?<![\w])(?:\w[\s.\-_*~·•,/\\|]+){2,}\w(?![\w])")
_SEPARATOR = re.compile(r"[\s.\-_*~·•,/\\|]+")
_REPEATS = re.compile(r"(.)\1+")
WINDOW_CHARACTERS = 24
_DIGIT = re.compile(r"[^\W\D0-9]")  # a decimal digit other than 0-9
_CAMEL_OR_TAG = re.compile(r"(?<=[a-z])(?=[A-Z])|[#_]")


@cache
def _homoglyph_map() -> dict[int, str]:
    """Non-ASCII characters that look like an ASCII letter or digit, mapped to it."""
    data = json.loads(
        files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    )
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = [
            g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalnum()
        ]
        if targets:
            # Prefer lower-case letters: prompts are case-folded afterwards anyway.
            table[ord(char)] = sorted(targets, key=lambda c: (not c.islower(), c))[0].lower()
    return table


def clean(text: str) -> str:
    """NFKC, invisible and bidi characters and optional marks removed (accents, zalgo,
    Arabic and Hebrew vowel signs), digits of every script made ASCII ("१२", "١٢" -> "12"),
    case-folded. Marks that are part of the spelling (kana voicing, Indic vowel signs and
    viramas) stay: "グロ" must not become "クロ"."""
    text = unicodedata.normalize("NFKC", text).translate(_SYMBOL_LETTERS)
    if not text.isascii():
        text = _DIGIT.sub(lambda match: str(unicodedata.digit(match.group(0))), text)
    # Cf: zero-width spaces and joiners, bidi controls, soft hyphens and other invisibles.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFC", without_optional_marks(text)).casefold()


# Combining marks that only decorate: diacritics (and the zalgo and strike-through stacks
# built from them), Cyrillic titlo, Hebrew points, Arabic harakat.
_OPTIONAL_MARKS = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)


def without_optional_marks(text: str) -> str:
    """Decomposed `text` without its optional marks (see _OPTIONAL_MARKS)."""
    return _OPTIONAL_MARKS.sub("", unicodedata.normalize("NFD", text))


# Letters from symbol blocks that NFKC leaves alone: negative circled and squared letters
# (🅝, 🅽), and regional indicators (🇳🇺🇩🇪), which evaders use as an alphabet.
_SYMBOL_LETTERS = {
    start + offset: chr(ord("a") + offset)
    for start in (0x1F150, 0x1F170, 0x1F1E6)
    for offset in range(26)
}


def fold(text: str) -> str:
    """`clean`, then look-alike letters from other scripts folded to the Latin they imitate."""
    return clean(text).translate(_homoglyph_map())


def join_spaced_letters(text: str) -> str:
    return _SPACED_LETTERS.sub(lambda match: _SEPARATOR.sub("", match.group(0)), text)


def spaced_run_windows(text: str, min_letters: int) -> list[tuple[str, int, int]]:
    """Runs of letters spelled one by one ("a n u d e w o m a n"), each squashed together
    with the text around it, as (window, run_start, run_end) in the window.

    Word boundaries inside a run are lost, so terms are looked for anywhere in the window, but
    a hit must overlap the run: the spelling shows intent, the neighbours complete a phrase
    ("k i l l all j e w s"), and "N.A.S.A. heroine" does not become "heroin".
    """
    windows = []
    for match in _SPACED_LETTERS.finditer(text):
        run = _SEPARATOR.sub("", match.group(0))
        if len(run) < min_letters:
            continue  # "U.S.A.", "A B C": abbreviations, not evasion
        # Neighbouring text by characters, not words: spelled-out letters are words each.
        prefix = _SEPARATOR.sub("", text[max(0, match.start() - WINDOW_CHARACTERS) : match.start()])
        suffix = _SEPARATOR.sub("", text[match.end() : match.end() + WINDOW_CHARACTERS])
        windows.append((prefix + run + suffix, len(prefix), len(prefix) + len(run)))
    return windows


def collapse_repeats(text: str) -> str:
    return _REPEATS.sub(r"\1", text)


def _decode_leet(text: str, table: dict[str, str], digit_words: bool = False) -> str:
    text = text.replace("()", "o").replace("[]", "o")
    # Words with letters are decoded ("s3x" -> "sex") and numbers stay numbers ("12 year old").
    # With `digit_words`, when some word mixes letters and leet digits, all-digit words are
    # decoded too ("70" in "d347h 70 g4y5").
    words = text.split()
    leet = digit_words and any(
        any(ch.isalpha() for ch in word) and any(ch in table for ch in word) for word in words
    )
    return re.sub(
        r"\S+",
        lambda m: (
            "".join(table.get(ch, ch) for ch in m.group(0))
            if leet or any(ch.isalpha() for ch in m.group(0))
            else m.group(0)
        ),
        text,
    )


def decode_leet(text: str) -> str:
    """Leetspeak read as letters in words that mix letters and digits ("n00d" -> "nood")."""
    return _decode_leet(text, _LEET)


def without_invisibles(text: str) -> str:
    """NFKC, with invisible and bidi characters removed; case, accents and marks kept."""
    text = unicodedata.normalize("NFKC", text).translate(_SYMBOL_LETTERS)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


_WORD = re.compile(r"\w+")


def _fold_mixed_word(match: re.Match[str]) -> str:
    word = match.group(0)
    mixed = any(ch.isascii() and ch.isalpha() for ch in word) and not word.isascii()
    return word.translate(_homoglyph_map()) if mixed else word


# Latin letters, digits and symbols that imitate a Cyrillic letter, in both cases: the reading
# keeps the prompt's case, since the learned check reads a capitalised name as a person.
_CYRILLIC_LOOKALIKES = str.maketrans({
    "a": "а", "c": "с", "e": "е", "k": "к", "o": "о", "p": "р", "x": "х", "y": "у",
    "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р",
    "T": "Т", "X": "Х", "Y": "У", "b": "в", "h": "н", "m": "м", "t": "т",
    "0": "о", "3": "з", "@": "а", "6": "б",
})  # fmt: skip
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_CYRILLIC_MIXED_WORD = re.compile(r"[\w@]+")


def _to_cyrillic_in_mixed_word(match: re.Match[str]) -> str:
    # Only a Cyrillic word whose every Latin letter or digit has a look-alike: "nаked" with
    # one Cyrillic "а" is an English word in disguise, read by the Latin views.
    word = match.group(0)
    foreign = [ch for ch in word if ch.isascii()]
    if not foreign or not _CYRILLIC.search(word):
        return word
    if not all(ord(ch) in _CYRILLIC_LOOKALIKES for ch in foreign):
        return word
    return word.translate(_CYRILLIC_LOOKALIKES)


def cyrillic_reading(text: str) -> str | None:
    """The text with Latin look-alikes inside Cyrillic words read as Cyrillic, case kept
    ("Mapия Шapaпoвa тoплec" -> "Мария Шарапова топлес"), or None when no word mixes them.
    A Russian word spelled with Latin letters is neither Latin nor Russian to the encoders."""
    reading = _CYRILLIC_MIXED_WORD.sub(_to_cyrillic_in_mixed_word, text)
    return reading if reading != text else None


def _mostly_latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return not letters or sum(ch.isascii() for ch in letters) >= 0.5 * len(letters)


# A letter masked by an asterisk inside a word ("s*icide", "n*de", "r*pe"): the prompt is also
# read with each vowel in the masks' place, since the masked letter is nearly always a vowel.
_MASKED_LETTER = re.compile(r"(?<=[^\W\d_])\*+(?=[^\W\d_])")


def views(text: str) -> list[str]:
    """Distinct normalised views of `text` to match terms against."""
    if _MASKED_LETTER.search(text):
        readings = [text, *(_MASKED_LETTER.sub(vowel, text) for vowel in "aeiou")]
        return list(
            dict.fromkeys(view for reading in readings for view in _unmasked_views(reading))
        )
    return _unmasked_views(text)


def _unmasked_views(text: str) -> list[str]:
    # camelCase and #hash_tags: "PipeBomb", "#pipe_bomb" -> "Pipe Bomb", " pipe bomb". A view of
    # its own, since mixed-case spelling ("nUdE") must stay one word in the others.
    split = _CAMEL_OR_TAG.sub(" ", text)
    if split != text:
        return list(dict.fromkeys(_views(text) + _views(split)))
    return _views(text)


def _views(text: str) -> list[str]:
    cleaned = clean(text)
    if _mostly_latin(cleaned):
        # Look-alike letters from other scripts folded to Latin, and the rest transliterated:
        # "пorno" reads "porno", where folding by looks alone would give "popno".
        candidates = [cleaned.translate(_homoglyph_map()), unidecode(cleaned).lower()]
    else:
        # Text written in another script: only words that mix in Latin letters are folded.
        # Folding or transliterating the rest makes English words by chance (Russian "горы",
        # mountains, would read "gory").
        candidates = [_WORD.sub(_fold_mixed_word, cleaned)]
    if candidates[0] != cleaned:
        # The unfolded text, for terms in other scripts ("голая", "裸体").
        candidates.append(cleaned)
    cyrillic = cyrillic_reading(cleaned)
    if cyrillic is not None:
        candidates.append(cyrillic)
    candidates += [
        _decode_leet(view, table) for view in candidates[:2] for table in (_LEET, _LEET_L)
    ]
    candidates += [_decode_leet(view, _LEET, digit_words=True) for view in candidates[:2]]
    # Spaced letters are often also leet ("n 0 d e"): decode after joining too.
    joined = [join_spaced_letters(view) for view in candidates]
    candidates += joined + [_decode_leet(view, _LEET) for view in joined]
    seen: dict[str, None] = {}
    for view in candidates:
        seen.setdefault(view, None)
    return list(seen)
