"""Shared set-up for the benchmark scripts: a database, the fake Dify and processes of this project."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fakedify.harness import fake_calls, fake_stats, running_fake_dify  # noqa: E402, F401 - for the scripts


def setup_django() -> None:
    """Use DATABASE_URL if given (PostgreSQL for real figures), else a throwaway SQLite file."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='batches-bench-')}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
    # manage.py children refuse the public development secret with DEBUG off; one throwaway secret per run.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def manage_process(*args: str, env: dict[str, str] | None = None, log: str = "/dev/null") -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=out,
        start_new_session=True,
    )


class FakeUrl(str):
    """The fake's base URL, and the pid of its process (also its session id)."""

    pid: int


@contextmanager
def fake_dify(*args: str) -> Iterator[FakeUrl]:
    """The fake Dify in its own process (fakedify/harness.py), its log discarded."""
    with running_fake_dify(*args, log=Path(os.devnull)) as fake:
        url = FakeUrl(fake.url)
        url.pid = fake.pid
        yield url


def stop_cluster(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def session_cpu(session_id: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of one session (a cluster and its workers)."""
    return _cpu(lambda fields, comm: int(fields[3]) == session_id)  # field 6 of stat, after pid and comm


def command_cpu(name: str) -> float:
    """CPU seconds used so far by the live processes called `name` (e.g. the PostgreSQL server's)."""
    return _cpu(lambda fields, comm: comm == name)


def _cpu(selected: Callable[[list[str], str], bool]) -> float:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = tail.split()
        if selected(fields, head.partition("(")[2]):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")
