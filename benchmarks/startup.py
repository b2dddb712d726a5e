"""How long a new user waits: `pixelsmith --help`, `pixelsmith models`, the answer to a bad
argument and to a busy port, importing the app, and `serve --model tiny` until it answers.

    .venv/bin/python benchmarks/startup.py [--runs 3]

Each figure is the median of `--runs` fresh processes (the first run of each also fills the OS
file cache, which the median leaves out). Results are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

PIXELSMITH = [sys.executable, "-m", "pixelsmith"]


def seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, env=env, check=False)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def time_to_ready(env: dict[str, str]) -> float:
    """From starting `serve --model tiny` to the first 200 from /health."""
    port = free_port()
    command = [*PIXELSMITH, "serve", "--model", "tiny", "--port", str(port)]
    started = time.perf_counter()
    with subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as server:
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        return time.perf_counter() - started
                except OSError:
                    if server.poll() is not None:
                        raise RuntimeError("the server exited") from None
                    time.sleep(0.05)
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="pixelsmith-startup-")
    env = os.environ | {"PIXELSMITH_CACHE_DIR": cache}
    subprocess.run([*PIXELSMITH, "download", "tiny"], env=env, capture_output=True, check=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        cases = {
            "pixelsmith --help": lambda: seconds([*PIXELSMITH, "--help"], env),
            "pixelsmith models": lambda: seconds([*PIXELSMITH, "models", "--model", "tiny"], env),
            "generate --size 100x100 (refused)": lambda: seconds(
                [*PIXELSMITH, "generate", "x", "--model", "tiny", "--size", "100x100"], env
            ),
            "serve on a busy port (refused)": lambda: seconds(
                [*PIXELSMITH, "serve", "--model", "tiny", "--port", busy], env
            ),
            "import pixelsmith.app": lambda: seconds(
                [sys.executable, "-c", "import pixelsmith.app"], env
            ),
            "serve --model tiny until /health answers": lambda: time_to_ready(env),
        }
        print(f"{'what':45} {'median s':>9} {'runs':>5}")
        for name, run in cases.items():
            times = [run() for _ in range(args.runs)]
            print(f"{name:45} {statistics.median(times):9.2f} {len(times):5d}")


if __name__ == "__main__":
    main()
