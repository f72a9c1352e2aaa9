"""Scale: a 100k-row batch through import, retry-all, cancel, export and the staff pages.

    DATABASE_URL=postgres://… python bench/scale.py [--rows 100000] [--quick]

Targets (issue "Throughput at scale"): import ≤ 10 s and ≤ 250 MB peak memory; retry-all of 50k failures ≤ 3 s;
cancel of 100k pending ≤ 3 s; export ≤ 10 s at constant memory; batch detail and failures pages ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, setup_django

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


def write_csv(rows: int) -> Path:
    path = Path(tempfile.mkdtemp()) / "rows.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("text,lang\n")
        for i in range(rows):
            out.write(f'"Summarise row {i}: the quick brown fox, jumps over the lazy dog.",en\n')
    return path


def timed_subprocess(*args: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of a manage.py command run in its own process."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"{args[0]} failed")
    return time.monotonic() - started, usage.ru_maxrss / 1024, out


def timed(action: object, *args: object) -> tuple[float, object]:
    started = time.monotonic()
    result = action(*args)  # type: ignore[operator]
    return time.monotonic() - started, result


def page_ms(client: object, url: str, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.monotonic()
        response = client.get(url)  # type: ignore[attr-defined]
        assert response.status_code == 200, (url, response.status_code)
        best = min(best, time.monotonic() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    from batches.models import BatchTask, Execution
    from batches.services import lifecycle, workflows

    workflows.save_workflow("scale", base_url="http://127.0.0.1:9/v1", api_key="app-scale")
    source = write_csv(rows)
    import_s, import_mb, out = timed_subprocess("import_batch", str(source), "--workflow", "scale", "--no-start")
    batch_id = int(out.strip().splitlines()[-1])
    half = Execution.objects.filter(batch_id=batch_id, index__lt=rows // 2)
    half.update(status="failed", error_type="timeout", error="slow")
    BatchTask.objects.filter(pk=batch_id).update(status="finished")
    retry_s, report = timed(lifecycle.retry_failed, batch_id)
    export_s, export_mb, _ = timed_subprocess("export_batch", str(batch_id), "--format", "csv", "--output", "/dev/null")
    jsonl_s, jsonl_mb, _ = timed_subprocess("export_batch", str(batch_id), "--format", "jsonl", "--output", "/dev/null")
    half.update(status="failed", error_type="timeout", error="slow")
    user = get_user_model().objects.create_superuser(f"bench{time.time_ns()}", password="x")
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    # Pages render without a collectstatic run here (DEBUG is off: the hashed-name storage would need one).
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}):
        detail_ms = page_ms(client, f"/batches/{batch_id}/")
        failures_ms = page_ms(client, f"/batches/{batch_id}/failures/")
        list_ms = page_ms(client, "/")
    BatchTask.objects.filter(pk=batch_id).update(status="running")
    Execution.objects.filter(batch_id=batch_id).update(status="pending")
    cancel_s, cancelled = timed(lifecycle.cancel_batch, batch_id)
    print_table(
        [
            ("rows", f"{rows:,}"),
            ("import (CSV, subprocess)", f"{import_s:.1f} s, peak {import_mb:.0f} MB"),
            (f"retry-all of {rows // 2:,} failures", f"{retry_s:.2f} s ({report.retried:,} retried)"),  # type: ignore[attr-defined]
            (f"cancel of {rows:,} pending", f"{cancel_s:.2f} s ({cancelled:,} cancelled)"),
            ("export CSV (subprocess)", f"{export_s:.1f} s, peak {export_mb:.0f} MB"),
            ("export JSONL (subprocess)", f"{jsonl_s:.1f} s, peak {jsonl_mb:.0f} MB"),
            ("batch detail page", f"{detail_ms:.0f} ms"),
            ("failures page", f"{failures_ms:.0f} ms"),
            ("batch list page", f"{list_ms:.0f} ms"),
        ]
    )


if __name__ == "__main__":
    main()
