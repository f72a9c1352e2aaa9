"""More recovery: reconciliation after a kill, two clusters on one batch, a database outage, the start-up sweep."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution
from batches.services import claims, imports, workflows
from fakedify.harness import running_fake_dify
from tests.processes import ROOT, DroppingProxy, child_env, kill_group, running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def make_batch(fake, tmp_path, rows, concurrency):
    source = tmp_path / "rows.csv"
    source.write_text("text\n" + "".join(f"row {i}\n" for i in range(rows)), encoding="utf-8")
    workflow, _ = workflows.save_workflow("more", base_url=fake.url, api_key="app-m")
    return imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=concurrency))


def finished(batch):
    return BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_a_run_interrupted_after_it_started_upstream_is_recorded_without_a_second_call(tmp_path):
    with running_fake_dify("--latency-ms", "3000") as fake:
        batch = make_batch(fake, tmp_path, rows=1, concurrency=1)
        with running_cluster(tmp_path / "first.log") as cluster:
            wait_until(lambda: Execution.objects.filter(batch=batch).exclude(workflow_run_id="").exists(), 30)
            kill_group(cluster)
        with running_cluster(tmp_path / "second.log"):
            wait_until(lambda: finished(batch), 60)
        stats = fake.stats()

    row = Execution.objects.get(batch=batch)
    assert (row.status, row.outputs["echo"]) == (ExecutionStatus.SUCCEEDED, row.inputs)
    assert stats["calls"] == 1
    assert list(Attempt.objects.filter(execution=row).values_list("outcome", flat=True)) == [
        "interrupted",
        "succeeded",
    ]


def test_two_clusters_share_a_batch_within_its_concurrency(tmp_path):
    with running_fake_dify("--latency-ms", "300") as fake:
        batch = make_batch(fake, tmp_path, rows=120, concurrency=8)
        with running_cluster(tmp_path / "a.log"), running_cluster(tmp_path / "b.log"):
            wait_until(lambda: finished(batch), 120)
        stats = fake.stats()

    assert stats["max_in_flight"] <= 8
    assert stats["calls"] == 120
    assert Attempt.objects.filter(execution__batch=batch).count() == 120


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database server outage needs PostgreSQL")
def test_workers_ride_out_a_database_outage_and_finish_the_batch(tmp_path):
    settings_dict = connection.settings_dict
    proxy = DroppingProxy(int(settings_dict.get("PORT") or 5432))
    url = f"postgres://{settings_dict['USER']}@127.0.0.1:{proxy.port}/{settings_dict['NAME']}"
    try:
        with running_fake_dify("--latency-ms", "500") as fake:
            batch = make_batch(fake, tmp_path, rows=80, concurrency=10)
            with running_cluster(tmp_path / "cluster.log", DATABASE_URL=url):
                wait_until(lambda: Execution.objects.filter(batch=batch, status="succeeded").count() >= 10, 60)
                proxy.outage(5)
                wait_until(lambda: finished(batch), 120)
    finally:
        proxy.close()

    assert Execution.objects.filter(batch=batch, status=ExecutionStatus.SUCCEEDED).count() == 80


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
