"""Upstream limits: a workflow rpm limit and a Dify app's concurrent-request cap, through a real qcluster.

    python bench/limits.py [--rows N] [--quick]

Scenario 1: fake Dify with --rpm 600, workflow rpm 600, batch concurrency 100: rows/s (target ≥ 95 % of 10/s)
and the share of 429 answers (target ≤ 5 %). Scenario 2: fake Dify with --max-active 20, batch concurrency 100:
the share of 429 answers (target ≤ 5 %), handled by the adaptive (AIMD) limit.
"""

from __future__ import annotations

import argparse
import time

from common import fake_dify, fake_stats, manage_process, print_table, setup_django, stop_cluster
from throughput import make_batch, wait_finished


def scenario(name: str, rows: int, fake_args: list[str], rpm: int | None, log: str) -> list[tuple[str, str]]:
    from batches.models import Workflow
    from batches.services import lifecycle

    with fake_dify("--latency-ms", "500", *fake_args) as url:
        batch_id = make_batch(url, rows, 100, "streaming")
        Workflow.objects.filter(batches__pk=batch_id).update(rpm_limit=rpm)
        cluster = manage_process("qcluster", env={"BATCHES_WORKERS": "2"}, log=log)
        time.sleep(3)
        lifecycle.start_batch(batch_id)
        elapsed, steady = wait_finished(batch_id, rows)
        stop_cluster(cluster)
        stats = fake_stats(url)
    calls = int(stats["calls"])  # type: ignore[call-overload]
    limited = int(stats["status_counts"].get("429", 0))  # type: ignore[attr-defined]
    return [
        (f"{name}: rows, wall time", f"{rows}, {elapsed:.1f} s"),
        (f"{name}: rows/s (whole run / 10%-90%)", f"{rows / elapsed:.2f} / {steady:.2f}"),
        (f"{name}: calls, 429 answers", f"{calls}, {limited} ({100 * limited / max(1, calls):.1f} %)"),
        (f"{name}: most calls in flight", str(stats["max_in_flight"])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--quick", action="store_true", help="400 rows each")
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    setup_django()
    rows = 400 if args.quick else args.rows
    figures = scenario("rpm 600", rows, ["--rpm", "600"], 600, args.log)
    figures += scenario("max-active 20", rows * 2, ["--max-active", "20"], None, args.log)
    print_table(figures)


if __name__ == "__main__":
    main()
