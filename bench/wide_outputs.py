"""What hostile answers and large comparisons cost the web process: pages over rows answered with thousands of
distinct output keys (issue 27, M3), and a compare export of two large batches (L8), with peak Python memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/wide_outputs.py \
        [--rows 50 --keys 2000] [--export-rows 100000]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from common import setup_django

CHUNK = 5000


def make_batch(name: str, rows: int, outputs: Callable[[int], Any]) -> Any:
    from django.utils import timezone

    from batches.choices import BatchStatus, ExecutionStatus
    from batches.models import BatchTask, Execution, Workflow

    workflow, _ = Workflow.objects.get_or_create(
        name="bench-wide", defaults={"base_url": "http://127.0.0.1:9/v1", "api_key": "app-bench"}
    )
    batch = BatchTask.objects.create(
        name=name, workflow=workflow, config=workflow.snapshot(), total=rows, columns=["q"],
        status=BatchStatus.FINISHED, started_at=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip
    for start in range(0, rows, CHUNK):
        Execution.objects.bulk_create(
            Execution(batch=batch, index=i, inputs={"q": f"问题 {i}"}, status=ExecutionStatus.SUCCEEDED,
                      outputs=outputs(i))
            for i in range(start, min(rows, start + CHUNK))
        )  # fmt: skip
    return batch


def measured(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds untraced, peak MiB of Python allocations in a second, traced run)."""
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--export-rows", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")  # Django's test client's host
    setup_django()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user = get_user_model().objects.create_user(f"bench-{time.time()}", is_staff=True)
    client = Client()
    client.force_login(user)

    def wide(i: int) -> dict[str, Any]:
        return {"answer": f"回答 {i}", **{f"key_{i}_{n}": f"value {n}" for n in range(args.keys)}}

    a, b = make_batch("wide A", args.rows, wide), make_batch("wide B", args.rows, wide)
    print(f"{args.rows} rows x {args.keys} distinct output keys each ({len(str(wide(0))) // 1024} KB a row)")
    for label, url in [
        ("results page", reverse("batches:batch_results", args=[a.pk])),
        ("results.json", reverse("batches:batch_results_json", args=[a.pk])),
        ("compare page", reverse("batches:batch_compare", args=[a.pk, b.pk])),
    ]:
        response, seconds, peak = measured(lambda url=url: client.get(url))
        print(f"  {label}: {seconds:.2f} s, {len(response.content) / 1024:.0f} KB, peak {peak:.0f} MiB")
    a.delete(), b.delete()

    def answer(i: int) -> dict[str, Any]:
        return {"answer": f"回答{i}：晴，{i % 35}°C。" * 3, "tone": "neutral"}

    big_a = make_batch("export A", args.export_rows, answer)
    big_b = make_batch("export B", args.export_rows, lambda i: answer(i + (i % 10 == 0)))
    url = reverse("batches:batch_compare_export", args=[big_a.pk, big_b.pk, "csv"])

    def export() -> int:
        return sum(len(chunk) for chunk in client.get(url).streaming_content)

    size, seconds, peak = measured(export)
    print(f"compare export, CSV, {args.export_rows:,} x {args.export_rows:,} rows: {seconds:.1f} s, "
          f"{size / 2**20:.0f} MiB streamed, peak {peak:.0f} MiB")  # fmt: skip
    big_a.delete(), big_b.delete()


if __name__ == "__main__":
    main()
