"""django-q2 entry points: thin, id-based, and safe to run twice (messages are only wake-ups)."""

from __future__ import annotations

from typing import Any

from batches.runner import worker as runner
from batches.services import notify, recovery, retention


def run_batches() -> str:
    return runner.run_slice()


def sweep() -> list[dict[str, Any]]:
    report = recovery.sweep()
    notify.sweep()  # batches waiting for Dify too long; messages a crash left unsent
    retention.prune_old()  # past BATCHES_KEEP_DAYS, and prunes left half done: seconds at most, the rest next minute
    return report


def deliver_notifications() -> int:
    return notify.deliver_due()
