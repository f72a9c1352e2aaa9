"""The start-up recovery sweep with real processes (batches.services.recovery): two servers starting together reset
each interrupted row once, other commands do not sweep, and runserver starts on an unmigrated database."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from batches.choices import BatchStatus
from batches.models import Attempt, Execution
from batches.services import claims
from tests.processes import ROOT, child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def start_server(tmp_path, name, *args):
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT
    )


def test_two_servers_starting_together_reset_each_interrupted_row_once(make_batch, tmp_path):
    batch = make_batch(rows=6, status=BatchStatus.RUNNING, concurrency=6)
    claims.claim(batch.pk, owner="dead-node", limit=6)
    Execution.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    servers = [start_server(tmp_path, f"web{i}", "runserver", "127.0.0.1:0", "--noreload") for i in range(2)]
    try:
        wait_until(lambda: not Execution.objects.running().exists(), 30)
        time.sleep(1)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)

    assert Attempt.objects.filter(outcome="interrupted").count() == 6
    assert Execution.objects.pending().count() == 6


@pytest.mark.parametrize("command", [["check"], ["migrate", "--check"], ["batch_status"]])
def test_other_commands_do_not_sweep(make_batch, tmp_path, command):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    claims.claim(batch.pk, owner="dead-node", limit=2)
    Execution.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=child_env(), capture_output=True, timeout=60)
    time.sleep(3)  # longer than the start-up sweep's delay

    assert Execution.objects.running().count() == 2


def test_runserver_starts_on_an_unmigrated_database(tmp_path):
    env = child_env(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "127.0.0.1:0", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "recovery sweep skipped" in log.read_text(), 30)
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=10)
