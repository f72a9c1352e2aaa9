"""Start and stop the fake as its own process (`manage.py fake_dify`), for the tests and the benchmarks.

The process gets BATCHES_DEV_TOOLS=1, so it has the development app whatever the caller's settings (a production
stack under test never needs it). Stopping is SIGTERM, then SIGKILL after 10 s; the stats line the fake prints on
its way out is kept. Needs no Django set-up in the caller."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 30


class FakeDifyProcess:
    """A running fake: `.url` ends in /v1; stats, reset and live configuration over its /_fake endpoints."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.pid = process.pid  # also its session id (it runs in a session of its own)
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        self.final_stats: dict[str, Any] | None = None

    def restore(self, **options: Any) -> None:
        """No faults, no limits, the given options and fresh stats, so one test does not leak into the next."""
        defaults = {"latency_ms": 0, "fail_rate": 0, "faults": {}, "rpm": None, "max_active": None, "outage": None}
        defaults |= {"newer_dify": False, "etl": "default", "upload_blacklist": [], "refusal_silence": 300}
        defaults["size_limits"] = True
        self.configure(**{**defaults, **options})
        self.reset()

    def stats(self) -> dict[str, Any]:
        return fake_stats(self.url)

    def reset(self) -> None:
        httpx.post(f"{self.root}/_fake/reset", timeout=5).raise_for_status()

    def configure(self, **options: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.root}/_fake/config", json=options, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def expire_uploads(self) -> None:
        """Forget every upload, as Dify's storage clean-up would: runs naming one are refused."""
        httpx.post(f"{self.root}/_fake/files/expire", timeout=5).raise_for_status()

    def fail_uploads(self, count: int = 1, status: int = 503) -> None:
        """The next `count` uploads answer `status`."""
        response = httpx.post(f"{self.root}/_fake/files/fail", json={"count": count, "status": status}, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        """SIGTERM, then kill; keeps the stats line the fake prints on its way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        lines = (out or "").strip().splitlines()
        if lines and lines[-1].startswith("{"):
            self.final_stats = json.loads(lines[-1])


def fake_stats(url: str) -> dict[str, Any]:
    """GET /_fake/stats of the fake whose base URL (ending in /v1) is `url`."""
    return dict(httpx.get(url.removesuffix("/v1") + "/_fake/stats", timeout=5).json())


def fake_calls(url: str) -> list[tuple[float, float]]:
    """GET /_fake/calls: each run call's (start, end), on the fake's monotonic clock."""
    answer = httpx.get(url.removesuffix("/v1") + "/_fake/calls", timeout=60).json()
    return [(start, end) for start, end in answer["calls"]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_fake_dify(*args: str, port: int | None = None, log: Path | None = None) -> Iterator[FakeDifyProcess]:
    """Start `manage.py fake_dify --port <free port> *args`; stop it (SIGTERM, then kill) on exit.

    `port`: this one instead (to bring a stopped fake back where its clients expect it). `log`: where its stderr
    goes (default: this process's stderr)."""
    fake = start_fake_dify(args, port, log)
    try:
        yield fake
    finally:
        fake.stop()


def start_fake_dify(args: tuple[str, ...], port: int | None = None, log: Path | None = None) -> FakeDifyProcess:
    """Start the fake on a free port (or `port`); try another free port if that one was taken meanwhile."""
    for attempt in range(3):
        fake = _spawn(args, port or free_port(), log)
        try:
            _wait_until_answering(fake, time.monotonic() + START_SECONDS)
            return fake
        except RuntimeError:
            fake.stop()
            if attempt == 2 or fake.process.returncode == 0:
                raise
    raise AssertionError("unreachable")


def _spawn(args: tuple[str, ...], port: int, log: Path | None) -> FakeDifyProcess:
    command = [sys.executable, "manage.py", "fake_dify", "--port", str(port), *args]
    env = {**os.environ, "BATCHES_DEV_TOOLS": "1"}
    with open(log, "ab") if log else nullcontext() as stderr:  # None: this process's stderr
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
        )
    return FakeDifyProcess(process, port)


def _wait_until_answering(fake: FakeDifyProcess, deadline: float) -> None:
    while time.monotonic() < deadline:
        if fake.process.poll() is not None:
            raise RuntimeError(f"fake_dify exited with status {fake.process.returncode}")
        try:
            fake.stats()
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("fake_dify did not answer within its start-up time")
