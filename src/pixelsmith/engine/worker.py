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
    waiting: bool = True  # counted in PipelineWorker._waiting until taken or cancelled


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
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._max_waiting = max_queue_size
        # Jobs waiting whose callers still want them: a job cancelled while queued frees its
        # place at once, not when the consumer reaches and skips it.
        self._waiting = 0
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
        return await self.enqueue(job)

    def enqueue(self, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job` now (or raise RateLimitError) and return the future of its output, so a
        caller can refuse a request before it has answered anything (streams)."""
        if self._consumer is None or self._consumer.done():
            raise ServiceUnavailableError(f"model {self.name} is not running", should_retry=False)
        if self._waiting >= self._max_waiting:
            wait = self._mean_seconds * (self._waiting + 1)
            raise RateLimitError(
                f"The server is busy: {self._waiting} requests are already waiting for "
                f"model {self.name}. Retry shortly.",
                retry_after_seconds=min(wait, 60),
            )
        future: asyncio.Future[GenerationOutput] = asyncio.get_running_loop().create_future()
        pending = _Pending(job, future)
        self._waiting += 1
        future.add_done_callback(lambda _: self._stop_waiting(pending))
        self._queue.put_nowait(pending)
        return future

    def _stop_waiting(self, pending: _Pending) -> None:
        if pending.waiting:
            pending.waiting = False
            self._waiting -= 1

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = await self._queue.get()
            try:
                if pending.future.done():  # cancelled while waiting: never run it
                    continue
                self._stop_waiting(pending)
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
