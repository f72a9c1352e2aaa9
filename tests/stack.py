"""The production stack in tests: gunicorn run as deploy/ runs it, and the process table checked by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from fakedify.harness import free_port
from tests.processes import ROOT, child_env, kill_group

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "test-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "BATCHES_DEV_TOOLS": "0",  # the test process has it on; production processes run without the fake Dify app
}


def production_env(**extra: str) -> dict[str, str]:
    return child_env(**PRODUCTION, **extra)


@dataclass
class Web:
    process: subprocess.Popen[bytes]
    url: str


@contextmanager
def running_gunicorn(log: Path, workers: int = 2, **extra: str) -> Iterator[Web]:
    """`gunicorn -c deploy/gunicorn.conf.py batchsite.wsgi` on a free port; stopped with SIGTERM to its master."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "batchsite.wsgi"]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=production_env(**extra), stdout=out, stderr=out, start_new_session=True
        )
    web = Web(process, f"http://127.0.0.1:{port}")
    try:
        wait_for_http(web, log)
        yield web
    finally:
        stop_main_process(process, grace=30)


def wait_for_http(web: Web, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if web.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text(errors='replace')[-2000:]}")
        with suppress(httpx.HTTPError):
            httpx.get(f"{web.url}/healthz", timeout=5)
            return
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer")


def stop_main_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """What systemd does with KillMode=mixed: SIGTERM to the main process, SIGKILL to the rest after the timeout."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    kill_group(process)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields after "pid (comm) ": state, ppid, ...


def process_tree(pid: int) -> dict[int, str]:
    """`pid` and every process below it, each with its start time (so a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = {}, [pid]
    while todo:
        current = todo.pop()
        if fields := _stat(current):
            tree[current] = fields[19]
            todo.extend(children.get(current, []))
    return tree


def still_running(tree: dict[int, str]) -> list[int]:
    """The processes of `tree` that still exist (zombies count as gone: they run nothing)."""
    return [pid for pid, start in tree.items() if (fields := _stat(pid)) and fields[19] == start and fields[0] != "Z"]
