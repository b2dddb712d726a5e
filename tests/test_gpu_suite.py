"""benchmarks/gpu_suite.py in --smoke mode: the GPU run's code paths (in-process calls, the
API under concurrent official clients, the CPU side's costs) on CPU with the tiny model, so
that the one prepared GPU run does not fail on its first line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_suite_runs_its_code_paths_in_smoke_mode(tmp_path: Path):
    figures = tmp_path / "figures.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--smoke", "--json",
         str(figures)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started < 120
    measured = json.loads(figures.read_text())
    rows = {(row["steps"], row["batch"]) for row in measured["in_process"]}
    assert rows == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(row["images_per_s"] > 0 for row in measured["in_process"])
    assert [row["clients"] for row in measured["http"]] == [1, 2]
    assert all(row["errors"] == 0 and row["images_per_s"] > 0 for row in measured["http"])
    (cpu,) = measured["cpu_side"]
    assert cpu["png_ms"] > 0 and cpu["moderation_ms"] > 0 and cpu["c2pa_ms"] > 0
    assert measured["skipped"] == []
    assert "against the goal" in result.stdout
