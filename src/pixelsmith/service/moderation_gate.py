"""The moderation of one image request, in the order its checks gate it:

1. before the queue: the prompt's term rules (well under a millisecond) and the input images;
2. beside the queue wait and the run: the model-based prompt checks, which take milliseconds
   on a CPU and need not hold up the queue;
3. before anything leaves the server: that prompt verdict, then every image, outputs and
   stream previews alike.

A blocked request raises ModerationBlockedError, in the legacy shape for the dall-e names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from PIL import Image

from pixelsmith import metrics
from pixelsmith.errors import ModerationBlockedError
from pixelsmith.moderation import ModerationLevel, Moderator, Verdict
from pixelsmith.service.plans import ImagePlan

logger = logging.getLogger(__name__)


class RequestModeration:
    def __init__(self, moderator: Moderator, plan: ImagePlan, request_id: str) -> None:
        self._moderator = moderator
        self._plan = plan
        self._request_id = request_id
        self._models: asyncio.Future[Verdict] | None = None
        self._prompt: Verdict | None = None

    async def admit(self) -> None:
        """The checks that gate the queue; then the model-based prompt checks start."""
        plan = self._plan
        rules = await asyncio.to_thread(
            self._moderator.check_prompt_rules, plan.prompt, plan.moderation
        )
        self._raise_if_blocked(rules)
        if plan.inputs:
            inputs = await asyncio.to_thread(
                self._moderator.check_images, list(plan.inputs), plan.moderation, rules, "input"
            )
            self._raise_if_blocked(inputs)
        self._models = asyncio.ensure_future(
            asyncio.to_thread(self._moderator.check_prompt_models, plan.prompt, rules)
        )
        # If generation fails first, nobody awaits the check: retrieve its outcome anyway.
        self._models.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def prompt(self) -> None:
        """Wait for every prompt check; raise if the prompt is blocked."""
        if self._prompt is None:
            assert self._models is not None, "admit() first"
            verdict = await self._models
            self._raise_if_blocked(verdict)
            self._prompt = verdict

    def check_images(self, images: Sequence[Image.Image]) -> None:
        """Raise unless `images` (outputs, or previews of them) may leave. Blocking: call it off
        the event loop, after prompt()."""
        assert self._prompt is not None, "prompt() first"
        # An edit's input may show a child the prompt never names, which the minors rule cannot
        # see; so the outputs of edits and variations are checked at the strict level.
        level: ModerationLevel = "auto" if self._plan.inputs else self._plan.moderation
        self._raise_if_blocked(self._moderator.check_images(images, level, self._prompt))

    def _raise_if_blocked(self, verdict: Verdict) -> None:
        if not verdict.blocked:
            return
        for category in verdict.categories:
            metrics.MODERATION_BLOCKS.labels(verdict.stage, category).inc()
        logger.info(
            "request %s blocked by moderation at %s: %s",
            self._request_id,
            verdict.stage,
            verdict.categories,
        )
        raise ModerationBlockedError(
            stage=verdict.stage,
            categories=verdict.categories,
            request_id=self._request_id,
            legacy=self._plan.target.legacy_family,
        )
