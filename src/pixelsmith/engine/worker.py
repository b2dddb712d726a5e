"""A bounded queue in front of one thread per pipeline.

Requests wait in an asyncio queue; a single consumer task hands them, one at a time, to a
dedicated thread, so the event loop never blocks and a pipeline never runs two calls at once.
Batching, streaming and moderation hook in here later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pixelsmith.engine.jobs import GenerationJob, GenerationOutput
from pixelsmith.errors import RateLimitError, ServiceUnavailableError

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    job: GenerationJob
    future: asyncio.Future[GenerationOutput]


class PipelineWorker:
    def __init__(
        self,
        name: str,
        run: Callable[[GenerationJob], GenerationOutput],
        *,
        max_queue_size: int,
    ) -> None:
        self.name = name
        self._run = run
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pixelsmith-{name}")
        self._consumer: asyncio.Task[None] | None = None
        # Running mean of job time, for a useful Retry-After when the queue is full.
        self._mean_seconds = 1.0

    def start(self) -> None:
        if self._consumer is None:
            self._consumer = asyncio.create_task(self._consume(), name=f"worker-{self.name}")

    async def submit(self, job: GenerationJob) -> GenerationOutput:
        """Queue `job` and wait for its images. Cancelling the caller (client gone) drops a job
        that has not started yet."""
        if self._consumer is None or self._consumer.done():
            raise ServiceUnavailableError(f"model {self.name} is not running", should_retry=False)
        future: asyncio.Future[GenerationOutput] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(job, future))
        except asyncio.QueueFull:
            wait = self._mean_seconds * (self._queue.qsize() + 1)
            raise RateLimitError(
                f"The server is busy: {self._queue.qsize()} requests are already waiting for "
                f"model {self.name}. Retry shortly.",
                retry_after_seconds=min(wait, 60),
            ) from None
        return await future

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = await self._queue.get()
            try:
                if pending.future.done():  # cancelled while waiting: never run it
                    continue
                try:
                    output = await loop.run_in_executor(self._executor, self._run, pending.job)
                except Exception as exc:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                else:
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * output.seconds
                    if not pending.future.done():
                        pending.future.set_result(output)
            finally:
                self._queue.task_done()

    async def stop(self) -> None:
        """Finish the queued jobs, then stop the thread."""
        if self._consumer is not None:
            await self._queue.join()
            self._consumer.cancel()
            try:
                await self._consumer
            except asyncio.CancelledError:
                pass
            self._consumer = None
        self._executor.shutdown(wait=True)
