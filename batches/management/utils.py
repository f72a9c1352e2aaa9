"""Helpers shared by the management commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.models import BatchTask
from batches.services.transitions import TransitionError


def get_batch(batch_id: int) -> BatchTask:
    try:
        return BatchTask.objects.select_related("workflow").get(pk=batch_id)
    except BatchTask.DoesNotExist:
        raise CommandError(f"batch {batch_id} does not exist") from None


def stderr_progress(label: str, total: int | None = None) -> Callable[[int], None] | None:
    """A one-line progress display on stderr when it is a terminal; stdout stays what design.md says."""
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        shown = f"{done}/{total}" if total else str(done)
        sys.stderr.write(f"\r{label}: {shown} rows")
        sys.stderr.flush()

    return show


class BatchControlCommand(BaseCommand):
    """A command that applies one guarded batch transition (start, pause, resume)."""

    past = ""

    def transition(self, batch_id: int) -> None:
        """Call the lifecycle service; it raises TransitionError when the batch's state does not allow it."""
        raise NotImplementedError

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        batch = get_batch(options["batch_id"])
        try:
            self.transition(batch.pk)
        except TransitionError:
            raise CommandError(f"batch {batch.pk} is {batch.status}: it cannot be {self.past}") from None
        self.stdout.write(f"batch {batch.pk}: {self.past}")
