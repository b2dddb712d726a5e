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
    needs_download: bool = False  # a hub model not in the cache yet

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
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    # One repo's folder, not a scan of the whole cache (which reads every cached file).
    index = try_to_load_from_cache(spec.source, "model_index.json", revision=spec.revision)
    if not isinstance(index, str):
        return WeightsState("not downloaded (`pixelsmith download` fetches it)", None, True)
    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=spec.source, repo_type="model")
    return WeightsState("cached", directory_size(folder / "blobs"))


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".gguf")


def download_size(files: dict[str, int], components: set[str], variant: str | None) -> int:
    """About what diffusers downloads of a repo whose files (path -> bytes) are `files`: the
    folders of the components model_index.json names, with one format of weights per folder
    (safetensors where there are any) and the variant's files where the folder has them; no
    root-level checkpoints. An estimate for `pixelsmith models`, not a promise."""
    by_folder: dict[str, list[tuple[str, int]]] = {}
    total = files.get("model_index.json", 0)
    for path, size in files.items():
        folder, _, name = path.partition("/")
        if name and folder in components:
            by_folder.setdefault(folder, []).append((name, size))
    for entries in by_folder.values():
        weights = [(name, size) for name, size in entries if name.endswith(WEIGHT_SUFFIXES)]
        total += sum(size for name, size in entries if not name.endswith(WEIGHT_SUFFIXES))
        if any(name.endswith(".safetensors") for name, _ in weights):
            weights = [(name, size) for name, size in weights if name.endswith(".safetensors")]
        tagged = [(name, size) for name, size in weights if variant and f".{variant}." in name]
        # Without the variant's files, diffusers takes the plain ones (no variant tag at all).
        plain = [(name, size) for name, size in weights if name.count(".") == 1]
        total += sum(size for _, size in (tagged or plain or weights))
    return total


def estimated_download(spec: ModelSpec, timeout: float = 5.0) -> int | None:
    """The bytes `pixelsmith download` would fetch, asked of the hub (briefly: None when it
    cannot be reached, or the repo is no diffusers pipeline)."""
    import json

    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(
            spec.source, revision=spec.revision, files_metadata=True, timeout=timeout
        )
        index = json.loads(
            Path(
                hf_hub_download(spec.source, "model_index.json", revision=spec.revision)
            ).read_text()
        )
    except Exception:  # unreachable, gated, not a pipeline: no estimate
        return None
    files = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}
    components = {name for name, value in index.items() if isinstance(value, list)}
    return download_size(files, components, spec.variant)


def download(spec: ModelSpec) -> Path | None:
    """Fetch the files diffusers loads for `spec` (its variant; root-level checkpoints and
    unused formats left out, as diffusers chooses them) into the hub cache, with the hub's
    progress bar; None for a model with nothing to download."""
    if spec.source == "tiny" or is_architecture(spec.source) or looks_like_path(spec.source):
        return None
    from diffusers import DiffusionPipeline

    from pixelsmith.engine.quiet import quiet_model_libraries

    quiet_model_libraries()
    location = DiffusionPipeline.download(spec.source, revision=spec.revision, variant=spec.variant)
    return Path(location)
