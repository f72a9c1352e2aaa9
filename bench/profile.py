"""Where the time goes in a throughput run: CPU per process group, and a py-spy profile of the workers by layer.

    python bench/profile.py                                   # concurrency 1,000 at 2 s latency, 12,000 rows
    python bench/profile.py --concurrency 200 --latency-ms 1000 --rows 6000 --transport httpx

Samples the cluster's worker processes with py-spy (requirements-dev.txt) for the middle of the run, and reads
the CPU used meanwhile by the cluster, the fake Dify and the PostgreSQL server processes from /proc.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from common import command_cpu, fake_dify, manage_process, print_table, session_cpu, setup_django, stop_cluster
from throughput import make_batch, wait_finished

# The first matching frame from the leaf up names the layer a sample belongs to.
LAYERS = [
    ("waiting for PostgreSQL", ("psycopg/connection.py", "Connection.wait")),
    ("idle: event loop waiting for sockets", ("selectors.py", "select")),
    ("idle: runner waiting for results", ("threading.py", "wait")),
    ("aiohttp (the transport)", ("aiohttp/", "")),
    ("httpx (client layers over the transport)", ("httpx", "")),
    ("psycopg (driver)", ("psycopg/", "")),
    ("Django ORM (building queries, rows)", ("django/db/", "")),
    ("Dify client (requests, stream parsing)", ("batches/dify/", "")),
    ("runner and engine", ("batches/", "")),
    ("django-q2 (broker polling, pusher, monitor)", ("django_q/", "")),
    ("asyncio event loop", ("asyncio/", "")),
]


def layer_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, (path, function) in LAYERS:
            if path in frame and function in frame:
                return name
    return "other"


def read_profile(raw: Path) -> Counter[str]:
    layers: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        layers[layer_of(stack.split(";"))] += int(count)
    return layers


def sample(cluster_pid: int, seconds: float, raw: Path) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--subprocesses",
        "--nonblocking",
        "-r",
        "100",
        "-f",
        "raw",
    ]
    command += ["-d", str(int(seconds)), "-p", str(cluster_pid), "-o", str(raw)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(args: argparse.Namespace) -> tuple[list[tuple[str, str]], Counter[str]]:
    from batches.services import lifecycle

    raw = Path(tempfile.mkdtemp()) / "workers.raw"
    ideal = args.concurrency / (args.latency_ms / 1000)
    window = 0.6 * args.rows / ideal  # the middle of the run, if it ran at the ideal rate
    with fake_dify("--latency-ms", str(args.latency_ms)) as url:
        batch_id = make_batch(url, args.rows, args.concurrency, "streaming")
        env = {"BATCHES_WORKERS": str(args.workers), "BATCHES_HTTP_TRANSPORT": args.transport}
        cluster = manage_process("qcluster", env=env)
        time.sleep(3)
        lifecycle.start_batch(batch_id)
        measured: dict[str, float] = {}
        sampler = threading.Thread(target=measure, args=(batch_id, (cluster.pid, url.pid), window, raw, measured))
        sampler.start()
        _, steady = wait_finished(batch_id, args.rows)
        sampler.join()
        stop_cluster(cluster)
    rows_in_window = measured["rows"]
    figures = [
        (
            "rows / concurrency / latency / transport",
            f"{args.rows} / {args.concurrency} / {args.latency_ms} ms / {args.transport}",
        ),
        ("rows/s (10%-90%), efficiency", f"{steady:.1f}, {steady / ideal:.3f}"),
        ("sampled window", f"{measured['seconds']:.1f} s"),
    ]
    for group in ("workers", "fake Dify", "PostgreSQL"):
        share = measured[group] / measured["seconds"]
        figures.append(
            (f"CPU of {group}", f"{1000 * measured[group] / rows_in_window:.2f} s / 1,000 rows ({share:.2f} cores)")
        )
    return figures, read_profile(raw)


def measure(batch_id: int, pids: tuple[int, int], window: float, raw: Path, measured: dict[str, float]) -> None:
    """CPU of each process group, and py-spy's samples of the workers, over the middle of the run."""
    from batches.models import Execution

    finished = Execution.objects.filter(batch_id=batch_id, finished_at__isnull=False)
    time.sleep(window / 4)
    before = (*map(session_cpu, pids), command_cpu("postgres"), time.monotonic(), finished.count())
    sample(pids[0], window, raw).wait()
    after = (*map(session_cpu, pids), command_cpu("postgres"), time.monotonic(), finished.count())
    names = ("workers", "fake Dify", "PostgreSQL", "seconds", "rows")
    measured.update(zip(names, (b - a for a, b in zip(before, after, strict=True)), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    setup_django()
    figures, layers = run(args)
    print_table(figures)
    total = sum(layers.values())
    print(f"\nworker time by layer (py-spy, {total} samples at 100 Hz; idle rows are waits, not CPU):")
    print_table([(name, f"{100 * count / total:5.1f} %") for name, count in layers.most_common()])


if __name__ == "__main__":
    main()
