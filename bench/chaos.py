"""Chaos run: kill workers and clusters at random moments, cut the database and the upstream, then check the books.

    DATABASE_URL=postgres://… python bench/chaos.py [--rows 1000] [--kills 4] [--seed N] [--quick | --full]

During the run: K random SIGKILLs (of the whole cluster, which is then restarted, or of the worker running a
runner), random upstream faults, one upstream outage (every call answered 502 for half of it, then connections
refused: the cluster reaches the fake Dify through a proxy that drops them) and, on PostgreSQL, one database
outage (the cluster reaches the database through a proxy that drops every connection for 5 s). Rows keep the
default 2 automatic retries: the upstream circuit, not a raised retry budget, is what carries them through.
`--full` is the issue's size: 10,000 rows, 20 kills, a 2-minute upstream outage.
At the end it prints rows lost, rows recorded twice, duplicate upstream successes against the calls in flight at
the kills, and counts against the truth; it exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time

import httpx
from common import ROOT, fake_dify, fake_stats, manage_process, print_table, setup_django, stop_cluster
from throughput import make_batch

sys.path.insert(0, str(ROOT))


class Chaos:
    def __init__(
        self, args: argparse.Namespace, url: str, batch_id: int, cluster_env: dict[str, str], upstream: object
    ) -> None:
        self.args, self.url, self.batch_id, self.env, self.upstream = args, url, batch_id, cluster_env, upstream
        self.random = random.Random(args.seed)
        self.cluster = manage_process("qcluster", env=cluster_env, log=args.log)
        self.in_flight_at_kills = 0
        self.events: list[str] = []

    def running(self) -> int:
        from batches.models import Execution

        return Execution.objects.filter(batch_id=self.batch_id, status="running").count()

    def done(self) -> bool:
        from batches.models import BatchTask

        return BatchTask.objects.get(pk=self.batch_id).status == "finished"

    def kill(self) -> None:
        self.in_flight_at_kills += self.running()
        if self.random.random() < 0.5:
            os.killpg(self.cluster.pid, signal.SIGKILL)
            self.cluster.wait()
            self.events.append("SIGKILL cluster")
            time.sleep(self.random.uniform(0, 3))
            self.cluster = manage_process("qcluster", env=self.env, log=self.args.log)
        else:
            self.kill_a_runner()

    def kill_a_runner(self) -> None:
        from batches.models import RunnerSlot

        owners = RunnerSlot.objects.exclude(owner="").values_list("owner", flat=True)
        pids = [int(owner.split(":")[2]) for owner in owners]
        for pid in pids[:1]:
            try:
                os.kill(pid, signal.SIGKILL)
                self.events.append("SIGKILL worker")
            except ProcessLookupError:
                pass

    def upstream_outage(self, seconds: float) -> None:
        config = self.url.removesuffix("/v1") + "/_fake/config"
        httpx.post(config, json={"outage": "bad_gateway"})  # every endpoint: GET /parameters too
        self.events.append(f"upstream 502 for {seconds / 2:.0f} s, then refused for {seconds / 2:.0f} s")
        time.sleep(seconds / 2)
        httpx.post(config, json={"outage": None, "fail_rate": self.args.fault_rate})
        self.upstream.outage(seconds / 2)  # type: ignore[attr-defined]

    def run(self, proxy: object | None) -> None:
        moments = sorted(self.random.uniform(2, self.args.spread) for _ in range(self.args.kills))
        chores = [(t, self.kill) for t in moments] + [
            (self.args.spread / 2, lambda: self.upstream_outage(self.args.outage))
        ]
        if proxy is not None:
            chores.append((self.args.spread / 3, lambda: (proxy.outage(5), self.events.append("database outage"))))
        began = time.monotonic()
        for moment, chore in sorted(chores, key=lambda item: item[0]):
            time.sleep(max(0.0, began + moment - time.monotonic()))
            if self.done():
                break
            chore()
        deadline = time.monotonic() + self.args.timeout
        while not self.done() and time.monotonic() < deadline:
            time.sleep(1)
        stop_cluster(self.cluster)


def verdict(batch_id: int, rows: int, stats: dict[str, object], in_flight_at_kills: int) -> list[tuple[str, str, bool]]:
    from django.db.models import Count, Q

    from batches.models import BatchTask, Execution
    from batches.selectors.batches import batch_summaries

    executions = Execution.objects.filter(batch_id=batch_id)
    terminal = executions.filter(status__in=["succeeded", "failed", "cancelled"]).count()
    twice = executions.annotate(wins=Count("attempts", filter=Q(attempts__outcome="succeeded"))).filter(wins__gt=1)
    wrong = sum(1 for row in executions.filter(status="succeeded") if (row.outputs or {}).get("echo") != row.inputs)
    summary = batch_summaries([BatchTask.objects.get(pk=batch_id)])[0]
    truth = {status: executions.filter(status=status).count() for status in ("pending", "running", "succeeded")}
    duplicates = int(stats["duplicate_successes"])  # type: ignore[call-overload]
    return [
        ("rows lost (not terminal)", str(rows - terminal), rows == terminal),
        ("rows recorded twice", str(twice.count()), not twice.exists()),
        ("outputs not matching their inputs", str(wrong), wrong == 0),
        (
            "duplicate upstream successes / calls in flight at kills",
            f"{duplicates} / {in_flight_at_kills}",
            duplicates <= in_flight_at_kills,
        ),
        (
            "counts equal the truth",
            str(all(summary[k] == v for k, v in truth.items())),
            all(summary[k] == v for k, v in truth.items()),
        ),
        # Random faults alone fail a row when all of its 3 tries draw one: rows × rate³ expected (1.25 at 10,000 × 5 %).
        ("rows failed for good (random faults on all 3 tries)", str(summary["failed"]), True),
        ("tries during the upstream outage (no retry spent)", str(outage_tries(batch_id)), True),
    ]


def outage_tries(batch_id: int) -> int:
    from batches.models import Attempt

    return Attempt.objects.filter(execution__batch_id=batch_id, during_outage=True).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--spread", type=float, default=60, help="seconds over which the kills happen")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--outage", type=float, default=30, help="seconds the upstream is down (502, then refused)")
    parser.add_argument("--quick", action="store_true", help="800 rows, 2 kills over 15 s")
    parser.add_argument("--full", action="store_true", help="10,000 rows, 20 kills over 5 min, a 2-minute outage")
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.kills, args.spread = 800, 2, 15
    if args.full:
        args.rows, args.kills, args.spread, args.outage, args.timeout = 10_000, 20, 300, 120, 1800
    setup_django()
    from django.db import connection

    from tests.processes import DroppingProxy

    env = {"BATCHES_LEASE_SECONDS": "10", "BATCHES_RUNNER_SLICE": "10", "BATCHES_BACKOFF_CAP": "10"}
    proxy = None
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        proxy = DroppingProxy(int(db.get("PORT") or 5432))
        env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
    with fake_dify("--latency-ms", str(args.latency_ms), "--fail-rate", str(args.fault_rate)) as url:
        from batches.services import lifecycle

        upstream = DroppingProxy(int(url.split(":")[-1].split("/")[0]))
        batch_id = make_batch(f"http://127.0.0.1:{upstream.port}/v1", args.rows, args.concurrency, "streaming")
        chaos = Chaos(args, url, batch_id, env, upstream)
        lifecycle.start_batch(batch_id)
        chaos.run(proxy)
        stats = fake_stats(url)
    checks = verdict(batch_id, args.rows, stats, chaos.in_flight_at_kills)
    print("events:", ", ".join(chaos.events))
    print_table([(name, value + ("" if ok else "   <-- FAILED")) for name, value, ok in checks])
    sys.exit(0 if all(ok for _, _, ok in checks) else 1)


if __name__ == "__main__":
    main()
