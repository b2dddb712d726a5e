"""Settings: env prefix, config file, CLI flags and their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pixelsmith.cli import build_parser, settings_from_args
from pixelsmith.settings import Settings, load_settings


def test_defaults():
    settings = Settings()
    assert settings.model == "stabilityai/sd-turbo"
    assert settings.host == "127.0.0.1"
    assert settings.url_ttl_seconds == 3600
    assert settings.storage_dir == settings.cache_dir / "images"
    assert [config.model_id for config in settings.model_configs()] == ["stabilityai/sd-turbo"]


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path, monkeypatch):
    config = tmp_path / "pixelsmith.toml"
    config.write_text('port = 7000\nmodel = "tiny"\nlog_level = "warning"\nmax_queue_size = 5\n')
    monkeypatch.setenv("PIXELSMITH_PORT", "7100")
    monkeypatch.setenv("PIXELSMITH_LOG_LEVEL", "error")
    args = build_parser().parse_args(["serve", "--config", str(config), "--port", "7200"])
    settings = settings_from_args(args)
    assert settings.port == 7200  # CLI
    assert settings.log_level == "error"  # env beats file
    assert settings.model == "tiny"  # file beats default
    assert settings.max_queue_size == 5
    assert settings.host == "127.0.0.1"  # default


def test_config_file_from_env_and_models_tables(tmp_path: Path, monkeypatch):
    config = tmp_path / "models.toml"
    config.write_text(
        """
[[models]]
source = "tiny"
id = "noise"
default_size = "64x64"
steps = { low = 1, medium = 1, high = 2 }

[[models]]
source = "stabilityai/sd-turbo"
aliases = ["dall-e-3"]
"""
    )
    monkeypatch.setenv("PIXELSMITH_CONFIG_FILE", str(config))
    settings = load_settings()
    ids = [config.model_id for config in settings.model_configs()]
    assert ids == ["noise", "stabilityai/sd-turbo"]
    assert settings.models[0].steps.high == 2


def test_api_keys_are_comma_separated_and_secret(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIXELSMITH_API_KEYS", "sk-a, sk-b,,")
    keys_file = tmp_path / "keys"
    keys_file.write_text("sk-c  # ops\n\n# comment\n")
    settings = load_settings(api_keys_file=keys_file)
    assert settings.accepted_api_keys() == ["sk-a", "sk-b", "sk-c"]
    assert "sk-a" not in repr(settings)


def test_bool_and_flags_derived_from_settings():
    args = build_parser().parse_args(
        ["serve", "--offline", "--device", "cpu", "--dtype", "float32"]
    )
    settings = settings_from_args(args)
    assert settings.offline is True and settings.device == "cpu"


@pytest.mark.parametrize(
    "overrides",
    [
        {"device": "tpu"},
        {"dtype": "int4"},
        {"port": 70000},
        {"models": [{"source": "tiny", "sizes": ["100x100"]}]},
        {"models": [{"source": "tiny"}, {"source": "tiny"}]},
        {"models": [{"source": "tiny", "colour": "red"}]},
        {"unknown_setting": 1},
    ],
)
def test_invalid_settings_are_rejected(overrides):
    with pytest.raises(ValidationError):
        Settings(**overrides)


def test_missing_config_file_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_every_setting_is_documented():
    """datasette-style: docs/configuration.md names every setting and its env var."""
    text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"PIXELSMITH_{name.upper()}" in text, name
        if name != "models":
            assert f"--{name.replace('_', '-')}" in text, name


def test_a_memory_budget_needs_lazy_loading(tmp_path):
    import pytest
    from pydantic import ValidationError

    from pixelsmith.settings import Settings

    with pytest.raises(ValidationError, match="lazy_load"):
        Settings(cache_dir=tmp_path, memory_budget_gb=8)
    assert Settings(cache_dir=tmp_path, memory_budget_gb=8, lazy_load=True).memory_budget_gb == 8
