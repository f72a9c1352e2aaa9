"""A year of history (issue 30): the pages and commands that span batches, at growing numbers of executions.

    DATABASE_URL=postgres://… python bench/history.py [--sizes 100000,1000000,10000000] [--big 1000000]

One 100,000-row batch (Chinese text, 5 % failed with an Attempt each, a Dify run id on every row) is imported,
then copied in SQL until the database holds each size in turn; at each size every page is timed through Django's
test client as a superuser (median of three after one warm-up), and `batch_status --json` / `batches_doctor
--json` as separate processes (minus a bare `manage.py version`, Python's and Django's start). `--big N` then
imports one N-row batch and times its import, exports, retry-all of N/2 failures and cancel, each a separate
`manage.py` process (peak memory from the kernel), and its pages. EVERY TABLE OF THE batches APP IS EMPTIED
FIRST: use a database of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, print_table, setup_django

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"
SEED_ROWS = 100_000
TABLES = ("batches_attempt", "batches_batchfile", "batches_execution", "batches_batchcount", "batches_batchtask")
EXECUTION_COLUMNS = (
    "index, inputs, status, outputs, error_type, error, http_status, attempt_count, auto_retries, interruptions, "
    "manual_retries, next_trigger, not_before, task_id, total_tokens, elapsed, lease_owner, lease_token, "
    "lease_expires_at, started_at, finished_at, extra, currency, latency, price"
)
ATTEMPT_COLUMNS = (
    "number, trigger, started_at, finished_at, outcome, upstream_status, error_type, error, http_status, "
    "workflow_run_id, latency, total_tokens, during_outage, inputs"
)


def write_csv(rows: int, text: str = "请用三句话概括这段文字，并列出其中提到的城市和日期。北京、上海、广州。") -> Path:
    path = Path(tempfile.mkdtemp()) / "rows.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("text\n")
        for i in range(rows):
            out.write(f"row {i}：{text}\n")
    return path


def manage(*args: str, check: bool = True) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one manage.py process."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    if status and check:
        raise RuntimeError(f"{args[0]} failed")
    return time.monotonic() - started, usage.ru_maxrss / 1024, out


def median_ms(action: Any, repeat: int = 3) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        action()
        times.append(time.monotonic() - started)
    return statistics.median(times) * 1000


def sql(statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def empty_tables() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        sql(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    else:
        for table in TABLES:
            sql(f"DELETE FROM {table}")  # noqa: S608 - fixed names


def seed(workflow: str) -> int:
    """The 100k-row batch every other is copied from: finished, 5 % failed with an Attempt, run ids, tokens."""
    _, _, out = manage("import_batch", str(write_csv(SEED_ROWS)), "--workflow", workflow, "--no-start")
    batch_id = int(out.strip().splitlines()[-1])
    sql(
        "UPDATE batches_execution SET status = CASE WHEN index %% 20 = 7 THEN 'failed' ELSE 'succeeded' END, "
        "error_type = CASE WHEN index %% 20 = 7 THEN 'timeout' ELSE '' END, total_tokens = 120, attempt_count = 1, "
        "outputs = '{\"answer\": \"三句话的概括。\"}', workflow_run_id = 'run-' || batch_id || '-' || index, "
        "started_at = now(), finished_at = now() WHERE batch_id = %s",
        [batch_id],
    )
    sql(
        "INSERT INTO batches_attempt (execution_id, number, trigger, started_at, finished_at, outcome, "
        "upstream_status, error_type, error, workflow_run_id, total_tokens, during_outage) "
        "SELECT id, 1, 'auto', now(), now(), 'failed', '', 'timeout', 'read timeout', workflow_run_id, 0, false "
        "FROM batches_execution WHERE batch_id = %s AND status = 'failed'",
        [batch_id],
    )
    sql(
        "UPDATE batches_batchtask SET status = 'finished', started_at = now(), finished_at = now() WHERE id = %s",
        [batch_id],
    )
    return batch_id


def copy_batch(source: int) -> int:
    """One more batch like `source`, its rows and attempts copied in SQL (the triggers count them)."""
    (new_id,) = sql(
        "INSERT INTO batches_batchtask (name, workflow_id, source_filename, status, status_reason, concurrency, "
        "max_retries, config, columns, extra_columns, total, failure_threshold_min_rows, run_time, reopened_from, "
        "reopened_rows, first_rows_checked, created_at, started_at, finished_at) "
        "SELECT name, workflow_id, source_filename, status, status_reason, concurrency, max_retries, config, "
        "columns, extra_columns, total, failure_threshold_min_rows, run_time, reopened_from, reopened_rows, "
        "first_rows_checked, now(), started_at, "
        "finished_at FROM batches_batchtask "
        "WHERE id = %s RETURNING id",
        [source],
    )[0]
    sql(
        f"INSERT INTO batches_execution (batch_id, workflow_run_id, {EXECUTION_COLUMNS}) "  # noqa: S608
        f"SELECT %s, 'run-' || %s || '-' || index, {EXECUTION_COLUMNS} FROM batches_execution WHERE batch_id = %s",
        [new_id, new_id, source],
    )
    sql(
        f"INSERT INTO batches_attempt (execution_id, {ATTEMPT_COLUMNS}) "  # noqa: S608
        f"SELECT n.id, {', '.join('a.' + c.strip() for c in ATTEMPT_COLUMNS.split(','))} FROM batches_attempt a "
        "JOIN batches_execution o ON o.id = a.execution_id JOIN batches_execution n "
        "ON n.batch_id = %s AND n.index = o.index WHERE o.batch_id = %s",
        [new_id, source],
    )
    return new_id


def grow(source: int, rows: int) -> int:
    from batches.models import BatchTask

    while BatchTask.objects.count() * SEED_ROWS < rows:
        copy_batch(source)
    sql("ANALYZE") if _postgres() else None
    return BatchTask.objects.order_by("-pk").values_list("pk", flat=True)[0]


def _postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def page_figures(client: Any, seed_id: int, last_id: int) -> list[tuple[str, float]]:
    def get(url: str) -> Any:
        def fetch() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return fetch

    admin = "/admin/batches/execution/"
    pages = [
        ("batch list /", "/"),
        ("admin batches", "/admin/batches/batchtask/"),
        ("admin executions", admin),
        ("admin executions, filter failed", f"{admin}?status__exact=failed"),
        ("admin search: a run id", f"{admin}?q=run-{seed_id}-99999"),
        ('admin search: "row 99999" within a batch', f"{admin}?batch__id__exact={last_id}&q=row+99999"),
        ("admin attempts", "/admin/batches/attempt/"),
        ("batch page", f"/batches/{last_id}/"),
        ("results page", f"/batches/{last_id}/results/"),
        ('results page, search "row 99999"', f"/batches/{last_id}/results/?q=row+99999"),
        ("failures page", f"/batches/{last_id}/failures/"),
    ]
    return [(name, median_ms(get(url))) for name, url in pages]


def command_figures() -> list[tuple[str, float]]:
    """The commands' own time: in this process (Python and Django already started), and as a process of its own
    next to a bare `manage.py version` (Python's and Django's start; the doctor also reads the migration files)."""
    from django.core.management import call_command

    def run(*args: str) -> None:
        with contextlib.suppress(SystemExit):  # the doctor exits 1 when no cluster runs
            call_command(*args, stdout=io.StringIO())

    start = statistics.median(manage("version")[0] for _ in range(3))
    process = {name: statistics.median(manage(name, "--json", check=False)[0] for _ in range(3))
               for name in ("batch_status", "batches_doctor")}  # fmt: skip
    return [
        ("batch_status --json (all), in process", median_ms(lambda: run("batch_status", "--json"))),
        ("batch_status --json (all), whole process", process["batch_status"] * 1000),
        ("batches_doctor --json, in process", median_ms(lambda: run("batches_doctor", "--json"))),
        ("batches_doctor --json, whole process", process["batches_doctor"] * 1000),
        ("(manage.py version, whole process)", start * 1000),
    ]


def big_batch(workflow: str, rows: int, client: Any) -> list[tuple[str, str]]:
    from batches.models import BatchTask, Execution

    source = write_csv(rows, "请概括这段文字。")  # 1 M rows within BATCHES_MAX_UPLOAD_BYTES (100 MB)
    import_s, import_mb, out = manage("import_batch", str(source), "--workflow", workflow, "--no-start")
    batch_id = int(out.strip().splitlines()[-1])
    csv_s, csv_mb, _ = manage("export_batch", str(batch_id), "--format", "csv", "--output", "/dev/null")
    jsonl_s, jsonl_mb, _ = manage("export_batch", str(batch_id), "--format", "jsonl", "--output", "/dev/null")
    cancel_s, cancel_mb, _ = manage("cancel_batch", str(batch_id))
    Execution.objects.filter(batch_id=batch_id, index__lt=rows // 2).update(status="failed", error_type="timeout")
    BatchTask.objects.filter(pk=batch_id).update(status="finished")
    retry_s, retry_mb, _ = manage("retry_failed", str(batch_id))
    figures = [
        (f"import of {rows:,} rows (CSV)", f"{import_s:.1f} s, peak {import_mb:.0f} MB"),
        ("export CSV", f"{csv_s:.1f} s, peak {csv_mb:.0f} MB"),
        ("export JSONL", f"{jsonl_s:.1f} s, peak {jsonl_mb:.0f} MB"),
        (f"cancel of {rows:,} pending", f"{cancel_s:.1f} s"),
        (f"retry-all of {rows // 2:,} failures", f"{retry_s:.1f} s"),
    ]
    for name, path in [("page", ""), ("results page", "results/"), ("failures page", "failures/")]:
        url = f"/batches/{batch_id}/{path}"
        figures.append((f"its {name}", f"{median_ms(lambda url=url: client.get(url)):.0f} ms"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--big", type=int, default=0, help="rows of the one large batch (0: skip)")
    parser.add_argument("--keep", action="store_true", help="grow the history already there (from its first batch)")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    from batches.models import BatchTask
    from batches.services import workflows

    if not args.keep:
        empty_tables()
    workflow, _ = workflows.save_workflow("history", base_url="http://127.0.0.1:9/v1", api_key="app-history")
    user = get_user_model().objects.create_superuser(f"bench{time.time_ns()}", password="x")
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    first = BatchTask.objects.order_by("pk").first()
    seed_id = first.pk if args.keep and first else seed(workflow.name)
    table: dict[str, list[str]] = {}
    sizes = [int(size) for size in args.sizes.split(",")]
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}):
        for size in sizes:
            started = time.monotonic()
            last_id = grow(seed_id, size)
            print(f"{size:,} rows built in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            for name, ms in page_figures(client, seed_id, last_id) + command_figures():
                table.setdefault(name, []).append(f"{ms:,.0f} ms")
            print_table([(name, " / ".join(values)) for name, values in table.items()])
        print_table(
            [("page or command", " / ".join(f"{size:,}" for size in sizes))]
            + [(n, " / ".join(v)) for n, v in table.items()]
        )
        if args.big:
            print_table(big_batch(workflow.name, args.big, client))


if __name__ == "__main__":
    main()
