"""Starting project processes (qcluster) against the test database, and waiting on the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
FAST_ENGINE = {
    "BATCHES_LEASE_SECONDS": "6",
    "BATCHES_RUNNER_SLICE": "4",
    "BATCHES_POLL_INTERVAL": "0.2",
    "BATCHES_BACKOFF_BASE": "0.2",
    "BATCHES_BACKOFF_CAP": "2",
    "BATCHES_WORKERS": "2",
    "BATCHES_Q_POLL": "0.1",
}


def test_database_url() -> str:
    """The URL of the database the test runner is using, for child processes."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **FAST_ENGINE, "DATABASE_URL": test_database_url(), **extra}


@contextmanager
def running_cluster(log: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real `manage.py qcluster` in its own session; stopped with SIGTERM to its main process."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=child_env(**extra),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_cluster(process)


def stop_cluster(process: subprocess.Popen[bytes], grace: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=10)


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class DroppingProxy:
    """A TCP proxy in a thread that can cut every connection and refuse new ones for a while (a database outage)."""

    def __init__(self, target_port: int) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.writers: set[Any] = set()
        self.server: Any = None
        self.port = 0
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._call(self._listen(0))

    def _call(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _listen(self, port: int) -> None:
        import asyncio

        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    async def _drop(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def outage(self, seconds: float) -> None:
        """Cut all connections, refuse new ones for `seconds`, then accept again on the same port."""
        self.cut()
        time.sleep(seconds)
        self.reopen()

    def cut(self) -> None:
        """Cut all connections and refuse new ones until reopen()."""
        self._call(self._drop())

    def reopen(self) -> None:
        self._call(self._listen(self.port))

    def close(self) -> None:
        self._call(self._drop())
        self.loop.call_soon_threadsafe(self.loop.stop)
