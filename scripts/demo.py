"""`make demo`: migrate SQLite, start the fake Dify, a django-q2 cluster and the web server, import a sample batch.

Logs and the demo's own secret keys go to .demo/ (or --data-dir). Ctrl-C, SIGTERM or SIGHUP (the terminal closing)
stops everything: each child runs in its own session, so only this script gets the signal and stops them in order
(the cluster by SIGTERM to its main process only, see design.md); should this script be killed outright, the
children get SIGTERM from the kernel (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "demo", "demo-batches"
SAMPLE_NAME = "Sample batch"
# The demo app's input variables (GET /parameters), so the CSV template and the column mapping have something to show.
VARIABLES = "text:Text:required:paragraph,language:Target language"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


class Stop(Exception):
    """A stop signal arrived."""


class Demo:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.children: list[tuple[str, subprocess.Popen[bytes], float]] = []  # name, process, stop grace

    def start(self, name: str, *args: str, grace: float = 10) -> None:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        # A stop signal between the fork and the bookkeeping would leave an untracked child: hold signals till then.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # terminal signals reach this script only; it stops the children in order
                preexec_fn=child_setup,
            )
            self.children.append((name, process, grace))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stopped_child(self) -> str | None:
        return next((name for name, process, _ in self.children if process.poll() is not None), None)

    def stop(self) -> None:
        # In reverse order of start: the web server, the cluster (its calls end against a live fake), the fake.
        for _name, process, grace in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def child_setup() -> None:
    """In the child, before exec: signals unblocked (a mask survives exec), and SIGTERM when this script dies,
    however it dies (Linux)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def on_stop_signal(signum: int, frame: Any) -> None:
    for sig in STOP_SIGNALS:  # one orderly stop; further signals must not interrupt it
        signal.signal(sig, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def say(text: str, error: bool = False) -> None:
    """Print, unless the terminal is gone (SIGHUP): stopping must go on regardless."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr if error else sys.stdout, flush=True)


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


def wait_for_port(port: int, data_dir: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}; see {data_dir}")


def load_secrets(data_dir: Path) -> None:
    """The demo's own DJANGO_SECRET_KEY and BATCHES_ENCRYPTION_KEY, made once and kept (the stored API key must stay
    readable); variables already set in the environment win."""
    path = data_dir / "secrets.json"
    if not path.exists():
        keys = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "BATCHES_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys))
    for name, value in json.loads(path.read_text()).items():
        os.environ.setdefault(name, value)


def write_env(data_dir: Path) -> None:
    """.demo/env: what a shell needs for `manage.py` commands to work against the demo's database and cluster
    (`set -a; . .demo/env; set +a`, or `make shell`)."""
    names = ("DJANGO_DEBUG", "BATCHES_DEV_TOOLS", "DJANGO_SECRET_KEY", "BATCHES_ENCRYPTION_KEY", "DATABASE_URL")
    lines = [f"{name}={shlex.quote(os.environ[name])}" for name in names if os.environ.get(name)]
    path = data_dir / "env"
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")


def create_staff_user() -> None:
    # Made once: a second `make demo` must not reset the password, which would sign out open sessions.
    code = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"U.objects.filter(username='{USER}').exists() or U.objects.create_superuser('{USER}', password='{PASSWORD}')"
    )
    manage("shell", "-c", code)


def sample_batch() -> tuple[int, bool]:
    """The sample batch's id, imported only the first time (a second `make demo` shows the same one)."""
    existing = [batch["id"] for batch in json.loads(manage("batch_status", "--json")) if batch["name"] == SAMPLE_NAME]
    if existing:
        return existing[0], False
    out = manage("import_batch", "samples/sample.csv", "--workflow", "demo", "--name", SAMPLE_NAME, "--concurrency=10")
    return int(out.splitlines()[-1]), True


def run(demo: Demo, web_port: int, dify_port: int) -> None:
    manage("migrate", "--noinput")
    create_staff_user()
    demo.start("fake_dify", "fake_dify", "--port", str(dify_port), "--latency-ms", "1500", "--fail-rate", "0.05",
               "--variables", VARIABLES)  # fmt: skip
    wait_for_port(dify_port, demo.data_dir)
    # The email a finished batch sends is printed by the worker (console backend) into its log under the data dir.
    manage("add_workflow", "demo", "--base-url", f"http://127.0.0.1:{dify_port}/v1", "--api-key", "app-demo-key",
           "--notify-email", "ops@example.com")  # fmt: skip
    demo.start("qcluster", "qcluster", grace=60)
    demo.start("web", "runserver", f"127.0.0.1:{web_port}", "--noreload")
    wait_for_port(web_port, demo.data_dir)
    batch_id, new = sample_batch()
    say(f"Batches is running at http://127.0.0.1:{web_port}/  (admin: /admin/)")
    say(f"Log in as {USER} / {PASSWORD}. Sample batch #{batch_id} {'is running' if new else 'was imported before'}.")
    say(f"Fake Dify on port {dify_port}; logs in {demo.data_dir}. Press Ctrl-C to stop.")
    say(f"Commands against this demo: set -a; . {demo.data_dir / 'env'}; set +a   (or: make shell)")
    while (name := demo.stopped_child()) is None:
        time.sleep(0.5)
    say(f"{name} stopped on its own; see {demo.data_dir / (name + '.log')}", error=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000, help="web server port (another one if taken)")
    parser.add_argument("--dify-port", type=int, default=5001, help="fake Dify port (another one if taken)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".demo", help="logs and the demo's secret keys")
    return parser.parse_args()


def main() -> int:
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop_signal)
    args = parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["BATCHES_DEV_TOOLS"] = "1"  # its children run `manage.py fake_dify`, a development tool
    load_secrets(args.data_dir)
    write_env(args.data_dir)
    demo = Demo(args.data_dir)
    status = 0
    try:
        run(demo, free_port(args.port), free_port(args.dify_port))
        status = 1
    except Stop:
        pass
    except subprocess.CalledProcessError as exc:
        say(f"the demo could not start: {' '.join(exc.cmd[1:])} failed:\n{exc.stderr}", error=True)
        status = 1
    except RuntimeError as exc:
        say(f"the demo could not start: {exc}", error=True)
        status = 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        demo.stop()
    say("stopped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
