"""Who holds a lease or a runner slot, and whether that holder is still alive.

An owner names its node (BATCHES_NODE_NAME, default: the host name), the machine it runs on (`machine_tag`: the
host name and the boot, as containers on one host share the boot) and the process, by pid and by start time, so a
pid reused after a restart (deterministic in a fresh container) is not mistaken for the holder that died. Only
owners on this very machine can be checked; any other owner is never presumed dead, even under this node name (two
machines deployed with one BATCHES_NODE_NAME, or an earlier boot): its rows wait for their lease to expire. A
qcluster refuses to start under a node name another machine's cluster holds (batches/cluster/heartbeat.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from batches.conf import settings
from batches.models import Execution

SEPARATOR = ":"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def node_name() -> str:
    name = getattr(settings, "BATCHES_NODE_NAME", "") or socket.gethostname()
    return name.replace(SEPARATOR, "-")[:40]


@functools.cache
def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip().replace("-", "")[:12]
    except OSError:
        return "unknown"


@functools.cache
def machine() -> str:
    """This machine as a person reads it: its host name and boot id."""
    return f"{socket.gethostname()[:80]} {boot_id()}"


@functools.cache
def machine_tag() -> str:
    """`machine()` in 12 hex characters, for lease owners and stop markers."""
    return hashlib.sha256(machine().encode()).hexdigest()[:12]


def start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): existence is all that can be told
        return "0" if _exists(pid) else None
    # The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie: dead, only not reaped yet (orphans of a killed cluster wait for init)
        return None
    return fields[19]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(pid: int) -> bool:
    return start_ticks(pid) is not None


def process_tag(pid: int) -> str:
    """This machine (and boot) and this process's start: unique to one run of one process."""
    return f"{machine_tag()}-{start_ticks(pid) or 0}"


def owner_name(*, parent_pid: int, pid: int) -> str:
    """node:parent pid:pid:boot-start:random (the pid stays the third field, which operators' scripts read)."""
    return SEPARATOR.join([node_name(), str(parent_pid), str(pid), process_tag(pid), uuid.uuid4().hex[:6]])


def is_dead_local(owner: str) -> bool:
    """True only for an owner on this machine whose process is gone (or was replaced by another with its pid)."""
    parts = owner.split(SEPARATOR)
    if len(parts) < 3 or parts[0] != node_name() or not parts[2].isdigit():
        return False
    tag, _, ticks = parts[3].partition("-") if len(parts) >= 5 else ("", "", "")
    if tag != machine_tag():
        # Another machine under this node name, an earlier boot, or an owner older than machine tags: its pid
        # says nothing here, and its lease expires on its own.
        return False
    return start_ticks(int(parts[2])) != ticks


def dead_local(owners: Iterable[str]) -> list[str]:
    return sorted({owner for owner in owners if owner and is_dead_local(owner)})


def local_prefix() -> str:
    return node_name() + SEPARATOR


def dead_local_owners() -> list[str]:
    """The owners of running rows that are processes of this machine no longer alive (SIGKILLed, say)."""
    mine = Execution.objects.running().filter(lease_owner__startswith=local_prefix()).order_by()
    return dead_local(mine.values_list("lease_owner", flat=True).distinct())
