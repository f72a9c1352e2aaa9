from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from batches.choices import ErrorType
from batches.management.utils import get_batch
from batches.services.audit import of_os_user
from batches.services.lifecycle import retry_failed


class Command(BaseCommand):
    help = "Retry the failed executions of a batch (all, some by id, or of one error type)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)
        parser.add_argument("--execution", type=int, action="append", dest="executions", metavar="ID")
        parser.add_argument("--error-type", choices=ErrorType.values)
        parser.add_argument("--include-cancelled", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        batch = get_batch(options["batch_id"])
        report = retry_failed(
            batch.pk,
            execution_ids=options["executions"],
            error_type=options["error_type"],
            include_cancelled=options["include_cancelled"],
            actor=of_os_user(),
        )
        self.stdout.write(f"batch {batch.pk}: queued {report.retried} executions for retry")
