"""The health facts (batches.selectors.health) as `/healthz` and `manage.py batches_doctor` show them: database,
migrations, live clusters, stuck batches, node names shared between machines."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.cluster import heartbeat
from batches.models import Execution, WorkflowThrottle
from tests.cluster.test_heartbeat import other_machine_beats
from tests.processes import DroppingProxy
from tests.stack import running_gunicorn

LONG_AGO = timedelta(minutes=30)


@pytest.fixture
def cluster_alive(db: None) -> None:
    heartbeat.beat(name="node-a:123", started_at=timezone.now())


def get_health(client: Client) -> tuple[int, dict]:
    response = client.get("/healthz")
    return response.status_code, response.json()


def make_running(make_batch, started_ago: timedelta = LONG_AGO):
    return make_batch(rows=3, status=BatchStatus.RUNNING, started_at=timezone.now() - started_ago)


def test_healthz_answers_200_without_login_in_at_most_three_queries(
    client, cluster_alive, make_batch, django_assert_max_num_queries
):
    make_running(make_batch, started_ago=timedelta(minutes=1))

    with django_assert_max_num_queries(3):
        status, body = get_health(client)

    assert status == 200
    assert body["status"] == "ok" and body["database"] == "ok" and body["migrations"] == "applied"
    assert body["workers"]["clusters"] == 1 and body["workers"]["last_seen"]
    assert body["stuck_batches"] == [] and body["waiting_for_dify"] == []


def test_a_batch_waiting_for_dify_is_reported_as_waiting_not_stuck(client, cluster_alive, make_batch):
    waiting = make_running(make_batch)
    WorkflowThrottle.objects.create(
        workflow=waiting.workflow, circuit="open", circuit_since=timezone.now(), last_error="HTTP 502 upstream_error: x"
    )

    status, body = get_health(client)
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("batches_doctor", stdout=out)

    assert status == 200
    assert (body["waiting_for_dify"], body["stuck_batches"]) == ([waiting.pk], [])
    assert "waits for Dify since" in out.getvalue() and "HTTP 502 upstream_error: x" in out.getvalue()


def test_a_batch_whose_circuit_is_asking_dify_is_neither_stuck_nor_waiting(client, cluster_alive, make_batch):
    asking = make_running(make_batch, started_ago=timedelta(minutes=1))
    WorkflowThrottle.objects.create(
        workflow=asking.workflow, circuit="half_open", next_probe_at=timezone.now(), outage_streak=5
    )

    status, body = get_health(client)

    assert (status, body["waiting_for_dify"], body["stuck_batches"]) == (200, [], [])


def test_healthz_is_503_while_a_migration_is_not_applied(client, cluster_alive):
    MigrationRecorder.Migration.objects.filter(app="batches").order_by("-name")[0].delete()

    status, body = get_health(client)

    assert status == 503
    assert body["status"] == "unavailable" and body["migrations"] == "pending"


def test_healthz_reports_a_running_batch_without_progress_for_ten_minutes(client, cluster_alive, make_batch):
    stuck = make_running(make_batch)
    finishing = make_running(make_batch)
    Execution.objects.filter(batch=finishing, index=0).update(
        status=ExecutionStatus.SUCCEEDED, finished_at=timezone.now() - timedelta(minutes=2)
    )
    claiming = make_running(make_batch)
    Execution.objects.filter(batch=claiming, index=0).update(
        status=ExecutionStatus.RUNNING, started_at=timezone.now() - timedelta(minutes=1)
    )
    make_running(make_batch, started_ago=timedelta(minutes=5))  # too young to tell
    make_batch(rows=3, status=BatchStatus.PAUSED, started_at=timezone.now() - LONG_AGO)

    status, body = get_health(client)

    assert status == 200  # the web server can still serve; the operator must look at the batch
    assert body["stuck_batches"] == [stuck.pk]


def test_healthz_counts_only_clusters_seen_in_the_last_minute(client, db):
    heartbeat.beat(name="node-a:1", started_at=timezone.now(), now=timezone.now() - timedelta(seconds=90))
    heartbeat.beat(name="node-b:2", started_at=timezone.now())

    status, body = get_health(client)

    assert status == 200 and body["workers"]["clusters"] == 1


def test_doctor_exits_0_and_names_the_clusters_when_all_is_well(cluster_alive):
    out = StringIO()

    call_command("batches_doctor", stdout=out)

    assert "node-a:123" in out.getvalue() and out.getvalue().strip().endswith("ok")


def test_doctor_exits_1_without_a_live_cluster_and_with_a_stuck_batch(db, make_batch):
    stuck = make_running(make_batch)
    out = StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("batches_doctor", "--json", stdout=out)

    facts = json.loads(out.getvalue())
    assert exited.value.code == 1
    assert facts["workers"] == [] and [batch["id"] for batch in facts["stuck"]] == [stuck.pk]
    assert len(facts["problems"]) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database server outage needs PostgreSQL")
def test_healthz_is_503_while_the_database_is_unreachable_and_200_again_after(transactional_db, tmp_path):
    settings_dict = connection.settings_dict
    proxy = DroppingProxy(int(settings_dict.get("PORT") or 5432))
    url = f"postgres://{settings_dict['USER']}@127.0.0.1:{proxy.port}/{settings_dict['NAME']}"
    try:
        with running_gunicorn(tmp_path / "web.log", workers=1, DATABASE_URL=url) as web:
            before = httpx.get(f"{web.url}/healthz", timeout=10)
            proxy.cut()
            during = httpx.get(f"{web.url}/healthz", timeout=30)
            proxy.reopen()
            after = httpx.get(f"{web.url}/healthz", timeout=10)
    finally:
        proxy.close()

    assert before.status_code == 200
    assert during.status_code == 503 and during.json()["database"] == "unreachable"
    assert after.status_code == 200


def test_a_node_name_used_by_two_machines_is_reported_by_healthz_and_the_doctor(client, db, settings):
    """Their clusters may even share a pid (the first process of two containers): each still has its own row."""
    settings.BATCHES_NODE_NAME = "node-x"
    heartbeat.beat(name=heartbeat.row_name(1), started_at=timezone.now())
    other_machine_beats("node-x:1")
    out = StringIO()

    status, body = get_health(client)
    with pytest.raises(SystemExit) as exited:
        call_command("batches_doctor", stdout=out)

    assert status == 200 and body["node_names"] == {"shared": 1, "taken_here": True}
    assert exited.value.code == 1
    assert "PROBLEM: node name 'node-x' is used by clusters on 2 machines" in out.getvalue()


def test_this_machines_node_name_held_by_another_machine_is_reported(client, db, settings):
    settings.BATCHES_NODE_NAME = "node-y"
    other_machine_beats("node-y:5")
    out = StringIO()

    status, body = get_health(client)
    with pytest.raises(SystemExit):
        call_command("batches_doctor", "--json", stdout=out)

    assert body["node_names"] == {"shared": 0, "taken_here": True}
    assert "held by a cluster on another machine (other-host 0123456789ab)" in json.loads(out.getvalue())["problems"][0]
