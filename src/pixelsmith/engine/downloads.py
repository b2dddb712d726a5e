"""Where a model's weights are before it loads, and fetching them ahead of time: what
`pixelsmith models` shows and what `pixelsmith download` does. Hub models go to the Hugging Face
cache (HF_HOME), as diffusers' own loads do, so a download here is what the server then finds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pixelsmith.engine.arch_catalog import is_architecture
from pixelsmith.engine.registry import ModelSpec
from pixelsmith.settings import looks_like_path


@dataclass(frozen=True)
class WeightsState:
    where: str  # "built in", "random weights", "local directory", "cached", "not downloaded"
    size_bytes: int | None = None  # on disk, when known

    def describe(self) -> str:
        if self.size_bytes is None:
            return self.where
        return f"{self.where}, {human_size(self.size_bytes)}"


def human_size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def directory_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def weights_state(spec: ModelSpec) -> WeightsState:
    """Whether the model's weights are here already, without asking the network."""
    if spec.source == "tiny":
        return WeightsState("built in (random weights, made on first use)")
    if is_architecture(spec.source):
        return WeightsState("random weights in the real architecture, nothing to download")
    if looks_like_path(spec.source):
        location = Path(spec.source).expanduser()
        if not location.is_dir():
            return WeightsState("local directory, missing")
        return WeightsState("local directory", directory_size(location))
    from huggingface_hub import scan_cache_dir

    try:
        cached = {repo.repo_id: repo for repo in scan_cache_dir().repos}
    except Exception:  # no cache directory yet
        cached = {}
    repo = cached.get(spec.source)
    if repo is None:
        return WeightsState("not downloaded (`pixelsmith download` fetches it)")
    return WeightsState("cached", repo.size_on_disk)


def download(spec: ModelSpec) -> Path | None:
    """Fetch the files diffusers loads for `spec` (its variant; root-level checkpoints and
    unused formats left out, as diffusers chooses them) into the hub cache, with the hub's
    progress bar; None for a model with nothing to download."""
    if spec.source == "tiny" or is_architecture(spec.source) or looks_like_path(spec.source):
        return None
    from diffusers import DiffusionPipeline

    location = DiffusionPipeline.download(spec.source, revision=spec.revision, variant=spec.variant)
    return Path(location)
