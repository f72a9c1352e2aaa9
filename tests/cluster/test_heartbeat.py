"""A cluster's heartbeat (batches.cluster.heartbeat): it beats while the cluster runs and is removed when it stops; a
node name is held only by another machine's cluster that keeps beating, and a qcluster refuses to start under it."""

from __future__ import annotations

from django.utils import timezone

from batches.cluster import heartbeat
from batches.models import ClusterHeartbeat
from tests.processes import running_cluster, wait_until
from tests.stack import PRODUCTION


def test_a_cluster_beats_while_it_runs_and_removes_its_heartbeat_when_stopped(transactional_db, tmp_path):
    with running_cluster(tmp_path / "cluster.log", BATCHES_NODE_NAME="node-beat", **PRODUCTION) as cluster:
        beat = wait_until(lambda: ClusterHeartbeat.objects.filter(node="node-beat").first(), 30)
        assert beat.pid == cluster.pid

    assert not ClusterHeartbeat.objects.filter(node="node-beat").exists()


def other_machine_beats(name: str, machine: str = "other-host 0123456789ab") -> None:
    """A heartbeat written by a cluster on another machine (another host name and boot)."""
    node, _, pid = name.rpartition(":")
    now = timezone.now()
    ClusterHeartbeat.objects.update_or_create(
        name=f"{name}@fedcba987654",
        defaults={"node": node, "pid": int(pid), "machine": machine, "started_at": now, "seen_at": now},
    )


def test_a_node_name_is_held_only_by_another_machines_cluster_that_keeps_beating(db, settings, monkeypatch):
    settings.BATCHES_NODE_NAME = "node-z"
    heartbeat.beat(name=heartbeat.row_name(1), started_at=timezone.now())  # this machine's own other cluster
    other_machine_beats("node-z:2", machine="")  # a row of an older release names no machine
    other_machine_beats("node-z:3")  # another machine's cluster, killed: its row is not renewed
    assert heartbeat.node_name_holder(watch=0.3, every=0.05) is None

    monkeypatch.setattr(heartbeat.time, "sleep", lambda _: other_machine_beats("node-z:3"))  # it beats again

    assert heartbeat.node_name_holder(watch=5, every=0.05)["name"] == "node-z:3@fedcba987654"


def test_a_qcluster_refuses_to_start_under_a_node_name_another_machine_holds(transactional_db, tmp_path):
    log = tmp_path / "cluster.log"
    other_machine_beats("node-dup:77")

    with running_cluster(log, BATCHES_NODE_NAME="node-dup", **PRODUCTION) as cluster:
        # The other machine keeps beating while this one watches.
        wait_until(lambda: other_machine_beats("node-dup:77") or cluster.poll() is not None, 60, interval=0.5)

    assert cluster.returncode == 1
    refusal = [line for line in log.read_text().splitlines() if "refusing to start" in line]
    assert refusal == [
        "CommandError: refusing to start: BATCHES_NODE_NAME 'node-dup' is held by a live cluster on another machine "
        "(other-host 0123456789ab); give each machine its own BATCHES_NODE_NAME"
    ]
    assert ClusterHeartbeat.objects.filter(node="node-dup").count() == 1  # the other machine's only
