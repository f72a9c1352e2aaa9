"""Throughput of one batch through a real qcluster against the fake Dify.

    python bench/throughput.py [--rows N] [--concurrency C] [--latency-ms L] [--workers W] [--blocking]
                               [--transport aiohttp|httpx]
    python bench/throughput.py --quick            # a short run (make bench)
    python bench/throughput.py --cpu              # worker CPU per 1,000 rows at 0 ms latency, next to the floor

Figures: rows/s, efficiency = rows/s ÷ (concurrency ÷ latency), worker CPU seconds per 1,000 rows.
"Steady" counts the rows finished between the moments 10 % and 90 % of them were done. "Whole run" is from the fake
Dify's own log of run calls: from the first call's start to the last call's end, the mean number of calls in
flight, and efficiency = that mean ÷ concurrency (--calls-json PATH saves the log for a closer look). What it
misses is split three ways (fakedify/call_log.py `losses`): places empty before the first wave was all in flight,
between each call's end and its successor's start, and in the last wave's tail.
Use DATABASE_URL=postgres://… for the figures that count; without it a throwaway SQLite file is used.
"""

from __future__ import annotations

import argparse
import bisect
import json
import tempfile
import time
from pathlib import Path

from common import fake_calls, fake_dify, manage_process, print_table, session_cpu, setup_django, stop_cluster


def make_batch(url: str, rows: int, concurrency: int, response_mode: str) -> int:
    from batches.services import imports, workflows

    workflow, _ = workflows.save_workflow(
        f"bench-{time.time_ns()}", base_url=url, api_key="app-bench", response_mode=response_mode
    )
    source = Path(tempfile.mkdtemp()) / "rows.csv"
    source.write_text("text\n" + "".join(f"row {i}\n" for i in range(rows)), encoding="utf-8")
    options = imports.ImportOptions(concurrency=concurrency, max_retries=2, start=False)
    return imports.import_batch(workflow, source, options=options).pk


def wait_finished(batch_id: int, rows: int) -> tuple[float, float]:
    """Seconds to finish, and the steady rate: rows finished from the moment 10 % were done until the moment 90 %
    were (half-open, so a wave at either end is not counted twice), from the rows' own finishing times."""
    from batches.choices import BatchStatus
    from batches.models import BatchTask, Execution

    start = time.monotonic()
    while BatchTask.objects.get(pk=batch_id).status != BatchStatus.FINISHED:
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    finished = Execution.objects.filter(batch_id=batch_id).order_by("finished_at")
    times = list(finished.values_list("finished_at", flat=True))
    start_at, end_at = times[int(0.1 * rows)], times[int(0.9 * rows)]
    span = (end_at - start_at).total_seconds()
    done = bisect.bisect_left(times, end_at) - bisect.bisect_left(times, start_at)
    return elapsed, done / span if span > 0 else rows / elapsed


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    from django.conf import settings

    from batches.services import lifecycle
    from fakedify.call_log import losses, occupancy

    mode = "blocking" if args.blocking else "streaming"
    # Starting the batch here enqueues one wake-up per runner slot, as a web process sharing the cluster's
    # environment does; with this process's own default (2) only two runners worked until a slice ended.
    settings.BATCHES_RUNNERS = args.runners or args.workers
    with fake_dify("--latency-ms", str(args.latency_ms)) as url:
        batch_id = make_batch(url, args.rows, args.concurrency, mode)
        env = {"BATCHES_WORKERS": str(args.workers), "BATCHES_RUNNERS": str(settings.BATCHES_RUNNERS)}
        env["BATCHES_HTTP_TRANSPORT"] = args.transport
        cluster = manage_process("qcluster", env=env, log=args.log)
        time.sleep(3)  # let the cluster start: its start-up is not what is measured
        cpu_before = session_cpu(cluster.pid)
        lifecycle.start_batch(batch_id)
        elapsed, steady = wait_finished(batch_id, args.rows)
        cpu = session_cpu(cluster.pid) - cpu_before
        stop_cluster(cluster)
        calls = fake_calls(url)
    if args.calls_json:
        Path(args.calls_json).write_text(json.dumps(calls), encoding="utf-8")
    whole, lost = occupancy(calls), losses(calls, args.concurrency)
    ideal = args.concurrency / (args.latency_ms / 1000) if args.latency_ms else float("nan")
    return [
        ("rows / concurrency / latency", f"{args.rows} / {args.concurrency} / {args.latency_ms} ms ({mode})"),
        (
            "worker processes / runners / transport",
            f"{args.workers} / {args.runners or args.workers} / {args.transport}",
        ),
        ("wall time", f"{elapsed:.1f} s"),
        ("rows/s (wall time)", f"{args.rows / elapsed:.1f}"),
        ("rows/s (10%-90%)", f"{steady:.1f}"),
        ("efficiency (10%-90%)", f"{steady / ideal:.3f}"),
        ("calls / span (whole run, fake's log)", f"{whole.calls} / {whole.span:.2f} s"),
        ("mean calls in flight (whole run)", f"{whole.mean_in_flight:.1f} of {args.concurrency}"),
        ("efficiency (whole run)", f"{whole.efficiency(args.concurrency):.3f}"),
        ("lost: first wave / refills / last wave", f"{lost.ramp:.3f} / {lost.refills:.3f} / {lost.tail:.3f}"),
        ("a call's end to its successor's start (median)", f"{1000 * lost.median_refill:.0f} ms"),
        ("cluster CPU s / 1,000 rows", f"{1000 * cpu / args.rows:.2f}"),
    ]


def floor(rows: int) -> list[tuple[str, str]]:
    """One httpx POST plus one UPDATE per row, in one process: the least a row can cost."""
    import httpx

    from batches.models import Execution

    with fake_dify("--latency-ms", "0") as url:
        batch_id = make_batch(url, rows, 1, "blocking")
        ids = list(Execution.objects.filter(batch_id=batch_id).values_list("pk", flat=True))
        started = time.process_time()
        with httpx.Client(headers={"Authorization": "Bearer app-bench"}) as client:
            for pk in ids:
                body = {"inputs": {"text": "x"}, "response_mode": "blocking", "user": "bench"}
                outputs = client.post(f"{url}/workflows/run", json=body).json()["data"]["outputs"]
                Execution.objects.filter(pk=pk).update(status="succeeded", outputs=outputs)
        cpu = time.process_time() - started
    return [("floor CPU s / 1,000 rows (POST + UPDATE)", f"{1000 * cpu / rows:.2f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runners", type=int, default=None, help="BATCHES_RUNNERS (default: = workers)")
    parser.add_argument("--blocking", action="store_true")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp", help="BATCHES_HTTP_TRANSPORT")
    parser.add_argument("--quick", action="store_true", help="1,000 rows at concurrency 100")
    parser.add_argument("--cpu", action="store_true", help="CPU per row at 0 ms latency, and the floor")
    parser.add_argument("--log", default="/dev/null", help="where the cluster's log goes")
    parser.add_argument("--calls-json", default="", help="save the fake's call log ([start, end] pairs) here")
    args = parser.parse_args()
    setup_django()
    if args.quick:
        args.rows, args.concurrency = 1000, 100
    if args.cpu:
        args.latency_ms, args.rows = 0, max(args.rows, 3000)
    figures = run(args)
    if args.cpu:
        figures += floor(min(args.rows, 2000))
    print_table(figures)


if __name__ == "__main__":
    main()
