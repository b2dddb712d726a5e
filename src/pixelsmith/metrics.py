"""Prometheus metrics, served at /metrics (prometheus_client).

One set of series per process, updated where things happen: the HTTP edge (requests), the
engine's workers (queue, batches, run times), the service (moderation blocks, encoding,
previews, uploads). Queue depth is read from the workers when Prometheus scrapes.

Label values are bounded: models are configured ids (a client's unknown name is "unknown"),
routes are route templates, sizes are WIDTHxHEIGHT of images actually made.

When the server runs as several processes on one host (PROMETHEUS_MULTIPROC_DIR set, as
prometheus_client's multiprocess mode asks), /metrics aggregates them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

# Seconds: from a millisecond (an encode) to ten minutes (a large image on a CPU).
TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)

REQUESTS = Counter("pixelsmith_requests", "HTTP requests answered.", ["route", "model", "status"])
REQUEST_SECONDS = Histogram(
    "pixelsmith_request_seconds",
    "Time from a request's arrival to the end of its answer (streams included).",
    ["route"],
    buckets=TIME_BUCKETS,
)
IMAGES = Counter("pixelsmith_images_generated", "Images generated.", ["model"])
QUEUE_WAIT_SECONDS = Histogram(
    "pixelsmith_queue_wait_seconds",
    "Time a job waited in its model's queue before its pipeline call started.",
    ["model"],
    buckets=TIME_BUCKETS,
)
BATCH_IMAGES = Histogram(
    "pixelsmith_batch_images", "Images per pipeline call.", ["model"], buckets=BATCH_BUCKETS
)
STEP_SECONDS = Histogram(
    "pixelsmith_step_seconds",
    "Time per denoising step of a pipeline call.",
    ["model", "size"],
    buckets=TIME_BUCKETS,
)
IMAGE_SECONDS = Histogram(
    "pixelsmith_image_seconds",
    "Pipeline time per image (a batch's time divided by its images).",
    ["model", "size"],
    buckets=TIME_BUCKETS,
)
MODERATION_BLOCKS = Counter(
    "pixelsmith_moderation_blocks",
    "Requests blocked by moderation, by stage and flagged category.",
    ["stage", "category"],
)
ENCODE_SECONDS = Histogram(
    "pixelsmith_encode_seconds", "Time to encode one output image.", ["format"],
    buckets=TIME_BUCKETS,
)  # fmt: skip
PREVIEW_SECONDS = Histogram(
    "pixelsmith_preview_seconds", "Time to decode and encode one streamed preview.",
    buckets=TIME_BUCKETS,
)  # fmt: skip
UPLOAD_SECONDS = Histogram(
    "pixelsmith_upload_seconds", "Time to store one image for a URL answer.", ["store"],
    buckets=TIME_BUCKETS,
)  # fmt: skip


class PerModelGauge(Collector):
    """A gauge per model, read at scrape time from a callable (the backend's)."""

    def __init__(self, name: str, documentation: str, read: Callable[[], dict[str, int]]) -> None:
        self._name, self._documentation, self._read = name, documentation, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=["model"])
        for model, value in sorted(self._read().items()):
            family.add_metric([model], value)
        yield family


def render(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The exposition text of this process's series (of all processes in multiprocess mode),
    followed by those of `extra` collectors (one app's, read now); and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        text = generate_latest(shared)
    else:
        text = generate_latest(REGISTRY)
    own = CollectorRegistry()
    for collector in extra:
        own.register(collector)
    return text + generate_latest(own), CONTENT_TYPE_LATEST


def size_label(width: int, height: int) -> str:
    return f"{width}x{height}"
