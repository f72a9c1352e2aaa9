"""Restart latency: how soon a cluster SIGKILLed whole and started again is back at work.

    DATABASE_URL=postgres://… python bench/restart.py [--kills 3] [--lease 30]

Blocking: a batch at concurrency 20 with 3 s calls; the whole cluster is SIGKILLed while its calls are in
flight and started again, `--kills` times in a row. For each restart it prints the seconds from the restart to
the first new claim (a claim starts its call at once) and to the moment every interrupted row was taken over.
Streaming: 10 rows of 6 s runs, killed 1.5 s into them and restarted: seconds from the restart until every
interrupted run was taken over (its first step is asking Dify how the run ended), until all were recorded, and
the calls the fake saw (10: nothing paid twice). Leases are `--lease` seconds, so a figure well under it means
the dead processes' rows were not waited out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import datetime

from common import fake_dify, fake_stats, manage_process, print_table, setup_django
from throughput import make_batch


def db_now() -> datetime:
    from batches.db import clock

    clock.forget()
    return clock.now()


def wait(condition: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def kill(cluster: object) -> None:
    os.killpg(cluster.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    cluster.wait()  # type: ignore[attr-defined]


def after_restart(batch_id: int, restarted: datetime) -> tuple[float, float]:
    """Seconds from the restart to the first new claim and to the last interrupted row taken over."""
    from batches.models import Attempt, Execution

    rows = Execution.objects.filter(batch_id=batch_id, started_at__gte=restarted)
    first = min(rows.values_list("started_at", flat=True))
    taken = Attempt.objects.filter(execution__batch_id=batch_id, outcome="interrupted", finished_at__gte=restarted)
    last = max(taken.values_list("finished_at", flat=True))
    return (first - restarted).total_seconds(), (last - restarted).total_seconds()


def blocking(args: argparse.Namespace, env: dict[str, str]) -> list[tuple[str, str]]:
    from batches.models import Execution
    from batches.services import lifecycle

    figures = []
    with fake_dify("--latency-ms", "3000") as url:
        batch_id = make_batch(url, rows=2000, concurrency=20, response_mode="blocking")
        lifecycle.start_batch(batch_id)
        cluster = manage_process("qcluster", env=env, log=args.log)
        try:
            for kill_number in range(1, args.kills + 1):
                wait(lambda: Execution.objects.filter(batch_id=batch_id, status="running").count() == 20)
                time.sleep(1)
                kill(cluster)
                restarted = db_now()
                cluster = manage_process("qcluster", env=env, log=args.log)
                again = Execution.objects.filter(batch_id=batch_id, started_at__gte=restarted)
                wait(lambda: again.count() >= 20)  # noqa: B023 - waited for at once
                first, taken = after_restart(batch_id, restarted)
                figure = f"first claim {first:.1f} s, all taken {taken:.1f} s"
                figures.append((f"blocking, restart {kill_number}", figure))
        finally:
            kill(cluster)
    return figures


def streaming(args: argparse.Namespace, env: dict[str, str]) -> list[tuple[str, str]]:
    from batches.models import BatchTask, Execution
    from batches.services import lifecycle

    with fake_dify("--latency-ms", "6000") as url:
        batch_id = make_batch(url, rows=10, concurrency=10, response_mode="streaming")
        lifecycle.start_batch(batch_id)
        cluster = manage_process("qcluster", env=env, log=args.log)
        try:
            wait(lambda: Execution.objects.filter(batch_id=batch_id).exclude(workflow_run_id="").count() == 10)
            time.sleep(1.5)
            kill(cluster)
            restarted = db_now()
            cluster = manage_process("qcluster", env=env, log=args.log)
            wait(lambda: BatchTask.objects.get(pk=batch_id).status == "finished")
        finally:
            kill(cluster)
        _, taken = after_restart(batch_id, restarted)
        done = max(Execution.objects.filter(batch_id=batch_id).values_list("finished_at", flat=True))
        calls = fake_stats(url)["calls"]
    recorded = (done - restarted).total_seconds()
    return [("streaming, 10 runs of 6 s", f"all looked up {taken:.1f} s, all recorded {recorded:.1f} s, calls {calls}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--lease", type=float, default=30)
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    setup_django()
    env = {"BATCHES_LEASE_SECONDS": str(args.lease), "BATCHES_WORKERS": "2"}
    print_table(blocking(args, env) + streaming(args, env))


if __name__ == "__main__":
    sys.exit(main())
