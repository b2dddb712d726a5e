"""Fitting prompts to the text encoder's window, so that nothing is dropped silently.

A prompt longer than the encoder reads is cut at a token boundary and the cut text is reported
(the response's `revised_prompt`); the server's own suffix gets at most half the window. Runs
on the worker thread, before the pipeline call that uses the same tokenizer: a fast
tokenizer's settings are shared, mutable state, so it must not be used from two threads.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FittedPrompt:
    text: str  # the part of the prompt the encoder reads
    suffix: str  # the part of the server's suffix it reads
    tokens: int  # the tokens of both, special tokens included


class PromptFitter:
    """The tokenizer of the text encoder that carries the prompt, and its window (special
    tokens included). T5-conditioned pipelines (FLUX, SD3, PixArt) read the prompt through T5
    up to `max_sequence_length`; CLIP-conditioned ones (SD, SDXL) read 77 tokens."""

    def __init__(self, pipeline: Any, call_parameters: frozenset[str]) -> None:
        self._tokenizer: Any = None
        self._window = 0
        tokenizers = [getattr(pipeline, name, None) for name in ("tokenizer_3", "tokenizer_2")]
        if "max_sequence_length" in call_parameters:
            default = inspect.signature(type(pipeline).__call__).parameters["max_sequence_length"]
            for tokenizer in (*tokenizers, getattr(pipeline, "tokenizer", None)):
                if tokenizer is not None and "T5" in type(tokenizer).__name__:
                    self._tokenizer, self._window = tokenizer, int(default.default)
                    break
        if self._tokenizer is None and getattr(pipeline, "tokenizer", None) is not None:
            self._tokenizer = pipeline.tokenizer
            self._window = int(pipeline.tokenizer.model_max_length)

    def _count(self, text: str) -> int:
        return len(self._tokenizer(text, truncation=False, verbose=False)["input_ids"])

    def fit(self, text: str, suffix: str = "") -> FittedPrompt:
        if self._tokenizer is None:  # a pipeline without a tokenizer: count words
            return FittedPrompt(text, suffix, len((text + suffix).split()))
        window = self._window
        total = self._count(text + suffix)
        if total <= window:
            return FittedPrompt(text, suffix, total)
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
        return FittedPrompt(used, kept_suffix, total)

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
