"""A bounded queue in front of one thread per pipeline, with dynamic batching.

Requests wait in a queue on the event loop; a single consumer task hands them to a dedicated
thread, so the event loop never blocks and a pipeline never runs two calls at once. When the
consumer takes a job, it also takes the waiting jobs that can share its pipeline call (same
batch key: size, steps, guidance, ...), up to `max_batch_size` images, waiting at most
`batch_timeout` seconds for more to arrive. A batch that fails is run again one job at a
time, so one bad request (or a batch too big for the GPU's memory) fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pixelsmith import metrics
from pixelsmith.engine.jobs import (
    GenerationJob,
    GenerationOutput,
    JobCancelled,
    UnsupportedJobError,
)
from pixelsmith.errors import APIError, RateLimitError, ServiceUnavailableError

logger = logging.getLogger(__name__)

RunBatch = Callable[[list[GenerationJob]], list[GenerationOutput]]
BatchKey = Callable[[GenerationJob], Hashable | None]
# The most images a batch that starts with this job may have (what fits the GPU's memory at
# its size); max_batch_size caps it too.
BatchLimit = Callable[[GenerationJob], int]


def bucket_sizes(max_batch_size: int) -> tuple[int, ...]:
    """The batch sizes a compiled pipeline runs at: powers of two up to max_batch_size, and
    max_batch_size itself. A compiled (and CUDA-graph captured) denoiser is specialised to
    its batch size; a few buckets mean a few compilations, all at warm-up."""
    sizes = {
        1 << power for power in range(max_batch_size.bit_length()) if 1 << power <= max_batch_size
    }
    return tuple(sorted(sizes | {max_batch_size}))


@dataclass
class _Pending:
    job: GenerationJob
    future: asyncio.Future[GenerationOutput]
    waiting: bool = True  # counted in PipelineWorker._waiting until taken or cancelled
    queued_at: float = field(default_factory=time.monotonic)


def _never_batch(job: GenerationJob) -> None:
    return None


class PipelineWorker:
    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        *,
        max_queue_size: int,
        max_batch_size: int = 1,
        batch_timeout: float = 0.0,
        batch_key: BatchKey = _never_batch,
        batch_limit: BatchLimit | None = None,
        buckets: tuple[int, ...] | None = None,
    ) -> None:
        """`buckets`: the only batch sizes to form when several jobs share a call (a compiled
        pipeline's); a job alone runs at its own size."""
        self.name = name
        self._run_batch = run_batch
        self._batch_key = batch_key
        self._max_batch_size = max_batch_size
        self._batch_limit = batch_limit
        self._buckets = buckets
        self._batch_timeout = batch_timeout
        self._pending: deque[_Pending] = deque()
        self._arrived = asyncio.Event()  # set whenever a job is queued
        self._max_waiting = max_queue_size
        # Jobs waiting whose callers still want them: a job cancelled while queued frees its
        # place at once, not when the consumer reaches and skips it.
        self._waiting = 0
        self._busy = False  # a batch is being gathered or run
        self._closing = False  # stop() has begun: no new jobs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pixelsmith-{name}")
        self._consumer: asyncio.Task[None] | None = None
        # Running mean of seconds per job, for a useful Retry-After when the queue is full.
        self._mean_seconds = 1.0

    def start(self) -> None:
        if self._consumer is None:
            self._consumer = asyncio.create_task(self._consume(), name=f"worker-{self.name}")

    def enqueue(self, job: GenerationJob) -> asyncio.Future[GenerationOutput]:
        """Queue `job` now (or raise RateLimitError) and return the future of its output, so a
        caller can refuse a request before it has answered anything (streams). Cancelling the
        future (its caller has gone) drops a job that has not started yet."""
        if self._consumer is None or self._consumer.done() or self._closing:
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
        self._pending.append(pending)
        self._arrived.set()
        return future

    @property
    def depth(self) -> int:
        """Jobs waiting whose callers still want them."""
        return self._waiting

    @property
    def idle(self) -> bool:
        return not self._busy and not any(not p.future.done() for p in self._pending)

    def _stop_waiting(self, pending: _Pending) -> None:
        if pending.waiting:
            pending.waiting = False
            self._waiting -= 1

    def _pop_live(self) -> _Pending | None:
        """The next job to run: the first waiting one of the lowest priority number (an
        interactive request before batch lines, first come first served within each)."""
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()  # a job cancelled while waiting never runs
        best: _Pending | None = None
        for pending in self._pending:
            if pending.future.done():
                continue
            if best is None or pending.job.priority < best.job.priority:
                best = pending
                if best.job.priority == 0:
                    break
        if best is not None:
            self._pending.remove(best)
        return best

    def _limit(self, job: GenerationJob) -> int:
        limit = self._max_batch_size
        if self._batch_limit is not None:
            limit = max(1, min(limit, self._batch_limit(job)))
        return limit

    def _take_compatible(self, batch: list[_Pending], key: Hashable, limit: int) -> int:
        """Move waiting jobs with `key` into `batch` while they fit; return its image count.
        Jobs that do not fit keep their place in the queue."""
        images = sum(pending.job.num_images for pending in batch)
        kept: deque[_Pending] = deque()
        while self._pending:
            pending = self._pending.popleft()
            if pending.future.done():
                continue
            fits = images + pending.job.num_images <= limit
            if fits and self._batch_key(pending.job) == key:
                batch.append(pending)
                images += pending.job.num_images
            else:
                kept.append(pending)
        self._pending = kept
        return images

    async def _wait_for_job(self) -> _Pending:
        while (first := self._pop_live()) is None:
            self._arrived.clear()
            await self._arrived.wait()
        return first

    async def _gather(self, batch: list[_Pending]) -> None:
        """Add waiting jobs that can share the call of `batch[0]`, waiting up to batch_timeout
        for more. Jobs cancelled meanwhile are dropped from the batch."""
        first = batch[0]
        key = self._batch_key(first.job)
        limit = self._limit(first.job)
        if key is None or first.job.num_images >= limit:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_timeout
        while self._take_compatible(batch, key, limit) < limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                break
            batch[:] = [pending for pending in batch if not pending.future.done()]
            if not batch:
                return

    async def _consume(self) -> None:
        while True:
            first = await self._wait_for_job()
            self._busy = True  # from here jobs are out of the queue: stop() must wait for them
            batch = [first]
            try:
                await self._gather(batch)
                batch = [pending for pending in batch if not pending.future.done()]
                if not batch:
                    continue
                self._fit_bucket(batch)
                for pending in batch:
                    self._stop_waiting(pending)
                await self._run(batch)
            except Exception as exc:  # a bug here must not stop the worker or strand callers
                logger.exception("worker %s failed to run a batch", self.name)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(self._failure(exc))
            finally:
                self._busy = False

    def _fit_bucket(self, batch: list[_Pending]) -> None:
        """With buckets, cut the batch to the longest run of its jobs (in queue order) whose
        images make a bucket size; the rest go back to the front of the queue, first in line
        for the next batch. A batch that no run fits (one job of 3 images) stays whole."""
        if self._buckets is None or len(batch) == 1:
            return
        images, keep = 0, 0
        for count, pending in enumerate(batch, start=1):
            images += pending.job.num_images
            if images in self._buckets:
                keep = count
        if keep and keep < len(batch):
            self._pending.extendleft(reversed(batch[keep:]))
            del batch[keep:]

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        jobs = [pending.job for pending in batch]
        started = time.monotonic()
        for pending in batch:
            metrics.QUEUE_WAIT_SECONDS.labels(self.name).observe(started - pending.queued_at)
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, jobs)
            if len(outputs) != len(jobs):
                raise RuntimeError(f"{len(outputs)} outputs for {len(jobs)} jobs")
        except JobCancelled as exc:  # every caller of the batch has gone
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        except Exception as exc:
            if len(batch) > 1:
                # Find the job that fails (or let a batch too big for memory succeed in parts).
                logger.warning(
                    "a batch of %d jobs on %s failed (%s); running them one at a time",
                    len(batch),
                    self.name,
                    type(exc).__name__,
                )
                for pending in batch:
                    if not pending.future.done():
                        await self._run([pending])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(self._failure(exc))
        else:
            self._record(jobs, time.monotonic() - started)
            for pending, output in zip(batch, outputs, strict=True):
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * output.seconds / len(batch)
                if not pending.future.done():
                    pending.future.set_result(output)

    def _record(self, jobs: list[GenerationJob], seconds: float) -> None:
        images = sum(job.num_images for job in jobs)
        first = jobs[0]  # a batch shares its size and steps (the batch key)
        size = metrics.size_label(first.width, first.height)
        metrics.BATCH_IMAGES.labels(self.name).observe(images)
        metrics.IMAGES.labels(self.name).inc(images)
        metrics.IMAGE_SECONDS.labels(self.name, size).observe(seconds / max(1, images))
        steps = max(1, first.num_inference_steps)
        metrics.STEP_SECONDS.labels(self.name, size).observe(seconds / steps)

    def _failure(self, exc: Exception) -> Exception:
        """What the caller of a job that failed on its own sees: 503, and whether a retry can
        help. Nothing was produced, so a retry never makes an image twice; but a job that
        fails for what it is (not for the load it met) would only fail again."""
        if isinstance(exc, (APIError, UnsupportedJobError)):
            return exc
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
            logger.warning("model %s ran out of memory on a single job", self.name)
            failure = ServiceUnavailableError(
                f"Model {self.name} ran out of memory for this request. Retry later, or ask for "
                "fewer or smaller images.",
                should_retry=True,
            )
        else:
            logger.error("model %s failed on a job", self.name, exc_info=exc)
            failure = ServiceUnavailableError(
                f"Model {self.name} failed to generate this request ({type(exc).__name__}). "
                "The server keeps serving; the logs have the details.",
                should_retry=False,
            )
        failure.__cause__ = exc
        return failure

    async def stop(self) -> None:
        """Refuse new jobs, finish the queued and running ones (drain), then stop the thread."""
        self._closing = True
        if self._consumer is not None:
            while not self.idle and not self._consumer.done():
                await asyncio.sleep(0.01)
            self._consumer.cancel()
            try:
                await self._consumer
            except asyncio.CancelledError:
                pass
            self._consumer = None
        for pending in self._pending:  # only if the consumer died: nobody is left to run them
            if not pending.future.done():
                pending.future.set_exception(
                    ServiceUnavailableError(f"model {self.name} stopped", should_retry=False)
                )
        self._pending.clear()
        self._executor.shutdown(wait=True)
