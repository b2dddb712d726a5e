"""How many images of a size fit in a GPU's memory in one pipeline call: measured once, at
warm-up, and asked by the worker for every batch it forms. Weights are loaded by then; what a
call adds is activation memory (latents, attention, the VAE's decode), which grows with the
pixels of the images and their number. max_batch_size stays the upper bound; this lowers it
for large sizes on small GPUs, so that a batch is not first tried, run out of memory and then
retried one job at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# The share of the free memory a batch may plan to use: allocator fragmentation, the text
# encoders' activations and a neighbour's allocations take the rest.
HEADROOM = 0.8


@dataclass(frozen=True)
class ActivationMemory:
    """Peak memory one image's call adds, per output pixel (measured at one size; the
    denoiser's and the VAE's activations scale with the pixel count)."""

    bytes_per_pixel: float

    def images_that_fit(self, width: int, height: int, free_bytes: int) -> int:
        per_image = self.bytes_per_pixel * width * height
        return max(1, int(free_bytes * HEADROOM // max(per_image, 1.0)))


def free_bytes(device: torch.device) -> int:
    """What a call can still allocate: free device memory, and what PyTorch's caching
    allocator holds without using (the previous batch's, given back to its cache)."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def measure(
    device: torch.device, width: int, height: int, run: Callable[[], None]
) -> ActivationMemory:
    """The activation memory of `run`, a call that makes one width x height image."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return ActivationMemory(max(peak - before, 1) / (width * height))
