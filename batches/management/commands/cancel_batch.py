from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.management.utils import get_batch
from batches.services.lifecycle import cancel_batch


class Command(BaseCommand):
    help = "Cancel a batch: its pending rows are cancelled and calls in flight are no longer recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        batch = get_batch(options["batch_id"])
        cancelled = cancel_batch(batch.pk)
        if cancelled is None:
            raise CommandError(f"batch {batch.pk} is {batch.status}: it cannot be cancelled")
        self.stdout.write(f"batch {batch.pk}: cancelled ({cancelled} executions)")
