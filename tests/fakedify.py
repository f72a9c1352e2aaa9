"""Run `manage.py fake_dify` as a subprocess for a test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FakeDify:
    """A running fake: `.url` ends in /v1; stats, reset and live configuration over its /_fake endpoints."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        self.final_stats: dict[str, Any] | None = None

    def restore(self, **options: Any) -> None:
        """No faults, no limits, the given options and fresh stats, so one test does not leak into the next."""
        self.configure(**{"latency_ms": 0, "fail_rate": 0, "faults": {}, "rpm": None, "max_active": None, **options})
        self.reset()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.root}/_fake/stats", timeout=5).json()

    def reset(self) -> None:
        httpx.post(f"{self.root}/_fake/reset", timeout=5).raise_for_status()

    def configure(self, **options: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.root}/_fake/config", json=options, timeout=5)
        response.raise_for_status()
        return response.json()

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(fake: FakeDify, deadline: float) -> None:
    while time.monotonic() < deadline:
        if fake.process.poll() is not None:
            raise RuntimeError(f"fake_dify exited with status {fake.process.returncode}")
        try:
            fake.stats()
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("fake_dify did not answer within its start-up time")


def _start(args: tuple[str, ...], fixed_port: int | None = None) -> FakeDify:
    """Start the fake on a free port (or `fixed_port`); try another free port if that one was taken meanwhile."""
    for attempt in range(3):
        port = fixed_port or free_port()
        command = [sys.executable, "manage.py", "fake_dify", "--port", str(port), *args]
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
        fake = FakeDify(process, port)
        try:
            _wait_until_answering(fake, time.monotonic() + 30)
            return fake
        except RuntimeError:
            fake.stop()
            if attempt == 2 or process.returncode == 0:
                raise
    raise AssertionError("unreachable")


@contextmanager
def running_fake_dify(*args: str, port: int | None = None) -> Iterator[FakeDify]:
    """Start `manage.py fake_dify --port <free port> *args`; terminate it (SIGTERM, then kill) on exit.

    `port`: this one instead (to bring a stopped fake back where its clients expect it)."""
    fake = _start(args, port)
    try:
        yield fake
    finally:
        fake.stop()
