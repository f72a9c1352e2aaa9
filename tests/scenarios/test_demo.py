"""`make demo` (scripts/demo.py) stops everything however it is stopped, and a second run reuses its sample batch."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from fakedify.harness import free_port
from tests.processes import ROOT, wait_until
from tests.stack import process_tree, still_running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the Linux process table")
# The demo, the fake Dify, runserver, and the cluster's main process, sentinel, monitor, pusher and two workers.
DEMO_PROCESSES = 9


class RunningDemo:
    def __init__(self, tmp_path: Path, run: int = 1) -> None:
        self.out, self.err = tmp_path / f"demo-{run}.out", tmp_path / f"demo-{run}.err"
        # As from a terminal: no secret, no development flag (the demo sets what it needs itself).
        env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SECRET_KEY", "BATCHES_DEV_TOOLS")}
        env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}", BATCHES_WORKERS="2")
        command = [sys.executable, "scripts/demo.py", "--port", str(free_port()), "--dify-port", str(free_port())]
        command += ["--data-dir", str(tmp_path / "data")]
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            # Its own process group, like `make demo` in a terminal: the test signals the whole group.
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        self.tree: dict[int, str] = {}

    def wait_ready(self) -> None:
        wait_until(lambda: "Press Ctrl-C" in self.out.read_text() or self.process.poll() is not None, 120)
        assert self.process.poll() is None, self.err.read_text()
        self.tree = wait_until(self.full_tree, 60)

    def full_tree(self) -> dict[int, str] | None:
        tree = process_tree(self.process.pid)
        return tree if len(tree) >= DEMO_PROCESSES else None

    def signal_group(self, signum: int) -> int:
        os.killpg(self.process.pid, signum)
        return self.process.wait(timeout=120)

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def kill_leftovers(self) -> None:
        """After a failed test: SIGKILL whatever of this demo still runs, by pid (never by name)."""
        for pid in still_running({**process_tree(self.process.pid), **self.tree}):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[[int], RunningDemo]]:
    demos: list[RunningDemo] = []

    def start(run: int = 1) -> RunningDemo:
        demos.append(RunningDemo(tmp_path, run))
        demos[-1].wait_ready()
        return demos[-1]

    yield start
    for demo in demos:
        demo.kill_leftovers()


def sample_batches(tmp_path: Path) -> list[dict]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, "manage.py", "batch_status", "--json"], cwd=ROOT, env=env, capture_output=True, check=True
    )
    return json.loads(done.stdout)


def test_sighup_to_the_demo_group_as_when_its_terminal_closes_leaves_no_process(start_demo):
    demo = start_demo()

    demo.signal_group(signal.SIGHUP)

    assert still_running(demo.tree) == []
    assert "stopped." in demo.output()


def test_ctrl_c_stops_quietly_and_a_second_demo_reuses_the_sample_batch_until_sigterm(tmp_path, start_demo):
    first = start_demo()
    assert first.signal_group(signal.SIGINT) == 0
    assert still_running(first.tree) == []
    assert "stopped on its own" not in first.output() and "a process stopped" not in first.output()
    assert "Traceback" not in first.output()

    password = demo_shell(tmp_path, "print(U.objects.get(username='demo').password)")
    second = start_demo(2)
    second.signal_group(signal.SIGTERM)

    assert demo_shell(tmp_path, "print(U.objects.get(username='demo').password)") == password  # sessions stay

    assert still_running(second.tree) == []
    assert "was imported before" in second.out.read_text()
    assert [batch["name"] for batch in sample_batches(tmp_path)] == ["Sample batch"]
    secrets = json.loads((tmp_path / "data" / "secrets.json").read_text())
    assert set(secrets) == {"DJANGO_SECRET_KEY", "BATCHES_ENCRYPTION_KEY"}


def demo_shell(tmp_path: Path, code: str) -> str:
    """A command as README shows it against the demo: only what `set -a; . .demo/env; set +a` exports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BATCHES_"))}
    for line in (tmp_path / "data" / "env").read_text().splitlines():
        name, _, value = line.partition("=")
        env[name] = shlex.split(value)[0]
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    prelude = "from django.contrib.auth import get_user_model; U = get_user_model(); "
    command = [sys.executable, "manage.py", "shell", "-c", prelude + code]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]  # after the shell's own "N objects imported" line


def test_the_demo_env_file_lets_commands_read_the_stored_key(tmp_path, start_demo):
    demo = start_demo()
    demo.signal_group(signal.SIGTERM)

    key = demo_shell(tmp_path, "from batches.models import Workflow; print(Workflow.objects.get(name='demo').api_key)")

    assert key == "app-demo-key"
