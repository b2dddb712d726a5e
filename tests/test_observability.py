"""/metrics, /health and /ready, and the access log, on a real server with the tiny model."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import openai
import pytest
from conftest import RunningServer, make_settings

from pixelsmith.app import create_app
from pixelsmith.logs import JSONFormatter, TextFormatter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def observed(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(
        cache_dir,
        tmp_path_factory.mktemp("observed-images"),
        moderation_prompt_classifier="off",
        moderation_image_classifier="none",
    )
    with RunningServer(create_app(settings)) as running:
        yield running


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_what_the_server_does(observed):
    base = observed.base_url
    before = httpx.get(f"{base}/metrics").text
    with openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0) as client:
        client.images.generate(model="tiny", prompt="a lighthouse", size="64x64", n=2)
        client.images.generate(
            model="tiny", prompt="a lighthouse", size="64x64", response_format="url"
        )
        stream = client.images.generate(
            model="tiny", prompt="a lighthouse", size="64x64", stream=True, partial_images=1
        )
        assert [event.type for event in stream][-1] == "image_generation.completed"
        with pytest.raises(openai.BadRequestError):
            client.images.generate(model="tiny", prompt="gory decapitation", size="64x64")
        with pytest.raises(openai.NotFoundError):
            client.images.generate(model="no-such-model", prompt="x")

    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(name: str, by: float = 1, **labels: str) -> None:
        delta = sample(after, name, **labels) - sample(before, name, **labels)
        assert delta >= by, (name, labels, delta)

    route = "/v1/images/generations"
    grew("pixelsmith_requests_total", 3, route=route, model="tiny", status="200")
    grew("pixelsmith_requests_total", 1, route=route, model="tiny", status="400")
    grew("pixelsmith_requests_total", 1, route=route, model="none", status="404")
    grew("pixelsmith_images_generated_total", 4, model="tiny")
    grew("pixelsmith_batch_images_count", 3, model="tiny")
    grew("pixelsmith_queue_wait_seconds_count", 3, model="tiny")
    grew("pixelsmith_step_seconds_count", 3, model="tiny", size="64x64")
    grew("pixelsmith_image_seconds_count", 3, model="tiny", size="64x64")
    grew("pixelsmith_moderation_blocks_total", 1, stage="input", category="violence/graphic")
    grew("pixelsmith_encode_seconds_count", 4, format="png")
    grew("pixelsmith_preview_seconds_count", 1)
    grew("pixelsmith_upload_seconds_count", 1, store="local")
    assert sample(after, "pixelsmith_queue_depth", model="tiny") == 0
    assert 'pixelsmith_queue_depth{model="tiny"}' in after
    assert sample(after, "pixelsmith_replicas", model="tiny") == 1


def test_health_and_readiness(observed, monkeypatch):
    base = observed.base_url
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    ready = httpx.get(f"{base}/ready")
    assert ready.status_code == 200
    assert ready.json()["queue_depth"] == {"tiny": 0}
    engine = observed.server.config.app.state.engine
    # A saturated queue: the load balancer should send the next request elsewhere.
    monkeypatch.setattr(engine, "queue_depths", lambda: {"tiny": engine.max_queue_size})
    saturated = httpx.get(f"{base}/ready")
    assert saturated.status_code == 503
    assert saturated.json()["problems"] == ["queue full: tiny"]


def test_one_access_line_per_request_without_secrets(observed, caplog):
    base = observed.base_url
    with caplog.at_level(logging.INFO, logger="pixelsmith.access"):
        created = httpx.post(
            f"{base}/v1/images/generations",
            json={"prompt": "a secret lighthouse", "size": "64x64", "response_format": "url"},
            headers={"authorization": "Bearer sk-very-secret"},
            timeout=120,
        )
        url = created.json()["data"][0]["url"]
        assert httpx.get(url).status_code == 200
        httpx.get(f"{base}/v1/models%0Aforged%20line")
    lines = [record for record in caplog.records if record.name == "pixelsmith.access"]
    generation = next(r for r in lines if getattr(r, "route", "") == "/v1/images/generations")
    assert generation.request_id == created.headers["x-request-id"]  # type: ignore[attr-defined]
    assert (generation.model, generation.status, generation.images) == ("tiny", 200, 1)  # type: ignore[attr-defined]
    text = "\n".join(TextFormatter().format(record) for record in lines)
    assert "secret" not in text and "signature" not in text
    # A newline from the client is shown escaped: it never starts a log line of its own.
    forged = next(r for r in lines if "forged" in r.getMessage())
    assert "\n" not in TextFormatter().format(forged)
    assert "\\nforged" in TextFormatter().format(forged)
    assert "\n" not in JSONFormatter().format(forged)


def test_the_grafana_dashboard_uses_series_the_server_exports(observed):
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"pixelsmith_\w+", expr)}
    exported = httpx.get(f"{observed.base_url}/metrics").text
    declared = set(re.findall(r"^# TYPE (pixelsmith_\w+) (\w+)", exported, re.M))
    names = set()
    for name, kind in declared:
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names |= {name + suffix for suffix in suffixes}
        if kind == "counter":
            names.add(name + "_total")
    assert used and used <= names, used - names
