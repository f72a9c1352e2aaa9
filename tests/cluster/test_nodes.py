"""Lease owners: which machine and which run of which process, and whether a local owner is dead."""

import os
import subprocess

import pytest

from batches.cluster import nodes


def dead_pid():
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_an_owner_names_the_machine_the_process_and_its_start(settings):
    settings.BATCHES_NODE_NAME = "worker-7"

    owner = nodes.owner_name(parent_pid=os.getppid(), pid=os.getpid())

    node, parent, pid, tag, _ = owner.split(":")
    assert (node, parent, pid) == ("worker-7", str(os.getppid()), str(os.getpid()))
    assert tag == nodes.process_tag(os.getpid()) and not tag.endswith("-0")
    assert len(owner) <= 100


def test_a_live_local_owner_is_alive():
    assert not nodes.is_dead_local(nodes.owner_name(parent_pid=1, pid=os.getpid()))


def test_a_local_owner_whose_process_is_gone_is_dead():
    assert nodes.is_dead_local(nodes.owner_name(parent_pid=1, pid=dead_pid()))


def test_a_local_owner_whose_pid_now_belongs_to_another_process_is_dead():
    boot, _, ticks = nodes.process_tag(os.getpid()).partition("-")
    reused = f"{nodes.node_name()}:1:{os.getpid()}:{boot}-{int(ticks) - 1}:abcdef"

    assert nodes.is_dead_local(reused)


@pytest.mark.parametrize("pid", [os.getpid(), dead_pid()], ids=["its_pid_alive_here", "its_pid_gone_here"])
def test_an_owner_under_this_node_name_on_another_machine_is_never_presumed_dead(pid):
    """Two machines deployed with one BATCHES_NODE_NAME (or an earlier boot): its lease must expire first."""
    ticks = nodes.start_ticks(os.getpid())

    assert not nodes.is_dead_local(f"{nodes.node_name()}:1:{pid}:0123456789ab-{ticks}:abcdef")
    assert not nodes.is_dead_local(f"{nodes.node_name()}:1:{pid}")  # an owner from before process tags


def test_another_machines_owner_is_never_presumed_dead(settings):
    settings.BATCHES_NODE_NAME = "elsewhere"
    owner = nodes.owner_name(parent_pid=1, pid=dead_pid())
    settings.BATCHES_NODE_NAME = "here"

    assert not nodes.is_dead_local(owner)
    assert not nodes.is_dead_local("junk")


def test_a_local_owner_whose_process_is_a_zombie_is_dead():
    import time

    child = subprocess.Popen(["true"])
    owner = nodes.owner_name(parent_pid=os.getpid(), pid=child.pid)
    time.sleep(0.5)  # it has exited, and is not reaped until waited for

    try:
        assert nodes.is_dead_local(owner)
    finally:
        child.wait()
