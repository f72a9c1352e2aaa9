"""`make demo`: migrate SQLite, start the fake Dify, a django-q2 cluster and the web server, import a sample batch.

Logs go to .demo/*.log; Ctrl-C stops everything (the cluster gets SIGTERM on its main process only).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".demo"
USER, PASSWORD = "demo", "demo-batches"


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def manage(*args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def start(name: str, *args: str, own_session: bool = False) -> subprocess.Popen[bytes]:
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, stdout=log, stderr=log, start_new_session=own_session
    )


def wait_for_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}; see {LOGS}")


def create_staff_user() -> None:
    code = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"u = U.objects.filter(username='{USER}').first() or U(username='{USER}'); "
        f"u.is_staff = u.is_superuser = True; u.set_password('{PASSWORD}'); u.save()"
    )
    manage("shell", "-c", code)


def main() -> None:
    LOGS.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    manage("migrate", "--noinput")
    create_staff_user()
    dify_port, web_port = free_port(5001), free_port(8000)
    fake = start("fake_dify", "fake_dify", "--port", str(dify_port), "--latency-ms", "1500", "--fail-rate", "0.05")
    wait_for_port(dify_port)
    manage("add_workflow", "demo", "--base-url", f"http://127.0.0.1:{dify_port}/v1", "--api-key", "app-demo-key")
    cluster = start("qcluster", "qcluster", own_session=True)
    web = start("web", "runserver", f"127.0.0.1:{web_port}", "--noreload")
    wait_for_port(web_port)
    batch_id = manage("import_batch", "samples/sample.csv", "--workflow", "demo", "--concurrency", "10")
    print(f"Batches is running at http://127.0.0.1:{web_port}/  (admin: /admin/)", flush=True)
    print(f"Log in as {USER} / {PASSWORD}. Sample batch #{batch_id.splitlines()[-1]} is running.", flush=True)
    print(f"Fake Dify on port {dify_port}; logs in {LOGS}. Press Ctrl-C to stop.", flush=True)
    try:
        while all(process.poll() is None for process in (fake, cluster, web)):
            time.sleep(1)
        print("a process stopped; see the logs in .demo/", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stop(fake, cluster, web)


def stop(fake: subprocess.Popen[bytes], cluster: subprocess.Popen[bytes], web: subprocess.Popen[bytes]) -> None:
    # The cluster first, and only its main process (design.md): its calls finish against a live fake Dify.
    for process, grace in ((cluster, 60), (web, 10), (fake, 10)):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    print("stopped.")


if __name__ == "__main__":
    main()
