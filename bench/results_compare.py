"""Server time of the results and compare pages at scale (100,000 rows a batch by default).

Makes batch A (rows with Chinese and English inputs and outputs, 5 % failed), runs it again as batch B with the
rerun service (timed), gives B A's results with every tenth row changed, then times each page through Django's
test client (middleware, query, template: all of the server's work), median of --repeat runs. The batches are
deleted at the end unless --keep.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/results_compare.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from common import setup_django

CHUNK = 5000


def make_source(rows: int) -> int:
    from django.utils import timezone

    from batches.choices import BatchStatus, ErrorType, ExecutionStatus
    from batches.models import BatchTask, Execution, Workflow

    workflow, _ = Workflow.objects.get_or_create(
        name="bench-results", defaults={"base_url": "http://127.0.0.1:9/v1", "api_key": "app-bench"}
    )
    batch = BatchTask.objects.create(
        name="bench A",
        workflow=workflow,
        config=workflow.snapshot(),
        total=rows,
        columns=["city", "question"],
        status=BatchStatus.FINISHED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    cities = ["北京", "上海", "广州", "深圳", "Paris", "London", "成都", "杭州"]
    for start in range(0, rows, CHUNK):  # bulk_create: slow, but the same on both databases
        Execution.objects.bulk_create(
            Execution(
                batch=batch,
                index=i,
                inputs={"city": f"{cities[i % len(cities)]}{i}", "question": f"第{i}个问题：weather number {i}?"},
                status=ExecutionStatus.FAILED if i % 20 == 7 else ExecutionStatus.SUCCEEDED,
                outputs=None if i % 20 == 7 else {"answer": f"回答{i}：晴，{i % 35}°C。" * 3, "tone": "neutral"},
                error_type=ErrorType.TIMEOUT if i % 20 == 7 else "",
                error="read timeout after 300 s" if i % 20 == 7 else "",
            )
            for i in range(start, min(rows, start + CHUNK))
        )
    return batch.pk


def make_rerun(source_id: int) -> tuple[int, float]:
    from django.db import connection
    from django.utils import timezone

    from batches.choices import BatchStatus
    from batches.models import BatchTask, Execution
    from batches.services.rerun import RerunOptions, rerun_batch

    began = time.perf_counter()
    batch = rerun_batch(source_id, options=RerunOptions(start=False, name="bench B"))
    took = time.perf_counter() - began
    table = Execution._meta.db_table
    with connection.cursor() as cursor:  # B's results: A's, every tenth row answered differently
        cursor.execute(
            f"UPDATE {table} SET status = a.status, outputs = a.outputs, error_type = a.error_type, error = a.error "  # noqa: S608
            f"FROM {table} a WHERE a.batch_id = %s AND {table}.batch_id = %s AND a.index = {table}.index",
            [source_id, batch.pk],
        )
        cursor.execute(
            f"UPDATE {table} SET outputs = %s WHERE batch_id = %s AND index %% 10 = 3",  # noqa: S608
            ['{"answer": "改了", "tone": "formal"}', batch.pk],
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    BatchTask.objects.filter(pk=batch.pk).update(status=BatchStatus.FINISHED, finished_at=timezone.now())
    return batch.pk, took


def timed(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def pages(a: int, b: int, rows: int) -> dict[str, str]:
    last = max(1, rows // 50)
    return {
        "results, page 1": f"/batches/{a}/results/",
        f"results, page {last // 2}": f"/batches/{a}/results/?page={last // 2}",
        f"results, last page ({last})": f"/batches/{a}/results/?page={last}",
        "results, status=failed": f"/batches/{a}/results/?status=failed",
        "results, status=succeeded, page 500": f"/batches/{a}/results/?status=succeeded&page=500",
        "results.json, page 1": f"/batches/{a}/results.json",
        "search ?q=北京1234 (one row)": f"/batches/{a}/results/?q=%E5%8C%97%E4%BA%AC1234",
        "search ?q=北京 (an eighth of the rows)": f"/batches/{a}/results/?q=%E5%8C%97%E4%BA%AC",
        "search ?q=weather number 99999 (none or one)": f"/batches/{a}/results/?q=weather+number+99999",
        "search ?q=nothing-matches": f"/batches/{a}/results/?q=nothing-matches",
        "compare, page 1": f"/batches/{a}/compare/{b}/",
        f"compare, page {last}": f"/batches/{a}/compare/{b}/?page={last}",
        "compare, only differences": f"/batches/{a}/compare/{b}/?only=differences",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the two batches")
    parser.add_argument("--no-export", action="store_true", help="skip the comparison's CSV export")
    parser.add_argument("--batches", type=int, nargs=2, metavar=("A", "B"), help="time two kept batches again")
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from batches.models import BatchTask

    if args.batches:
        a, b = args.batches
        args.rows, args.keep = BatchTask.objects.get(pk=a).total, True
    else:
        began = time.perf_counter()
        a = make_source(args.rows)
        print(f"{connection.vendor}: batch A of {args.rows} rows made in {time.perf_counter() - began:.1f} s")
        b, took = make_rerun(a)
        print(f"rerun_batch of {args.rows} rows (one INSERT … SELECT): {took:.2f} s")
    user, _ = User.objects.get_or_create(username="bench-results", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    try:
        from django.core.cache import cache

        cache.clear()  # the first compare page reads the fingerprints; the next ones find them kept
        print(f"{'page':48} {'first':>8}    {'then (median)':>13}")
        for label, url in pages(a, b, args.rows).items():
            began = time.perf_counter()
            status = client.get(url).status_code
            first = time.perf_counter() - began
            then = timed(lambda url=url: client.get(url), args.repeat)
            print(f"{label:48} {1000 * first:8.0f} ms {1000 * then:8.0f} ms  (HTTP {status})")
        if not args.no_export:
            export = f"/batches/{a}/compare/{b}/export/csv/"
            took = timed(lambda: b"".join(client.get(export).streaming_content), 1)
            print(f"{'compare export, CSV, every pair':48} {1000 * took:8.0f} ms")
    finally:
        if not args.keep:
            BatchTask.objects.filter(pk__in=[a, b]).delete()


if __name__ == "__main__":
    main()
