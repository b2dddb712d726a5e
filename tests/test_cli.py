"""The command line: generate in-process, list models, fail fast when a model cannot load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import same_pixels
from PIL import Image


def run_cli(*args: str, cache_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PIXELSMITH_CACHE_DIR": str(cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "pixelsmith", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_generate_writes_files_and_prints_seeds(cache_dir: Path, tmp_path: Path):
    output = tmp_path / "fox.webp"
    result = run_cli(
        "generate",
        "a red fox",
        "-o",
        str(output),
        "-n",
        "2",
        "--seed",
        "7",
        "--size",
        "128x128",
        "--model",
        "tiny",
        cache_dir=cache_dir,
    )
    assert result.returncode == 0, result.stderr
    # On stderr: which model loads from where (no bar for a local load), then the steps.
    assert "loading model tiny from" in result.stderr
    assert "Loading pipeline components" not in result.stderr
    assert "denoising: 100%" in result.stderr
    for index, seed in ((1, 7), (2, 8)):
        path = tmp_path / f"fox-{index}.webp"
        assert f"seed {seed}" in result.stdout and str(path) in result.stdout
        with Image.open(path) as image:
            assert image.format == "WEBP" and image.size == (128, 128)


def test_generate_json_output_and_same_seed_same_file(cache_dir: Path, tmp_path: Path):
    outputs = []
    for name in ("a.png", "b.png"):
        result = run_cli(
            "generate",
            "a cat",
            "-o",
            str(tmp_path / name),
            "--seed",
            "3",
            "--json",
            "--model",
            "tiny",
            cache_dir=cache_dir,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["images"][0]["seed"] == 3
        outputs.append((tmp_path / name).read_bytes())
    assert same_pixels(outputs[0], outputs[1])


def test_generate_reports_bad_parameters(cache_dir: Path, tmp_path: Path):
    result = run_cli(
        "generate",
        "a cat",
        "-o",
        str(tmp_path / "x.png"),
        "--size",
        "999x999",
        "--model",
        "tiny",
        cache_dir=cache_dir,
    )
    assert result.returncode == 1
    assert "999x999" in result.stderr and "multiples of 8" in result.stderr


def test_models_lists_presets(cache_dir: Path):
    result = run_cli("models", "--model", "tiny", "--json", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert model["id"] == "tiny" and "gpt-image-1" in model["aliases"]
    text = run_cli("models", cache_dir=cache_dir).stdout
    assert "stabilityai/sd-turbo" in text and "Community License" in text


def test_serve_fails_fast_when_the_default_model_cannot_be_downloaded(tmp_path: Path):
    # conftest sends hub traffic to a closed port on this machine: like having no network.
    started = time.monotonic()
    result = run_cli("serve", "--port", "0", cache_dir=tmp_path, timeout=120)
    assert time.monotonic() - started < 90
    assert result.returncode == 1
    assert "stabilityai/sd-turbo" in result.stderr
    assert "--model tiny" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_are_reported(tmp_path: Path):
    result = run_cli("models", "--device", "tpu", cache_dir=tmp_path)
    assert result.returncode == 2
    assert "device" in result.stderr


@pytest.mark.parametrize("command", ["serve", "generate", "models"])
def test_help_lists_settings_flags(command: str, tmp_path: Path):
    result = run_cli(command, "--help", cache_dir=tmp_path)
    assert result.returncode == 0
    assert "--model" in result.stdout and "--cache-dir" in result.stdout
    # One request in-process has no port, no keys and no queue: their flags are serve's.
    server_flags = ("--port", "--api-keys", "--max-connections", "--ray-address")
    shown = [flag for flag in server_flags if flag in result.stdout]
    assert shown == (list(server_flags) if command == "serve" else []), shown


def test_presets_are_listed_and_a_config_file_maps_public_names_to_them(
    cache_dir: Path, tmp_path: Path
):
    listed = run_cli("models", "--presets", "--json", cache_dir=cache_dir)
    assert listed.returncode == 0, listed.stderr
    presets = {row["name"]: row for row in json.loads(listed.stdout)["presets"]}
    assert {"sd-turbo", "sdxl", "sd3.5-medium", "flux-schnell", "flux-dev", "pixart-sigma"} <= set(
        presets
    )
    flux = presets["flux-schnell"]
    assert flux["source"] == "black-forest-labs/FLUX.1-schnell"
    assert flux["steps"] == {"low": 1, "medium": 2, "high": 4} and flux["dtype"] == "bfloat16"
    assert flux["scheduler"] and flux["memory"] and flux["license"] == "Apache-2.0"
    text = run_cli("models", "--presets", cache_dir=cache_dir).stdout
    assert "flux-schnell" in text and "scheduler" in text

    config = tmp_path / "pixelsmith.toml"
    config.write_text(
        '[[models]]\nsource = "flux-schnell"\naliases = ["dall-e-3"]\n\n'
        f'[[models]]\nsource = "{tmp_path / "my-sdxl"}"\npreset = "sdxl"\nid = "house-style"\n'
    )
    (tmp_path / "my-sdxl").mkdir()
    result = run_cli("models", "--json", "--config", str(config), cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    first, second = json.loads(result.stdout)["models"]
    assert first["id"] == "flux-schnell" and first["preset"] == "flux-schnell"
    assert first["source"] == "black-forest-labs/FLUX.1-schnell"
    assert "dall-e-3" in first["aliases"]
    assert second["id"] == "house-style" and second["preset"] == "sdxl"
    assert second["default_size"] == "1024x1024"

    config.write_text('[[models]]\nsource = "tiny"\npreset = "no-such-preset"\n')
    bad = run_cli("models", "--config", str(config), cache_dir=cache_dir)
    assert bad.returncode == 2 and "no-such-preset" in bad.stderr


def test_edit_writes_the_edited_image_and_keeps_the_unmasked_pixels(
    cache_dir: Path, tmp_path: Path
):
    from PIL import Image

    source = tmp_path / "photo.png"
    Image.new("RGB", (128, 128), (200, 40, 40)).save(source)
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 64, 128))  # repaint the left half
    mask.save(tmp_path / "mask.png")
    output = tmp_path / "out.png"
    result = run_cli(
        "edit", str(source), "a blue door", "--mask", str(tmp_path / "mask.png"),
        "-o", str(output), "--seed", "3", "--json", "--model", "tiny", cache_dir=cache_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (written,) = json.loads(result.stdout)["images"]
    assert written == {"path": str(output), "seed": 3, "size": "128x128", "revised_prompt": None}
    edited = Image.open(output).convert("RGB")
    assert edited.size == (128, 128) and edited.getpixel((120, 60)) == (200, 40, 40)
    missing = run_cli("edit", str(tmp_path / "nope.png"), "x", "--model", "tiny",
                      cache_dir=cache_dir)  # fmt: skip
    assert missing.returncode == 1 and "nope.png" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_unknown_model_name_lists_the_known_ones(tmp_path: Path):
    result = run_cli("generate", "a cat", "--model", "flux-schnel", cache_dir=tmp_path)
    assert result.returncode == 2  # a usage error, found before anything loads
    assert "Did you mean 'flux-schnell'?" in result.stderr
    assert "tiny" in result.stderr and "sd-turbo-arch" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_prints_the_playground_and_api_docs_urls(cache_dir: Path):
    import re

    env = os.environ | {"PIXELSMITH_CACHE_DIR": str(cache_dir)}
    # Port 0: the system picks one, and the banner names the one it picked.
    command = [sys.executable, "-m", "pixelsmith", "serve", "--model", "tiny", "--port", "0",
               "--moderation-prompt-classifier", "off"]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as server:
        try:
            assert server.stdout is not None
            lines = [server.stdout.readline() for _ in range(5)]
            found = re.search(r"http://127\.0\.0\.1:(\d+)/playground", "".join(lines))
            assert found, lines
            port = int(found.group(1))
            assert port != 0
            # The banner comes once the server answers, not before.
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=30)
    text = "".join(lines)
    assert "is ready" in lines[0] and health.status_code == 200
    assert f"http://127.0.0.1:{port}/playground" in text
    assert f"http://127.0.0.1:{port}/docs" in text and f"http://127.0.0.1:{port}/v1" in text
    assert f"http://127.0.0.1:{port}/mcp" in text
    # A quiet start: what it loads, and none of the model libraries' bars and warnings.
    assert "loading tiny" in errors and "loading model tiny from" in errors
    for noise in ("torchvision", "Loading pipeline components", "Loading weights", "float32: []"):
        assert noise not in errors, errors


def test_a_busy_port_and_bad_arguments_fail_before_anything_loads(cache_dir: Path, tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        busy = run_cli("serve", "--model", "tiny", "--port", str(port), cache_dir=cache_dir)
        busy_seconds = time.monotonic() - started
    assert busy.returncode == 1 and "cannot listen on" in busy.stderr and "--port" in busy.stderr
    started = time.monotonic()
    bad_size = run_cli("generate", "x", "--model", "tiny", "--size", "100x100",
                       "-o", str(tmp_path / "x.png"), cache_dir=cache_dir)  # fmt: skip
    size_seconds = time.monotonic() - started
    assert bad_size.returncode == 1 and "(parameter size)" in bad_size.stderr
    typo = run_cli("generate", "x", "--model", "flux-shnell", cache_dir=cache_dir)
    assert typo.returncode == 2 and "Did you mean 'flux-schnell'?" in typo.stderr
    for result in (busy, bad_size, typo):
        assert "loading model" not in result.stderr, result.stderr  # nothing was loaded
    # Seconds, not the tens of seconds a model load takes; bounds loose for a busy CI machine.
    assert busy_seconds < 10 and size_seconds < 10, (busy_seconds, size_seconds)


def test_serve_with_replicas_or_a_ray_address_runs_on_ray_serve(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    import pixelsmith.ray
    from pixelsmith import cli

    started = []
    monkeypatch.setattr(pixelsmith.ray, "run", lambda settings: started.append(settings) or 0)
    flags = ["--model", "tiny", "--cache-dir", str(cache_dir)]
    assert cli.main(["serve", "--replicas", "2", *flags]) == 0
    assert cli.main(["serve", "--ray-address", "auto", *flags]) == 0
    assert [(s.replicas, s.ray_address) for s in started] == [(2, None), (1, "auto")]


def test_models_say_where_the_weights_are_and_download_fetches_them(
    cache_dir: Path, tmp_path: Path
):
    listed = run_cli("models", "--json", "--model", "tiny", cache_dir=cache_dir)
    assert json.loads(listed.stdout)["models"][0]["weights"].startswith("built in")
    local = tmp_path / "local-model"
    local.mkdir()
    (local / "model_index.json").write_text("{}")
    listed = run_cli("models", "--model", str(local), cache_dir=cache_dir)
    assert "weights: local directory, 0 MB" in listed.stdout
    nothing = run_cli("download", "tiny", cache_dir=cache_dir)
    assert nothing.returncode == 0 and "tiny: built in" in nothing.stdout
    typo = run_cli("download", "sd-trubo", cache_dir=cache_dir)
    assert typo.returncode == 2 and "Did you mean 'sd-turbo'?" in typo.stderr
    # conftest sends hub traffic to a closed port: the download fails with the reason, no trace.
    offline = run_cli("download", "sd-turbo", cache_dir=tmp_path)
    assert offline.returncode == 1 and "could not download stabilityai/sd-turbo" in offline.stderr
    assert "Traceback" not in offline.stderr


def test_the_download_estimate_counts_what_diffusers_would_fetch():
    from pixelsmith.engine.downloads import download_size

    files = {
        "model_index.json": 1,
        "v2-1_512-ema.safetensors": 5_000,  # a root checkpoint: diffusers leaves it
        "unet/config.json": 10,
        "unet/diffusion_pytorch_model.safetensors": 1_000,
        "unet/diffusion_pytorch_model.fp16.safetensors": 500,
        "unet/diffusion_pytorch_model.bin": 1_000,  # safetensors are there: not fetched
        "vae/config.json": 10,
        "vae/diffusion_pytorch_model.safetensors": 100,  # no fp16 file: the plain one
        "safety_checker/model.safetensors": 2_000,  # not a component of model_index
    }
    components = {"unet", "vae"}
    assert download_size(files, components, "fp16") == 1 + 10 + 500 + 10 + 100
    assert download_size(files, components, None) == 1 + 10 + 1_000 + 10 + 100


def test_models_say_a_hub_model_is_cached_and_how_big(tmp_path: Path, monkeypatch):
    # The hub cache's own layout: refs/main names the snapshot, whose files link to blobs.
    repo = tmp_path / "hub" / "models--stabilityai--sd-turbo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "model_index.json").write_text("{}")
    (repo / "blobs").mkdir()
    (repo / "blobs" / "weights").write_bytes(b"\0" * 3_000_000)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    listed = run_cli("models", "--model", "sd-turbo", cache_dir=tmp_path)
    assert "weights: cached, 3 MB" in listed.stdout, listed.stdout + listed.stderr


def test_models_say_how_a_hub_model_stands_without_a_network(tmp_path: Path):
    # conftest sends hub traffic to a closed port: no size, said so, and quickly.
    started = time.monotonic()
    listed = run_cli("models", "--model", "sd-turbo", cache_dir=tmp_path)
    assert "weights: not downloaded; the hub could not be asked how big it is" in listed.stdout
    assert time.monotonic() - started < 30


def test_a_download_shows_one_bar_and_a_local_load_none():
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging
    from huggingface_hub.utils import are_progress_bars_disabled

    from pixelsmith.engine.quiet import quiet_model_libraries

    quiet_model_libraries()
    assert not diffusers_logging.is_progress_bar_enabled()
    assert not transformers_logging.is_progress_bar_enabled()
    assert are_progress_bars_disabled("huggingface_hub.snapshot_download")  # bytes written
    assert not are_progress_bars_disabled("huggingface_hub.snapshot_download.transfer")
