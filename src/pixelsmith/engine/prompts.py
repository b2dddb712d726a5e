"""Fitting prompts to what the text encoder reads, so that nothing is dropped silently.

CLIP-conditioned pipelines (SD 1.x/2.x, SDXL) read a longer prompt whole, in 77-token windows
(long_prompts.py), up to MAX_WINDOWS of them. T5-conditioned ones (FLUX, SD3, PixArt) read up
to their default `max_sequence_length`, and up to 512 tokens when a prompt needs more. Past
that, a prompt is cut at a token boundary and the cut text is reported (the response's
`revised_prompt`); the server's own suffix gets at most half of the window. Runs on the worker
thread, before the pipeline call that uses the same tokenizer: a fast tokenizer's settings
are shared, mutable state, so it must not be used from two threads.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from pixelsmith.engine.long_prompts import (
    MAX_WINDOWS,
    WINDOW_TOKENS,
    reads_in_windows,
    windows_for,
)

# The longest T5 sequence a prompt is read to (T5's own limit in these pipelines).
T5_MAX_TOKENS = 512


@dataclass(frozen=True)
class FittedPrompt:
    text: str  # the part of the prompt the encoder reads
    suffix: str  # the part of the server's suffix it reads
    tokens: int  # the tokens of both, special tokens included
    windows: int = 1  # CLIP windows it is read in
    sequence_length: int | None = None  # T5: the max_sequence_length that reads it whole

    @property
    def shape(self) -> tuple[int, int | None]:
        """Prompts of one shape can share a pipeline call."""
        return self.windows, self.sequence_length


class PromptFitter:
    """The tokenizer of the text encoder that carries the prompt, and its window (special
    tokens included). T5-conditioned pipelines (FLUX, SD3, PixArt) read the prompt through T5
    up to `max_sequence_length`; CLIP-conditioned ones (SD, SDXL) read 77 tokens."""

    def __init__(self, pipeline: Any, call_parameters: frozenset[str]) -> None:
        self._tokenizer: Any = None
        self._window = 0
        self._t5 = False
        tokenizers = [getattr(pipeline, name, None) for name in ("tokenizer_3", "tokenizer_2")]
        if "max_sequence_length" in call_parameters:
            default = inspect.signature(type(pipeline).__call__).parameters["max_sequence_length"]
            for tokenizer in (*tokenizers, getattr(pipeline, "tokenizer", None)):
                if tokenizer is not None and "T5" in type(tokenizer).__name__:
                    self._tokenizer, self._window = tokenizer, int(default.default)
                    self._t5 = True
                    break
        if self._tokenizer is None and getattr(pipeline, "tokenizer", None) is not None:
            self._tokenizer = pipeline.tokenizer
            self._window = int(pipeline.tokenizer.model_max_length)
        self._windowed = not self._t5 and reads_in_windows(pipeline, call_parameters)

    def _count(self, text: str) -> int:
        return len(self._tokenizer(text, truncation=False, verbose=False)["input_ids"])

    def fit(self, text: str, suffix: str = "", negative: str | None = None) -> FittedPrompt:
        """How the prompt (and the job's negative prompt, which is read in as many windows,
        and past 16 of them cut) is read."""
        if self._tokenizer is None:  # a pipeline without a tokenizer: count words
            return FittedPrompt(text, suffix, len((text + suffix).split()))
        total = self._count(text + suffix)
        negative_total = self._count(negative) if negative else 0
        if max(total, negative_total) <= self._window:
            return FittedPrompt(text, suffix, total)
        if self._windowed:
            special = self._count("")  # a window's start and end tokens
            needed = windows_for(total - special)
            if needed > MAX_WINDOWS:
                text, suffix, total = self._cut_to(
                    text, suffix, MAX_WINDOWS * WINDOW_TOKENS + special
                )
            windows = min(max(needed, windows_for(negative_total - special)), MAX_WINDOWS)
            return FittedPrompt(
                text, suffix, total - special + special * windows_for(total - special),
                windows=windows,
            )  # fmt: skip
        if self._t5:
            longest = max(self._window, T5_MAX_TOKENS)
            if total > longest:
                text, suffix, total = self._cut_to(text, suffix, longest)
            return FittedPrompt(text, suffix, total, sequence_length=longest)
        return FittedPrompt(*self._cut_to(text, suffix, self._window))

    def _cut_to(self, text: str, suffix: str, window: int) -> tuple[str, str, int]:
        """The parts of `text` and `suffix` that fit in `window` tokens, and their count."""
        empty = self._count("")  # start and end tokens
        room = window - empty
        suffix_tokens = self._count(suffix) - empty if suffix else 0
        kept_suffix = self._cut(suffix, min(suffix_tokens, room // 2)) if suffix else ""
        budget = room - (self._count(kept_suffix) - empty if kept_suffix else 0)
        used = self._cut(text, budget)
        # Tokens can merge across the join: trim until the whole really fits.
        while (total := self._count(used + kept_suffix)) > window and used:
            budget -= total - window
            used = self._cut(text, max(budget, 0))
        return used, kept_suffix, total

    def _cut(self, text: str, tokens: int) -> str:
        """The start of `text` that holds its first `tokens` tokens (no special tokens), cut in
        the text itself where the last of them ends."""
        if tokens <= 0:
            return ""
        tokenizer = self._tokenizer
        try:
            encoded = tokenizer(
                text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
            )
            offsets = encoded["offset_mapping"]
            return text[: offsets[min(tokens, len(offsets)) - 1][1]].rstrip() if offsets else ""
        except (NotImplementedError, KeyError, TypeError):  # a tokenizer without offsets
            ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            return str(tokenizer.decode(ids[:tokens], skip_special_tokens=True)).strip()
