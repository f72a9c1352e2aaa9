"""A batch whose rows all fail alike, through a real qcluster: how many calls before it pauses.

    python bench/fail_fast.py [--rows 2000] [--concurrency 10] [--first 50]

Every row carries `_fault: invalid_param` (the fake Dify answers 400 invalid_param: `invalid_input`, not retried).
With BATCHES_FAIL_FAST_ROWS = --first (0 turns it off), prints the calls Dify got, the rows that ended, the time to
the pause (or the finish) and the batch's reason.
"""

from __future__ import annotations

import argparse
import time

from common import fake_dify, fake_stats, manage_process, print_table, setup_django, stop_cluster
from throughput import make_batch


def run(rows: int, concurrency: int, first: int, log: str) -> list[tuple[str, str]]:
    from batches.choices import BatchStatus
    from batches.models import BatchTask, Execution
    from batches.services import lifecycle

    with fake_dify("--latency-ms", "50") as url:
        batch_id = make_batch(url, rows, concurrency, "streaming")
        Execution.objects.filter(batch_id=batch_id).update(inputs={"text": "x", "_fault": "invalid_param"})
        cluster = manage_process("qcluster", env={"BATCHES_FAIL_FAST_ROWS": str(first)}, log=log)
        time.sleep(3)
        started = time.monotonic()
        lifecycle.start_batch(batch_id)
        while BatchTask.objects.get(pk=batch_id).status == BatchStatus.RUNNING:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        time.sleep(1)  # the calls in flight at the pause end
        stop_cluster(cluster)
        stats = fake_stats(url)
    batch = BatchTask.objects.get(pk=batch_id)
    ended = Execution.objects.filter(batch_id=batch_id).ended().count()
    return [
        ("rows, concurrency, BATCHES_FAIL_FAST_ROWS", f"{rows}, {concurrency}, {first}"),
        ("calls Dify got", str(stats["calls"])),
        ("rows ended", str(ended)),
        (f"seconds until {batch.status}", f"{elapsed:.1f}"),
        ("reason", batch.status_reason or "-"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    setup_django()
    print_table(run(args.rows, args.concurrency, args.first, args.log))


if __name__ == "__main__":
    main()
