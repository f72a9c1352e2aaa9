"""What a `/metrics` scrape costs as the tables grow (every value is read from the database at scrape time).

    DATABASE_URL=postgres://… python bench/metrics_scrape.py [--rows 100000]

Makes one batch of N rows (all succeeded) with one Attempt each, then times the scrape (the registry's text
output, as the view returns it) and a batch page's cost summary (selectors_cost.batch_costs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import ROOT, print_table, setup_django

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    rows = parser.parse_args().rows
    setup_django()
    from prometheus_client import generate_latest

    from batches.selectors.cost import batch_costs
    from batches.selectors.metrics import registry

    batch = make_rows(rows)
    scrape = timed(lambda: generate_latest(registry()))
    costs = timed(lambda: batch_costs(batch))
    print_table([("rows", str(rows)), ("scrape (median of 5)", scrape), ("batch cost summary (median of 5)", costs)])


def make_rows(rows: int):  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from batches.choices import BatchStatus
    from batches.models import Attempt, BatchTask, Execution, Workflow

    workflow, _ = Workflow.objects.get_or_create(
        name="bench-metrics", defaults={"base_url": "http://127.0.0.1:9/v1", "api_key": "app-bench"}
    )
    now = timezone.now()
    batch = BatchTask.objects.create(
        name="bench", workflow=workflow, status=BatchStatus.FINISHED, total=rows, started_at=now, finished_at=now
    )
    for start in range(0, rows, 5000):
        Execution.objects.bulk_create(
            Execution(batch=batch, index=i, status="succeeded", total_tokens=50, latency=0.2 + (i % 100) / 50)
            for i in range(start, min(rows, start + 5000))
        )
    ids = list(batch.executions.values_list("pk", "latency"))
    for start in range(0, rows, 5000):
        Attempt.objects.bulk_create(
            Attempt(execution_id=pk, number=1, outcome="succeeded", latency=latency, finished_at=now)
            for pk, latency in ids[start : start + 5000]
        )
    return batch


def timed(work) -> str:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return f"{1000 * statistics.median(times):.0f} ms"


if __name__ == "__main__":
    main()
