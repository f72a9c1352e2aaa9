from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.management.utils import get_batch
from batches.services.audit import of_os_user
from batches.services.lifecycle import cancel_batch
from batches.services.transitions import TransitionError


class Command(BaseCommand):
    help = "Cancel a batch: its pending rows are cancelled and calls in flight are no longer recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        batch = get_batch(options["batch_id"])
        try:
            cancelled = cancel_batch(batch.pk, actor=of_os_user())
        except TransitionError:
            raise CommandError(f"batch {batch.pk} is {batch.status}: it cannot be cancelled") from None
        self.stdout.write(f"batch {batch.pk}: cancelled ({cancelled} executions)")
