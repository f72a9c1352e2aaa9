"""Who holds a lease or a runner slot, and whether that holder is still alive.

An owner names its machine (BATCHES_NODE_NAME, default: the host name), the machine's boot and the process, by
pid and by start time, so a pid reused after a restart (deterministic in a fresh container) is not mistaken for
the holder that died. Only owners on this machine can be checked; another machine's owner is never presumed dead:
its rows wait for their lease to expire.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

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
    """This boot and this process's start: unique to one run of one process on this machine."""
    return f"{boot_id()}-{start_ticks(pid) or 0}"


def owner_name(*, parent_pid: int, pid: int) -> str:
    """node:parent pid:pid:boot-start:random (the pid stays the third field, which operators' scripts read)."""
    return SEPARATOR.join([node_name(), str(parent_pid), str(pid), process_tag(pid), uuid.uuid4().hex[:6]])


def is_dead_local(owner: str) -> bool:
    """True only for an owner on this machine whose process is gone (or was replaced by another with its pid)."""
    parts = owner.split(SEPARATOR)
    if len(parts) < 3 or parts[0] != node_name() or not parts[2].isdigit():
        return False
    if len(parts) < 5:  # an owner written before process tags: only the pid to go by
        return not _exists(int(parts[2]))
    boot, _, ticks = parts[3].partition("-")
    if boot != boot_id():
        return True  # this machine rebooted since: every process of that boot is gone
    return start_ticks(int(parts[2])) != ticks


def dead_local(owners: Iterable[str]) -> list[str]:
    return sorted({owner for owner in owners if owner and is_dead_local(owner)})


def local_prefix() -> str:
    return node_name() + SEPARATOR


def dead_local_owners() -> list[str]:
    """The owners of running rows that are processes of this machine no longer alive (SIGKILLed, say)."""
    from batches.models import Execution

    mine = Execution.objects.running().filter(lease_owner__startswith=local_prefix()).order_by()
    return dead_local(mine.values_list("lease_owner", flat=True).distinct())
